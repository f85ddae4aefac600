#!/usr/bin/env bash
# it-busypoll.sh - `busy-poll = US`: with it on, udpmuxd forwards every
# datagram of a stream correctly and its worker does not sleep between
# datagrams that come closer together than US (few voluntary context
# switches); once traffic stops the worker goes back to sleep (its CPU time
# over 2 idle seconds stays small; a worker that kept polling would use the
# whole 2 s). A reload to busy-poll = 0 applies at once (logged), and the
# same stream then costs a sleep per datagram or more, which shows the
# context-switch count measures what we think it does.
. "$(dirname "$0")/lib.sh"
it_init "$@"

BUDGET=1000 # the largest budget: the stream's gaps (500 us) are well inside it
RATE=2000
HZ=$(getconf CLK_TCK)

# "ticks voluntary_switches" summed over every thread of the daemon
daemon_ticks()
{
    local t=0 s f
    for f in /proc/"$UMXD_PID"/task/*/stat; do
        # fields after "(comm)": state=1 ... utime=12 stime=13
        s=$(cut -d')' -f2 "$f" 2>/dev/null) || continue
        t=$((t + $(awk '{print $12 + $13}' <<<"$s")))
    done
    echo "$t"
}
daemon_vcsw()
{
    grep -h '^voluntary_ctxt_switches:' /proc/"$UMXD_PID"/task/*/status |
        awk '{ n += $2 } END { print n + 0 }'
}
json_field() { /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# stream NAME: 1 s of numbered datagrams at RATE/s through the mux; checks
# that they came back from the backend (at most 1 % lost: the Python echo
# backend can fall behind on a loaded machine, udpmuxd does not drop); sets
# SENT and VCSW (the daemon's voluntary context switches during the stream)
stream()
{
    local v0 v1 res nlost tags
    v0=$(daemon_vcsw)
    res=$($IT_UDP stream --to "127.0.0.1:$IT_PORT" --seconds 1 --rate $RATE --drain 0.5)
    v1=$(daemon_vcsw)
    echo "$res" >"$T/$1.json"
    SENT=$(json_field sent <<<"$res")
    nlost=$(json_field nlost <<<"$res")
    tags=$(/usr/bin/python3 -c 'import json,sys; print(",".join(sorted(json.load(sys.stdin)["tags"])))' <<<"$res")
    VCSW=$((v1 - v0))
    it_log "$1: sent $SENT, lost $nlost, backends $tags, daemon voluntary switches $VCSW"
    [ "$SENT" -ge $((RATE / 2)) ] || it_fail "$1: the client sent only $SENT datagrams"
    [ "$nlost" -le $((SENT / 100)) ] || it_fail "$1: $nlost of $SENT datagrams lost"
    it_eq "$tags" "a" "$1: answers came from backend a only"
}

it_echo a 127.0.0.1:5001
it_wait_udp 5001
conf()
{
    IT_WORKERS=1 IT_CONF_EXTRA="busy-poll = $1" it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route echo]
match = any
forward = 127.0.0.1:5001
CONF
}
conf $BUDGET
it_daemon "$T/udpmux.conf"
it_log_has udpmuxd "busy-poll $BUDGET us"

# single requests: the answer is the backend's, with our payload
r=$(it_ask "127.0.0.1:$IT_PORT" hello-busy)
it_contains "$r" "a|from=" "tagged by backend a"
it_contains "$r" "|hello-busy" "payload intact"

stream on
on_sent=$SENT
on_vcsw=$VCSW
# polling, the worker sleeps only when a gap exceeds the budget (a stall of
# the client or of this machine); it would sleep once or twice per datagram
# otherwise (see the busy-poll = 0 stream below)
[ $((on_vcsw * 3)) -lt "$on_sent" ] ||
    it_fail "busy-poll on: $on_vcsw voluntary context switches for $on_sent datagrams (worker sleeps)"

# idle: after the last datagram the worker polls for at most BUDGET, then
# must sleep. 2 s of polling would be ~2 s of CPU time (200 ticks at 100 Hz)
sleep 0.3
t0=$(daemon_ticks)
sleep 2
t1=$(daemon_ticks)
idle=$((t1 - t0))
it_log "idle: $idle ticks of CPU time in 2 s (HZ $HZ)"
[ "$idle" -le $((HZ / 5)) ] ||
    it_fail "idle worker with busy-poll = $BUDGET used $idle ticks in 2 s (limit $((HZ / 5))): it does not sleep"

# reload to busy-poll = 0: applies without a restart
conf 0
kill -HUP "$UMXD_PID"
it_wait_log "$T/udpmuxd.log" "busy-poll $BUDGET -> 0 us" 5
it_wait_log "$T/udpmuxd.log" "configuration reloaded" 5
stream off
[ "$VCSW" -ge $((SENT / 2)) ] ||
    it_fail "busy-poll off: only $VCSW voluntary context switches for $SENT datagrams (the measure is broken)"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
