#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-proxyv2.sh - `proxy-protocol = v2`: each datagram reaches the backend
# behind a PROXY v2 header (haproxy proxy-protocol.txt 2.2, DGRAM) naming
# the real client and the address it sent to; the backend's answer goes
# back without one.
#
# The backend is a small Python receiver (it-udp.py proxy) that decodes the
# header and answers with what it found. unbound 1.17.1 (Debian 12) accepts
# `proxy-protocol-port:` but does not strip the header from UDP queries (it
# answers FORMERR, checked by hand), so it cannot be the receiver here.
. "$(dirname "$0")/lib.sh"
it_init "$@"
ip addr add 127.0.0.9/8 dev lo
ip -6 addr add fd00:75:6d78::9/64 dev lo nodad

it_bg proxy4 60 $IT_UDP proxy --listen 127.0.0.1:5053 --log "$T/proxy4-decoded.log" --max-seconds 55
it_bg proxy6 60 $IT_UDP proxy --listen "[::1]:5054" --log "$T/proxy6-decoded.log" --max-seconds 55
it_wait_udp 5053
it_wait_udp 5054

it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT, [fd00:75:6d78::1]:$IT_PORT

[route v6]
match = prefix 7636
forward = [::1]:5054
proxy-protocol = v2

[route v4]
match = any
forward = 127.0.0.1:5053
proxy-protocol = v2
health = payload
health-send = 0x6865616c7468
health-expect = 0x7372633d4c4f43414c
health-interval = 300ms
health-timeout = 200ms
CONF
ip -6 addr add fd00:75:6d78::1/64 dev lo nodad
it_daemon "$T/udpmux.conf"

out=$(it_ask "127.0.0.1:$IT_PORT" "hello" --bind 127.0.0.9:6000)
it_eq "$out" "src=127.0.0.9:6000 dst=127.0.0.1:$IT_PORT|hello" "IPv4 header and payload"
# several datagrams of one flow: a header on each
for i in 1 2 3; do
    out=$(it_ask "127.0.0.1:$IT_PORT" "again-$i" --bind 127.0.0.9:6000)
    it_eq "$out" "src=127.0.0.9:6000 dst=127.0.0.1:$IT_PORT|again-$i" "datagram $i of the flow"
done
out=$(it_ask "[fd00:75:6d78::1]:$IT_PORT" "v6-hello" --bind "[fd00:75:6d78::9]:6001")
it_eq "$out" "src=[fd00:75:6d78::9]:6001 dst=[fd00:75:6d78::1]:$IT_PORT|v6-hello" "IPv6 header"
it_eq "$(grep -c '^src=127.0.0.9:6000 ' "$T/proxy4-decoded.log")" 4 "headers decoded by the receiver"
it_log_lacks proxy4-decoded "bad header" "receiver"
# active health checks on a PROXY v2 route carry a LOCAL header (the
# proxy's own traffic); the receiver answers "src=LOCAL...", which is what
# health-expect wants, so the backend stays up
it_wait_log "$T/proxy4-decoded.log" "^src=LOCAL dst=LOCAL payload=b'health'" 3
it_log_lacks udpmuxd "is DOWN" "health of the PROXY v2 backend"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
