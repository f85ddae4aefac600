#!/usr/bin/env bash
# ctl-commands.sh - every udpmuxctl command against a running udpmuxd with
# traffic, numbers checked against what was sent: status, stats, routes,
# flows (filters, limit), drain/undrain of a route and of a backend (new
# flows refused or moved, existing flows keep going), reload (good and
# bad), -j JSON of each, the control socket's mode and peer check, and the
# exit codes 0, 1, 64, 69.
. "$(dirname "$0")/lib.sh"
it_init "$@"
. "$(dirname "$0")/ctl-lib.sh"

it_echo b1 127.0.0.1:5001 b1
it_echo b2 127.0.0.1:5002 b2
it_wait_udp 5001
it_wait_udp 5002

write_conf()
{
    it_conf "$T/u.conf" <<EOF
[listen]
address = 127.0.0.1:$IT_PORT

[route fwd]
match = regex "^FWD"
forward = 127.0.0.1:5001, 127.0.0.1:5002

[route ping]
match = regex "^PING"
action = echo

[route junk]
match = regex "^JUNK"
action = drop
$1
EOF
}
write_conf ""
it_daemon "$T/u.conf"

# -- the socket: 0660, and only root, the daemon's uid or its group get in ----
it_eq "$(stat -c %a "$T/control.sock")" 660 "control socket mode"

# -- traffic: 6 forwarded flows x 4 datagrams, 10 echoed, 3 dropped --------------
fwd_sent=0 fwd_bytes=0 fwd_rbytes=0
for i in 1 2 3 4 5 6; do
    send "127.0.0.1:600$i" "FWD flow$i" 4 >"$T/fwd$i.json"
    ctl_eq "$(jget "$T/fwd$i.json" "d['replies']")" 4 "replies on flow $i"
    fwd_sent=$((fwd_sent + 4))
    fwd_bytes=$((fwd_bytes + $(jget "$T/fwd$i.json" "d['sent_bytes']")))
    fwd_rbytes=$((fwd_rbytes + $(jget "$T/fwd$i.json" "d['reply_bytes']")))
done
send 127.0.0.1:6100 "PING" 10 >"$T/ping.json"
ctl_eq "$(jget "$T/ping.json" "d['replies']")" 10 "echo replies"
ping_bytes=$(jget "$T/ping.json" "d['sent_bytes']")
send 127.0.0.1:6200 "JUNK" 3 --no-reply >"$T/junk.json"
sleep 0.3

# -- status -----------------------------------------------------------------------------
ctl status >"$T/status.txt"
it_contains "$(cat "$T/status.txt")" "config:     $T/u.conf"
it_contains "$(cat "$T/status.txt")" "127.0.0.1:$IT_PORT"
it_contains "$(cat "$T/status.txt")" "workers:    2"
ctl -j status >"$T/status.json"
ctl_eq "$(jget "$T/status.json" "d['status']['workers']")" 2 "status workers"
ctl_eq "$(jget "$T/status.json" "d['status']['routes']")" 3 "status routes"
dpid=$(jget "$T/status.json" "d['status']['pid']")
it_eq "$(cat "/proc/$dpid/comm")" udpmuxd "status pid"
it_eq "$(jget "$T/status.json" "d['listeners'][0]['addr']")" "127.0.0.1:$IT_PORT" "listener"
it_eq "$(jget "$T/status.json" "d['status']['config']")" "$T/u.conf" "config path"
loaded=$(jget "$T/status.json" "d['status']['loaded_at']")
now=$(date +%s)
[ $((now - loaded)) -ge 0 ] && [ $((now - loaded)) -lt 60 ] || it_fail "loaded_at $loaded vs now $now"

# -- stats: key=value, every number equal to what was sent ----------------------------
ctl stats >"$T/stats.txt"
grep -qx "rx.datagrams=$((fwd_sent + 10 + 3))" "$T/stats.txt" ||
    it_fail "rx.datagrams: $(grep '^rx.datagrams=' "$T/stats.txt")"
