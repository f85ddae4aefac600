#!/usr/bin/env bash
# shared.sh - `upstream = shared`: one upstream socket per worker carries
# every flow of the route; flows differ by their source address (a prefix of
# local addresses) and replies find their flow by the address they were sent
# to. The test runs udpmuxd with a descriptor limit of 300:
#  - 2000 flows each get their own payload back (none gets another flow's
#    answer), the backend sees 2000 distinct sources, all inside the prefix;
#    the same run with `upstream = connected` (a socket per flow) stays
#    under the limit's share of flows, which shows the test measures what
#    it claims;
#  - a datagram to the shared socket from anyone but the flow's backend, or
#    to an address no flow owns, is counted (upstream.rx.foreign) and not
#    delivered;
#  - a source prefix that is not local is refused (-t, file:line);
#  - IPv6 with an AnyIP prefix; flows that expire and are replaced (the
#    address map under churn) keep getting their own answers;
#  - a reload that turns the route into `upstream = connected` keeps the
#    running flow (it keeps its shared socket) with no loss.
. "$(dirname "$0")/lib.sh"
it_init "$@"
UDPMUXCTL=${UDPMUXCTL:?set by meson}
N=2000

it_bg backend 150 $IT_UDP echo --listen 127.0.0.1:5000 --tag B --from-file "$T/peers" --max-seconds 140
it_wait_udp 5000

# the daemon under a low descriptor limit (exec keeps the pid it_daemon finds)
REAL=$UDPMUXD
UDPMUXD=$T/udpmuxd-lowfd
printf '#!/bin/sh\nulimit -n 300\nexec "%s" "$@"\n' "$REAL" >"$UDPMUXD"
chmod +x "$UDPMUXD"
# the client side opens N sockets at once
ulimit -n "$(ulimit -Hn)"

conf() { # conf FILE MODE
    IT_CONF_EXTRA=$'new-flow-rate = 0\nmax-flows = 20000' it_conf "$1" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route all]
match = any
forward = 127.0.0.1:5000
upstream = $2
source = 127.77.0.0/16
idle-timeout = 60s
CONF
}
stat() { "$UDPMUXCTL" -s "$T/control.sock" stats | sed -n "s/^$1=//p"; }

# 0. the prefix must be local: refused with file:line until it is routed
conf "$T/nonlocal.conf" shared
sed -i 's|^source = .*|source = 10.99.0.0/16|' "$T/nonlocal.conf"
if out=$("$REAL" -t -c "$T/nonlocal.conf" 2>&1); then
    it_fail "a non-local source prefix passed -t: $out"
fi
it_contains "$out" "nonlocal.conf:"
it_contains "$out" "source: 10.99.0.1 is not a local address"
ip route add local 10.99.0.0/16 dev lo
"$REAL" -t -c "$T/nonlocal.conf" >/dev/null 2>&1 || it_fail "an AnyIP prefix was refused"
it_log "non-local source prefix refused, accepted once routed to lo"

# 1. per-flow sockets under the same limit: a few flows only
conf "$T/connected.conf" connected
it_daemon "$T/connected.conf" connected
got=$(timeout 60 $IT_UDP burst --to "127.0.0.1:$IT_PORT" --flows $N --timeout 5 --check 2>"$T/burst0.err")
it_log "upstream = connected, nofile 300: $got of $N flows answered (drop.socket $(stat drop.socket))"
[ "$got" -lt 400 ] || it_fail "$got flows with a socket each under a 300-descriptor limit?"
it_stop connected
: >"$T/peers"

# 2. shared: every flow, each with its own answer
conf "$T/shared.conf" shared
it_daemon "$T/shared.conf" shared
# paced (as in source.sh) so the overload budget sheds nothing on a loaded
# machine; sleep() granularity makes the real rate lower
got=$(timeout 60 $IT_UDP burst --to "127.0.0.1:$IT_PORT" --flows $N --timeout 10 --check --rate 2000 2>"$T/burst.err")
it_log "upstream = shared, nofile 300: $got of $N flows answered; $(cat "$T/burst.err")"
it_contains "$(cat "$T/burst.err")" "wrong answers: 0"
# a loaded machine may shed a few newcomers (overload budget): 95 %
[ "$got" -ge $((N * 95 / 100)) ] || it_fail "only $got of $N flows answered"
it_eq "$(stat drop.socket)" 0 "socket drops"
# a source is an address and the worker's port: each worker hands out the
# prefix's addresses on its own
srcs=$(sort -u "$T/peers" | wc -l)
inpfx=$(sort -u "$T/peers" | grep -c '^127\.77\.' || true)
ports=$(cut -d: -f2 "$T/peers" | sort -u | wc -l)
it_log "backend saw $srcs sources ($inpfx in 127.77.0.0/16) on $ports ports (one per worker)"
[ "$srcs" -ge "$got" ] || it_fail "backend saw $srcs sources for $got flows"
it_eq "$inpfx" "$srcs" "sources inside the prefix"
[ "$ports" -le 2 ] || it_fail "$ports upstream ports for 2 workers"

