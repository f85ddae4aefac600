#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-openvpn.sh - two openvpn processes (--dev null, TLS mode) complete their
# handshake through udpmuxd's shared port, which also serves DNS-less echo
# traffic on another route so the OpenVPN route is not alone.
. "$(dirname "$0")/lib.sh"
it_init "$@"
K=$UMX_SRC/tests/data/integration/openvpn

common=(--dev null --proto udp --verb 3 --ping 1 --ca "$K/ca.crt" --data-ciphers AES-256-GCM)
it_bg ovpn-server 60 openvpn "${common[@]}" --dh none --cert "$K/server.crt" \
    --key "$K/server.key" --tls-server --local 127.0.0.1 --lport 5194
it_wait_udp 5194

it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route openvpn]
match = openvpn
forward = 127.0.0.1:5194

[route rest]
match = any
action = echo
CONF
it_daemon "$T/udpmux.conf"

it_bg ovpn-client 60 openvpn "${common[@]}" --cert "$K/client.crt" --key "$K/client.key" \
    --tls-client --remote-cert-tls server --remote 127.0.0.1 "$IT_PORT" --nobind
it_wait_log "$T/ovpn-client.log" "Initialization Sequence Completed" 20
it_wait_log "$T/ovpn-server.log" "Initialization Sequence Completed|Peer Connection Initiated" 10
# the server saw the mux's upstream socket, not the client: the tunnel went
# through udpmuxd
it_log_has ovpn-client "Peer Connection Initiated with \[AF_INET\]127.0.0.1:$IT_PORT"
# the data channel carries pings both ways for a few seconds, no restart
sleep 3
it_log_lacks ovpn-client "Inactivity timeout|SIGUSR1|restarting"
it_log_lacks ovpn-server "Inactivity timeout|SIGUSR1|restarting"
# the echo route on the same port still answers
it_eq "$(it_ask 127.0.0.1:$IT_PORT hello)" "hello" "echo route next to OpenVPN"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