ctl -j stats >"$T/stats.json"
st() { jget "$T/stats.json" "d['stats']['$1']"; }
ctl_eq "$(st rx.datagrams)" $((fwd_sent + 13)) "rx.datagrams"
ctl_eq "$(st rx.bytes)" $((fwd_bytes + ping_bytes + $(jget "$T/junk.json" "d['sent_bytes']"))) "rx.bytes"
ctl_eq "$(st tx.datagrams)" $((fwd_sent + 10)) "tx.datagrams"
ctl_eq "$(st upstream.tx.datagrams)" "$fwd_sent" "upstream.tx.datagrams"
ctl_eq "$(st upstream.tx.bytes)" "$fwd_bytes" "upstream.tx.bytes"
ctl_eq "$(st upstream.rx.datagrams)" "$fwd_sent" "upstream.rx.datagrams"
ctl_eq "$(st upstream.rx.bytes)" "$fwd_rbytes" "upstream.rx.bytes"
ctl_eq "$(st builtin.echo_replies)" 10 "builtin.echo_replies"
ctl_eq "$(st drop.action)" 3 "drop.action"
ctl_eq "$(st flows.created)" 6 "flows.created"
ctl_eq "$(st flows.active)" 6 "flows.active"
ctl_eq "$(st classify.runs)" $((6 + 10 + 3)) "classify.runs (first datagram of a flow)"
ctl_eq "$(grep -c = "$T/stats.txt")" "$(jget "$T/stats.json" "len(d['stats'])")" "text and JSON agree"

# -- routes: per-route traffic, flows, drops; backends with health --------------------
ctl routes >"$T/routes.txt"
it_contains "$(cat "$T/routes.txt")" "route fwd: forward  match: regex \"^FWD\""
grep -Eq "backend 127.0.0.1:5001 +up" "$T/routes.txt" || it_fail "backend 5001 not up in routes"
ctl -j routes >"$T/routes.json"
rt() { jget "$T/routes.json" "[r for r in d['routes'] if r['name']=='$1'][0]['$2']"; }
ctl_eq "$(rt fwd rx.datagrams)" "$fwd_sent" "fwd rx.datagrams"
ctl_eq "$(rt fwd rx.bytes)" "$fwd_bytes" "fwd rx.bytes"
ctl_eq "$(rt fwd tx.datagrams)" "$fwd_sent" "fwd tx.datagrams"
ctl_eq "$(rt fwd tx.bytes)" "$fwd_rbytes" "fwd tx.bytes"
ctl_eq "$(rt fwd flows.active)" 6 "fwd active flows"
ctl_eq "$(rt fwd flows.created)" 6 "fwd flows created"
ctl_eq "$(rt ping rx.datagrams)" 10 "ping rx"
ctl_eq "$(rt ping tx.bytes)" "$(jget "$T/ping.json" "d['reply_bytes']")" "ping tx.bytes"
ctl_eq "$(rt junk drops)" 3 "junk drops"
ctl_eq "$(rt junk classify.matched)" 3 "junk matched"
ctl_eq "$(rt junk drop.action)" 3 "junk drops by reason"
ctl_eq "$(rt fwd drops)" 0 "fwd drops"
grep -q "drops by reason: action=3" "$T/routes.txt" || it_fail "text routes: no drop reasons"

it_eq "$(jget "$T/routes.json" "[b['health'] for b in d['routes'][0]['backends']]")" \
    "['up', 'up']" "backend health"

# -- flows: every flow with its counters; filters and the limit --------------------------
ctl -j flows >"$T/flows.json"
ctl_eq "$(jget "$T/flows.json" "len(d['flows'])")" 6 "flows listed"
ctl_eq "$(jget "$T/flows.json" "d['summary']['matched']")" 6 "flows matched"
it_eq "$(jget "$T/flows.json" "sorted(f['peer'] for f in d['flows'])")" \
    "['127.0.0.1:6001', '127.0.0.1:6002', '127.0.0.1:6003', '127.0.0.1:6004', '127.0.0.1:6005', '127.0.0.1:6006']" \
    "flow peers"
