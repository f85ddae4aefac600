#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-transparent.sh - `transparent = yes`: the backend sees the client's own
# address and port, not udpmuxd's. Three namespaces joined by veth pairs:
#
#   client ns 10.1.0.2 --- 10.1.0.1 [udpmuxd ns] 10.2.0.1 --- 10.2.0.2 backend ns
#
# The backend answers the client's address (10.1.0.2); its default route
# points at the udpmuxd namespace, where policy routing delivers whatever
# comes in from the backend side locally, so the answer reaches the
# flow's upstream socket (bound to 10.1.0.2:PORT with IP_TRANSPARENT)
# instead of being forwarded to the client:
#
#   ip rule add iif v-be lookup 100
#   ip route add local 0.0.0.0/0 dev lo table 100
#
# The same two lines are what a real deployment needs (docs/internals/daemon.md).
. "$(dirname "$0")/lib.sh"
it_init "$@"
it_child_ns cli 10.1.0.1 10.1.0.2
it_child_ns be 10.2.0.1 10.2.0.2
ip rule add iif v-be lookup 100
ip route add local 0.0.0.0/0 dev lo table 100

it_bg echo-be 60 ip netns exec "$(it_ns be)" $IT_UDP echo --listen 10.2.0.2:5001 --tag be \
    --max-seconds 55
for i in $(seq 1 50); do
    ip netns exec "$(it_ns be)" ss -Hlun "sport = :5001" | grep -q . && break
    sleep 0.1
done

it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 10.1.0.1:$IT_PORT

[route plain]
match = prefix 706c61696e
forward = 10.2.0.2:5001

[route transparent]
match = any
forward = 10.2.0.2:5001
transparent = yes
CONF
it_daemon "$T/udpmux.conf"

ask_from_client() { timeout 10 ip netns exec "$(it_ns cli)" $IT_UDP ask --to "10.1.0.1:$IT_PORT" "$@"; }
out=$(ask_from_client --data "plain-1" --bind 10.1.0.2:6000) || it_fail "no answer on the plain route"
it_contains "$out" "be|from=10.2.0.1:" "the plain route shows udpmuxd's address"
out=$(ask_from_client --data "hello" --bind 10.1.0.2:6001) || it_fail "no answer on the transparent route"
it_eq "$out" "be|from=10.1.0.2:6001|hello" "the backend saw the client itself"
# more datagrams of the same flow, and a second client port
out=$(ask_from_client --data "again" --bind 10.1.0.2:6001)
it_eq "$out" "be|from=10.1.0.2:6001|again" "second datagram of the flow"
out=$(ask_from_client --data "other" --bind 10.1.0.2:6002)
it_eq "$out" "be|from=10.1.0.2:6002|other" "another client port"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
