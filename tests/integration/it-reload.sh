#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-reload.sh - SIGHUP with a changed config while a client sends
# continuously: the established flow loses nothing and keeps its backend
# (even though the reload adds a second backend to its pool and a new
# route); new flows see the new config.
. "$(dirname "$0")/lib.sh"
it_init "$@"

it_echo a 127.0.0.1:5001
it_echo b 127.0.0.1:5002
it_echo n 127.0.0.1:5003
it_wait_udp 5001
it_wait_udp 5002
it_wait_udp 5003

it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route stream]
match = prefix 7365713d
forward = 127.0.0.1:5001
idle-timeout = 30s
CONF
it_daemon "$T/udpmux.conf"

# 4 s at 200 datagrams/s from one source port; the reload lands at ~1.5 s
$IT_UDP stream --to "127.0.0.1:$IT_PORT" --seconds 4 --rate 200 --drain 1 >"$T/stream.json" &
spid=$!
IT_PIDS+=("$spid")
sleep 1.5
it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route new]
match = prefix 6e65773d
forward = 127.0.0.1:5003

[route stream]
match = prefix 7365713d
forward = 127.0.0.1:5002, 127.0.0.1:5001
idle-timeout = 45s
CONF
kill -HUP "$UMXD_PID"
it_wait_log "$T/udpmuxd.log" "configuration reloaded" 5
wait "$spid" || it_fail "stream client failed"
res=$(cat "$T/stream.json")
it_log "stream: $res"
sent=$(/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["sent"])' <<<"$res")
nlost=$(/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["nlost"])' <<<"$res")
tags=$(/usr/bin/python3 -c 'import json,sys; print(",".join(sorted(json.load(sys.stdin)["tags"])))' <<<"$res")
[ "$sent" -ge 600 ] || it_fail "the client sent only $sent datagrams"
it_eq "$nlost" 0 "datagrams lost across the reload"
it_eq "$tags" "a" "backends that answered the established flow"
# the new route works for a new flow
# the backend's counters survived the reload although it moved from first
# to second in forward = (they follow its address): every datagram of the
# stream, before and after, counts for 127.0.0.1:5001; none for the new one
timeout 20 "$UDPMUXCTL" -s "$T/control.sock" -j routes >"$T/routes.json" || it_fail "udpmuxctl routes"
per=$(/usr/bin/python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
print(" ".join("%s=%s/%s/%s" % (b["addr"], b["tx.datagrams"], b["rx.datagrams"], b["flows.active"])
               for r in d["routes"] if r["name"] == "stream" for b in r["backends"]))' "$T/routes.json")
it_eq "$per" "127.0.0.1:5002=0/0/0 127.0.0.1:5001=$sent/$sent/1" "per-backend counters across the reload"
a=$(it_ask "127.0.0.1:$IT_PORT" "new=1")
it_contains "$a" "n|from=" "the route added by the reload"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
