#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-wireguard.sh - two wireguard-go devices complete a handshake through
# udpmuxd (the client's endpoint is the shared port) and carry data both
# ways; a DNS-shaped echo route shares the port.
. "$(dirname "$0")/lib.sh"
it_init "$@"

it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route wireguard]
match = wireguard
forward = 127.0.0.1:5820

[route rest]
match = any
action = echo
CONF
it_daemon "$T/udpmux.conf"
it_wg_pair 5820 5821 "127.0.0.1:$IT_PORT"

it_wg_wait_handshake wg0
[ "$(it_wg_handshake wg0)" != 0 ] || it_fail "no handshake seen by wg0"
[ "$(it_wg_handshake wg1)" != 0 ] || it_fail "no handshake seen by wg1"
# the server's view of its peer is the mux's upstream socket, never the
# client's own port 5821: the handshake went through udpmuxd
ep=$(wg show wg0 endpoints | awk '{print $2}')
case "$ep" in
127.0.0.1:5821) it_fail "wg0 talks to the client directly ($ep)" ;;
127.0.0.1:*) ;;
*) it_fail "unexpected wg0 endpoint '$ep'" ;;
esac
# data both ways: three pokes; wg1 receives the ICMP answers through the
# tunnel (rx grows past the handshake response)
read -r rx0 _ <<<"$(it_wg_transfer wg1)"
for i in 1 2 3; do
    it_wg_poke
    sleep 0.2
done
sleep 0.5
read -r rx1 _ <<<"$(it_wg_transfer wg1)"
[ "$rx1" -gt "$rx0" ] || it_fail "no tunnel data came back to wg1 (rx $rx0 -> $rx1)"
it_eq "$(it_ask 127.0.0.1:$IT_PORT ping)" "ping" "echo route next to WireGuard"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
