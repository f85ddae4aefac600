#!/usr/bin/env bash
# it-flowlog.sh - the debug flow log (log-level = debug, or -v): a real flow
# through an echo backend is logged when it starts (peer, route, backend,
# how), dropped datagrams with their UMXD_DROPS reason, and the flow's end
# (idle) with what it carried each way; a flood of drops is cut by the
# worker's token bucket and the next line says how many were suppressed;
# at log-level = info (after a reload) nothing of it is written.
. "$(dirname "$0")/lib.sh"
it_init "$@"
. "$(dirname "$0")/ctl-lib.sh"

it_echo b1 127.0.0.1:5001 b1
it_wait_udp 5001
IT_WORKERS=1 IT_LOGLEVEL=debug it_conf "$T/u.conf" <<EOF2
[listen]
address = 127.0.0.1:$IT_PORT

[route fwd]
match = regex "^FWD"
forward = 127.0.0.1:5001
idle-timeout = 1s

[route junk]
match = regex "^JUNK"
action = drop
EOF2
it_daemon "$T/u.conf"
L=$T/udpmuxd.log

# a real flow: 3 datagrams out, 3 echoed back
send 127.0.0.1:6001 "FWD x" 3 >"$T/fwd.json"
it_eq "$(jget "$T/fwd.json" "d['replies']")" 3 "echo replies"
out_b=$(jget "$T/fwd.json" "d['sent_bytes']")
back_b=$(jget "$T/fwd.json" "d['reply_bytes']")
it_wait_log "$L" "flow new: peer 127\.0\.0\.1:6001 to 127\.0\.0\.1:$IT_PORT, route fwd, backend 127\.0\.0\.1:5001 \(how: probe, worker 0\)" 5
send 127.0.0.1:6002 "JUNK y" 1 --no-reply >/dev/null # "JUNK y 00000": 12 bytes
it_wait_log "$L" "flow dropped: peer 127\.0\.0\.1:6002, route junk, 1 datagram, 12 bytes: action \(worker 0\)" 5
# idle-timeout 1 s, and the timer wheel's tick
it_wait_log "$L" "flow ended: peer 127\.0\.0\.1:6001, route fwd, backend 127\.0\.0\.1:5001: idle; from peer 3 datagrams $out_b bytes, to peer 3 datagrams $back_b bytes" 6

# a flood: 3000 dropped datagrams in a fraction of a second; the bucket
# (100 lines at once, 50/s) lets a few through
before=$(grep -c "flow dropped" "$L")
t0=$(it_now_ms)
send 127.0.0.1:6003 "JUNK flood" 3000 --no-reply >/dev/null
t1=$(it_now_ms)
sleep 1.2
send 127.0.0.1:6004 "JUNK after" 1 --no-reply >/dev/null
it_wait_log "$L" "flow log: worker 0: [0-9]+ lines suppressed \(more than 50/s\)" 5
it_wait_log "$L" "flow dropped: peer 127\.0\.0\.1:6004" 5
dropped=$(jget <(ctl -j stats) "d['stats']['drop.action']")
lines=$(($(grep -c "flow dropped" "$L") - before))
supp=$(grep -Eo "[0-9]+ lines suppressed" "$L" | awk '{s += $1} END {print s}')
it_log "flood: $dropped drops counted, $lines lines, $supp suppressed, sent in $((t1 - t0)) ms"
[ "$dropped" -ge 1000 ] || it_fail "only $dropped drops counted: no flood"
# burst + rate x (send time + the pause) + the line after, with room
max=$((100 + 50 * (t1 - t0 + 1500) / 1000 + 2))
[ "$lines" -le "$max" ] || it_fail "$lines flow lines for a flood (at most $max)"
[ "$((lines + supp))" -eq "$((dropped - 1))" ] ||
    it_fail "lines $lines + suppressed $supp != drops $dropped - 1 (the first JUNK)"

# log-level = info: not a line
sed -i 's/^log-level = debug/log-level = info/' "$T/u.conf"
kill -HUP "$UMXD_PID"
it_wait_log "$L" "configuration reloaded" 5
n0=$(grep -c "flow " "$L")
send 127.0.0.1:6005 "JUNK quiet" 1 --no-reply >/dev/null
send 127.0.0.1:6006 "FWD quiet" 1 >/dev/null
sleep 0.3
it_eq "$(grep -c "flow " "$L")" "$n0" "flow lines at log-level info"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