it_eq "$(jget "$T/flows.json" "set((f['route'],f['rx.datagrams'],f['tx.datagrams'],f['state']) for f in d['flows'])")" \
    "{('fwd', 4, 4, 'established')}" "per-flow counters"
it_eq "$(jget "$T/flows.json" "sum(f['rx.bytes'] for f in d['flows'])")" "$fwd_bytes" "flow bytes"
ctl -j flows -p 127.0.0.1:6003 >"$T/flows3.json"
ctl_eq "$(jget "$T/flows3.json" "len(d['flows'])")" 1 "peer filter"
it_eq "$(jget "$T/flows3.json" "d['flows'][0]['rx.bytes']")" "$(jget "$T/fwd3.json" "d['sent_bytes']")" \
    "flow 3 bytes"
ctl -j flows -p 127.0.0.1 -n 2 >"$T/flows2.json"
ctl_eq "$(jget "$T/flows2.json" "len(d['flows'])")" 2 "limit"
ctl_eq "$(jget "$T/flows2.json" "d['summary']['truncated']")" 1 "truncated flag"
ctl flows -r ping >"$T/flows-ping.txt"
it_contains "$(cat "$T/flows-ping.txt")" "0 of 0 matching flows shown"
ctl flows >"$T/flows.txt"
ctl_eq "$(grep -c '^fwd ' "$T/flows.txt")" 6 "text flows"
# which backend each flow went to, for the backend drain below
b1_peer=$(jget "$T/flows.json" "([f['peer'] for f in d['flows'] if f['backend']=='127.0.0.1:5001']+[''])[0]")

# -- drain a route: no new flows, existing ones keep going ---------------------------------
ctl drain fwd | grep -q "route fwd: draining" || it_fail "drain fwd output"
ctl_eq "$(jget <(ctl -j routes) "d['routes'][0]['draining']")" 1 "route draining flag"
before=$(jget <(ctl -j stats) "d['stats']['drop.no_backend']")
send 127.0.0.1:6010 "FWD new" 1 --timeout 1 >"$T/new.json"
ctl_eq "$(jget "$T/new.json" "d['replies']")" 0 "new flow on a drained route"
ctl_eq "$(jget <(ctl -j stats) "d['stats']['drop.no_backend']")" $((before + 1)) "drop counted"
ctl_eq "$(jget <(ctl -j routes) "d['routes'][0]['drop.no_backend']")" 1 "drop counted on the route"
send 127.0.0.1:6001 "FWD old" 2 >"$T/old.json"
ctl_eq "$(jget "$T/old.json" "d['replies']")" 2 "existing flow while draining"
ctl undrain fwd >/dev/null
send 127.0.0.1:6011 "FWD after" 1 >"$T/after.json"
ctl_eq "$(jget "$T/after.json" "d['replies']")" 1 "new flow after undrain"

# -- drain a backend: new flows go to the other one; its flows keep going --------------
ctl -j drain 127.0.0.1:5001 >"$T/drain-b.json"
it_eq "$(jget "$T/drain-b.json" "d['drains'][0]['health']")" draining "backend drain answer"
grep -Eq "backend 127.0.0.1:5001 +draining" <(ctl routes) || it_fail "routes does not show draining"
tags=""
for i in 0 1 2 3 4 5 6 7; do
    send "127.0.0.1:602$i" "FWD spread$i" 1 >"$T/spread$i.json"
    tags="$tags $(jget "$T/spread$i.json" "','.join(d['tags'])")"
done
it_eq "$(echo $tags | tr ' ' '\n' | sort -u | tr '\n' ' ')" "b2 " "new flows avoid the drained backend"
if [ -n "$b1_peer" ]; then
    send "$b1_peer" "FWD stay" 1 >"$T/stay.json"
    it_eq "$(jget "$T/stay.json" "d['tags']")" "['b1']" "existing flow stays on the drained backend"
