#!/usr/bin/env bash
# it-restart-burst.sh - #12: the overload budget bites only under real
# overload. 256 legitimate clients arrive at once (as after a restart) with
# new-flow-rate = 0: each first datagram must reach the backend. A few full
# receive batches are a burst, not an overload; before the fix a single full
# batch cut new flows to 8 per batch and 22-44 % of the clients lost their
# first datagram to drop.rate_limited.
. "$(dirname "$0")/lib.sh"
it_init "$@"

it_echo a 127.0.0.1:5001
it_wait_udp 5001
IT_WORKERS=1 IT_CONF_EXTRA="new-flow-rate = 0
rcvbuf = 4M" it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route echo]
match = any
forward = 127.0.0.1:5001
CONF
it_daemon "$T/udpmux.conf"
got=$(timeout 30 $IT_UDP burst --to "127.0.0.1:$IT_PORT" --flows 256 --timeout 3 --check)
rl=$(timeout 5 "$UDPMUXCTL" -s "$T/control.sock" stats | sed -n 's/^drop\.rate_limited=//p')
it_eq "$got" 256 "clients answered at their first datagram"
it_eq "${rl:-0}" 0 "drop.rate_limited"
it_pass
