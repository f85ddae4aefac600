#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-idle.sh - flows close after idle-timeout with no traffic at all (the
# worker's timer fires by itself): the flow's upstream socket disappears
# (ss), the daemon's descriptors go back to the baseline, and the next
# datagram from the same client port makes a new flow (the backend sees a
# new source port). Unanswered flows close after unanswered-timeout.
. "$(dirname "$0")/lib.sh"
it_init "$@"

it_echo a 127.0.0.1:5001
it_wait_udp 5001
it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route silent]
match = prefix 7369
forward = 127.0.0.1:5009
unanswered-timeout = 1s

[route echo]
match = any
forward = 127.0.0.1:5001
idle-timeout = 2s
CONF
it_daemon "$T/udpmux.conf"
base=$(it_fds "$UMXD_PID")
upstreams() { ss -Hun state connected "dst 127.0.0.1:$1" | wc -l; }

r1=$(it_ask "127.0.0.1:$IT_PORT" one --bind 127.0.0.1:6000)
sleep 1
r2=$(it_ask "127.0.0.1:$IT_PORT" two --bind 127.0.0.1:6000)
p1=$(sed 's/.*from=\([^|]*\)|.*/\1/' <<<"$r1")
p2=$(sed 's/.*from=\([^|]*\)|.*/\1/' <<<"$r2")
it_eq "$p2" "$p1" "same flow within idle-timeout"
it_eq "$(upstreams 5001)" 1 "one upstream socket while the flow lives"
it_eq "$(it_fds "$UMXD_PID")" $((base + 1)) "one more descriptor while the flow lives"
# an unanswered flow (nobody on 5009): gone after unanswered-timeout
it_ask "127.0.0.1:$IT_PORT" silence --bind 127.0.0.1:6001 --timeout 0.2 >/dev/null 2>&1 || true
# no traffic at all now: the timers alone must close both
for _ in $(seq 1 40); do
    [ "$(upstreams 5001)" = 0 ] && [ "$(upstreams 5009)" = 0 ] && break
    sleep 0.1
done
it_eq "$(upstreams 5001)" 0 "upstream socket closed after idle-timeout"
it_eq "$(upstreams 5009)" 0 "unanswered upstream closed after unanswered-timeout"
it_eq "$(it_fds "$UMXD_PID")" "$base" "descriptors back to the baseline"
# the idle flow did not close early: it lived at least idle-timeout
r3=$(it_ask "127.0.0.1:$IT_PORT" three --bind 127.0.0.1:6000)
p3=$(sed 's/.*from=\([^|]*\)|.*/\1/' <<<"$r3")
[ "$p3" != "$p1" ] || it_fail "the expired flow was reused ($p3)"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