fi
ctl undrain 127.0.0.1:5001 | grep -q "accepting new flows" || it_fail "undrain backend"
ctl_eq "$(ctl_rc -s "$T/control.sock" drain nosuch)" 1 "drain of an unknown target"
it_contains "$(cat "$T/ctl-last.err")" "no route or backend"

# -- reload: good, then bad (the old config keeps running) --------------------------------
write_conf "
[route extra]
match = regex \"^XTRA\"
action = echo"
it_contains "$(ctl reload)" "reloaded: 4 routes"
ctl -j status >"$T/status2.json"
ctl_eq "$(jget "$T/status2.json" "d['status']['reloads_ok']")" 1 "reloads_ok"
ctl_eq "$(jget "$T/status2.json" "d['status']['routes']")" 4 "routes after reload"
ctl_eq "$(jget <(ctl -j routes) "[r for r in d['routes'] if r['name']=='fwd'][0]['flows.active']")" \
    $((6 + 1 + 8)) "fwd flows survive the reload"
send 127.0.0.1:6300 "XTRA" 1 >"$T/xtra.json"
ctl_eq "$(jget "$T/xtra.json" "d['replies']")" 1 "new route answers"
echo "this is not ini" >>"$T/u.conf"
ctl_eq "$(ctl_rc -s "$T/control.sock" reload)" 1 "bad reload exit status"
it_contains "$(cat "$T/ctl-last.err")" "u.conf"
ctl -j status >"$T/status3.json"
ctl_eq "$(jget "$T/status3.json" "d['status']['reloads_failed']")" 1 "reloads_failed"
it_contains "$(jget "$T/status3.json" "d['status']['last_reload_error']")" "u.conf"
ctl_eq "$(jget "$T/status3.json" "d['status']['routes']")" 4 "old config still runs"
ctl -j reload >"$T/reload-err.json" || true
it_eq "$(jget "$T/reload-err.json" "d['error']['code']")" EINVAL "JSON error record"

# -- JSON of every command parses ----------------------------------------------------------
for c in status stats routes flows; do
    ctl -j $c | $IT_PY -c 'import json,sys; json.load(sys.stdin)' || it_fail "-j $c is not JSON"
done

# -- peer credentials: a socket opened to all is still refused to strangers ---------------
chmod 0666 "$T/control.sock"
cp "$UDPMUXCTL" "$T/udpmuxctl"
rc=0
timeout 10 setpriv --reuid=65534 --regid=65534 --clear-groups "$T/udpmuxctl" \
    -s "$T/control.sock" status >"$T/nobody.out" 2>"$T/nobody.err" || rc=$?
ctl_eq "$rc" 1 "stranger's exit status"
it_contains "$(cat "$T/nobody.err")" "permission denied"
chmod 0660 "$T/control.sock"
rc=0
timeout 10 setpriv --reuid=65534 --regid=65534 --clear-groups "$T/udpmuxctl" \
    -s "$T/control.sock" status >/dev/null 2>&1 || rc=$?
ctl_eq "$rc" 69 "stranger without file access"

# -- exit codes: usage 64, unreachable 69 ---------------------------------------------
ctl_eq "$(ctl_rc)" 64 "no command"
ctl_eq "$(ctl_rc -s "$T/control.sock" frobnicate)" 64 "unknown command"
ctl_eq "$(ctl_rc -s "$T/control.sock" flows -n 0)" 64 "bad limit"
ctl_eq "$(ctl_rc -s "$T/control.sock" drain)" 64 "drain without target"
ctl_eq "$(ctl_rc -s "$T/control.sock" status extra)" 64 "extra operand"
ctl_eq "$(ctl_rc -s "$T/nosuch.sock" status)" 69 "no socket"
it_stop udpmuxd
ctl_eq "$(ctl_rc -s "$T/control.sock" status)" 69 "daemon stopped"
it_pass