# 3. foreign datagrams to the shared socket
read -r faddr fport <<<"$(head -n 1 "$T/peers" | tr ':' ' ')"
f0=$(stat upstream.rx.foreign)
# from a host that is not the backend, to a live flow's address
timeout 5 $IT_PY - "$faddr" "$fport" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.9", 0))
s.sendto(b"INJECTED", (sys.argv[1], int(sys.argv[2])))
# from the backend's address, to an address no flow owns (the prefix's
# broadcast address is never handed out)
s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s2.bind(("127.0.0.1", 0))
s2.sendto(b"INJECTED", ("127.77.255.255", int(sys.argv[2])))
PY
for _ in $(seq 1 50); do
    [ "$(stat upstream.rx.foreign)" -ge $((f0 + 2)) ] && break
    sleep 0.1
done
it_eq "$(stat upstream.rx.foreign)" $((f0 + 2)) "foreign datagrams counted"

# 4. IPv6: a prefix routed to lo (AnyIP), 200 flows
it_stop shared
ip -6 route add local fd00:77::/64 dev lo
it_bg backend6 100 $IT_UDP echo --listen "[::1]:5001" --tag B6 --from-file "$T/peers6" --max-seconds 90
it_wait_udp 5001
IT_CONF_EXTRA=$'new-flow-rate = 0' it_conf "$T/v6.conf" <<CONF
[listen]
address = [::1]:$IT_PORT

[route all]
match = any
forward = [::1]:5001
upstream = shared
source = fd00:77::/64
CONF
it_daemon "$T/v6.conf" v6
got=$(timeout 60 $IT_UDP burst --to "[::1]:$IT_PORT" --flows 200 --timeout 10 --check --rate 2000 2>"$T/burst6.err")
it_log "IPv6: $got of 200 flows answered; $(cat "$T/burst6.err"); $(sort -u "$T/peers6" | grep -c '^\[fd00:77::') sources in fd00:77::/64"
it_eq "$got" 200 "IPv6 flows answered"
it_contains "$(cat "$T/burst6.err")" "wrong answers: 0"
it_eq "$(sort -u "$T/peers6" | grep -c '^\[fd00:77::')" 200 "IPv6 sources in the prefix"
it_stop v6
it_daemon "$T/shared.conf" shared

# 5. churn: flows expire (1 s) while new ones arrive, so addresses leave
# the map and are handed out again; every round must get its own answers
it_stop shared
sed -e 's/^idle-timeout = 60s/idle-timeout = 1s\nunanswered-timeout = 1s/' \
    -e 's/^max-flows = 20000/max-flows = 1024/' "$T/shared.conf" >"$T/churn.conf"
it_daemon "$T/churn.conf" churn
for round in 1 2 3; do
    got=$(timeout 60 $IT_UDP burst --to "127.0.0.1:$IT_PORT" --flows 400 --timeout 10 --check --rate 2000 2>"$T/churn$round.err")
    it_log "churn round $round: $got of 400 answered; $(cat "$T/churn$round.err"); expired so far $(stat flows.expired)"
    it_contains "$(cat "$T/churn$round.err")" "wrong answers: 0"
    [ "$got" -ge 380 ] || it_fail "churn round $round: only $got of 400 answered"
    sleep 2.5
done
[ "$(stat flows.expired)" -ge 700 ] || it_fail "flows did not expire between rounds ($(stat flows.expired))"
it_stop churn
it_daemon "$T/shared.conf" shared

# 6. reload to per-flow sockets while a flow runs: no loss
$IT_UDP stream --to "127.0.0.1:$IT_PORT" --seconds 4 --rate 200 --drain 1 >"$T/stream.json" &
spid=$!
IT_PIDS+=("$spid")
sleep 1.5
conf "$T/shared.conf" connected
kill -HUP "$UMXD_PID"
it_wait_log "$T/shared.log" "configuration reloaded" 5
wait "$spid" || it_fail "stream client failed"
res=$(cat "$T/stream.json")
it_log "stream across the reload: $res"
nlost=$(/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["nlost"])' <<<"$res")
it_eq "$nlost" 0 "datagrams lost across the reload"
# new flows after the reload use a socket each again: another port than
# the shared sockets'
got=$(it_ask "127.0.0.1:$IT_PORT" "after")
it_contains "$got" "B|from=127.77."
nport=$(sed -n 's/.*from=[0-9.]*:\([0-9]*\)|.*/\1/p' <<<"$got")
it_log "new flow after the reload came from port $nport"
if cut -d: -f2 "$T/peers" | head -n -1 | grep -qx "$nport"; then
    it_fail "new flow after the reload still on a shared socket ($nport)"
fi
it_pass
