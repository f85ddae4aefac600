#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-owner.sh - one owner per port (docs/security.md C16):
#  - a second udpmuxd on the same address and port exits 69 (EX_UNAVAILABLE)
#    and names the holder (it used to join the SO_REUSEPORT group, report
#    ready and take a share of the traffic);
#  - a socket of the same user that joins the group later with SO_REUSEPORT
#    receives 0 of N datagrams while udpmuxd answers all N, new flows still
#    spread over both workers, and the foreign-socket watch logs the joiner
#    and counts it (guard.foreign_sockets); the listener's reuseport group
#    counts 2 sockets with the steering program attached, then 3 (1 not ours);
#  - --takeover starts on a held port on purpose; the running instance keeps
#    the traffic until it exits, then the new one gets all of it.
. "$(dirname "$0")/lib.sh"
it_init "$@"
N=300

it_echo backend 127.0.0.1:5001
it_wait_udp 5001
IT_WORKERS=2 IT_CONF_EXTRA=$'response-rate = 0\nnew-flow-rate = 0' it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route echo]
match = prefix 65
action = echo

[route fwd]
match = any
forward = 127.0.0.1:5001
CONF
it_daemon "$T/udpmux.conf"

# a second instance (its own control/attach paths: the refusal comes before
# it would touch any socket path anyway)
sed "s#$T/control.sock#$T/control2.sock#; s#$T/attach.sock#$T/attach2.sock#" \
    "$T/udpmux.conf" >"$T/second.conf"
set +e
timeout 10 "$UDPMUXD" -c "$T/second.conf" >"$T/second.log" 2>&1
rc=$?
set -e
it_eq "$rc" 69 "exit status of a second udpmuxd on the same port"
it_log_has second "127.0.0.1:$IT_PORT is already held by pid $UMXD_PID .udpmuxd. uid 0" \
    "the holder is named"
it_log_has second "refusing to share 127.0.0.1:$IT_PORT" "the refusal says why"
it_log_lacks second " ready" "the second instance never got ready"

# the group as udpmuxctl status (and /metrics) report it: the two workers'
# sockets, the steering program attached
group()
{
    "$UDPMUXCTL" -s "$T/control.sock" -j status |
        $IT_PY -c 'import json,sys; l = json.load(sys.stdin)["listeners"][0]
print("%s/%s/%s" % (l["reuseport.sockets"], l["reuseport.foreign"], l["steering"]))'
}
if [ -n "${UDPMUXCTL:-}" ]; then
    it_eq "$(group)" "2/0/1" "reuseport group: sockets/foreign/steering at start"
fi

# a same-user socket joins the group after the start
it_bg joiner 40 $IT_PY -c "
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(('127.0.0.1', $IT_PORT))
s.settimeout(0.2)
print('bound', flush=True)
n, end = 0, time.time() + 30
while time.time() < end:
    try:
        s.recv(2048)
        n += 1
        print('got', n, flush=True)
    except socket.timeout:
        pass
"
it_wait_log "$T/joiner.log" bound 5
# N datagrams from N source ports: every one answered by udpmuxd (echo and
# forwarded), none seen by the joiner
got=$($IT_PY - "$IT_PORT" "$N" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
answered = 0
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    msg = (b"e%d" if i % 2 == 0 else b"f%d") % i
    for attempt in range(2):
        s.sendto(msg, ("127.0.0.1", port))
        try:
            s.recvfrom(2048)
            answered += 1
            break
        except socket.timeout:
            pass
    s.close()
print(answered)
PY
)
it_log "answered $got of $N, retries included"
it_eq "$got" "$N" "datagrams answered by udpmuxd"
sleep 0.5
it_eq "$(grep -c '^got' "$T/joiner.log" || true)" 0 "datagrams the joiner received"
# flows spread over both workers (the steering program hashes, it does not
# send everything to worker 0)
if [ -n "${UDPMUXCTL:-}" ]; then
    flows=$("$UDPMUXCTL" -s "$T/control.sock" -j flows -n 1000)
    w0=$(grep -o '"worker": *"\?0"\?' <<<"$flows" | wc -l)
    w1=$(grep -o '"worker": *"\?1"\?' <<<"$flows" | wc -l)
    it_log "flows per worker: $w0 / $w1"
    [ "$w0" -ge 30 ] && [ "$w1" -ge 30 ] || it_fail "flows not spread over the workers: $w0 / $w1"
fi
# the watch reports the joiner (log and counter)
it_wait_log "$T/udpmuxd.log" "foreign socket on our port: 127\.0\.0\.1:$IT_PORT, uid 0" 5
if [ -n "${UDPMUXCTL:-}" ]; then
    for i in $(seq 1 30); do
        n=$("$UDPMUXCTL" -s "$T/control.sock" stats | sed -n 's/^guard.foreign_sockets=//p')
        [ "${n:-0}" -ge 1 ] && break
        sleep 0.2
    done
    # needs umxd_stats_sum (daemon/path/pool.c) to add d->foreign_seen
    it_eq "$n" 1 "guard.foreign_sockets"
    # the joiner is in the group: 3 sockets, 1 not ours (the watch scans every 2 s)
    for i in $(seq 1 30); do
        [ "$(group)" = "3/1/1" ] && break
        sleep 0.2
    done
    it_eq "$(group)" "3/1/1" "reuseport group with the joiner"
fi
it_stop joiner

# --takeover: joins the running instance's group on purpose. Its route
# forwards to another backend, so the answers say who got each datagram:
# the running instance keeps every new flow while it lives (its sockets are
# the group's first members), the new one gets every new flow once the old
# one has exited.
it_echo backend2 127.0.0.1:5002
it_wait_udp 5002
sed -i "s/127.0.0.1:5001/127.0.0.1:5002/" "$T/second.conf"
timeout -k 2 30 "$UDPMUXD" --takeover -c "$T/second.conf" >"$T/takeover.log" 2>&1 &
tk=$!
IT_PIDS+=("$tk")
IT_NAMES+=(takeover)
it_wait_log "$T/takeover.log" " ready" 5
it_log_has takeover "--takeover: joining the socket group on 127.0.0.1:$IT_PORT" "takeover logged"
tags()
{
    $IT_PY - "$IT_PORT" <<'PY'
import collections, socket, sys
seen = collections.Counter()
for i in range(40):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    s.sendto(b"f-%d" % i, ("127.0.0.1", int(sys.argv[1])))
    try:
        seen[s.recv(2048).split(b"|")[0].decode()] += 1
    except socket.timeout:
        seen["lost"] += 1
    s.close()
print(" ".join("%s=%d" % kv for kv in sorted(seen.items())))
PY
}
before=$(tags)
it_log "while the first instance runs: $before"
it_eq "$before" "backend=40" "new flows while the first instance runs"
kill -TERM "$UMXD_PID"
for i in $(seq 1 50); do
    kill -0 "$UMXD_PID" 2>/dev/null || break
    sleep 0.1
done
after=$(tags)
it_log "after it exited: $after"
it_eq "$after" "backend2=40" "new flows after the first instance exited"
kill "$tk"
it_pass
