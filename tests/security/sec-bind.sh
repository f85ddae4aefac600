#!/bin/bash
# sec-bind.sh - C1, C2, C13: no cross-user capture of the shared port.
#
# While udpmuxd runs (two workers: a SO_REUSEPORT group, owned by root),
# uid 65534 tries to bind every address that overlaps each listener
# (specific, wildcard, IPv4, IPv6, dual-stack, v4-mapped) with every mix of
# SO_REUSEADDR/SO_REUSEPORT, on privileged ports, first with the default
# ip_unprivileged_port_start and then with 0 (what container runtimes set).
# Every attempt must fail. Then 1000 datagrams per listener must all come
# back from the daemon, `ss` must show only udpmuxd on the ports, the
# wildcard sockets must have IP_MULTICAST_ALL=0 / explicit IPV6_V6ONLY and
# no SO_REUSEADDR, and a group joined by another process must not reach the
# daemon (while it does reach that process: the control).
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/sec-lib.sh"
it_init "$@"

ip link set lo multicast on
ip route add 239.0.0.0/8 dev lo

IT_CONF_EXTRA=$'response-rate = 0\nnew-flow-rate = 0'
it_conf "$T/a.conf" <<EOC
[listen]
address = 127.0.0.1:553
address = 0.0.0.0:554
address = [::]:555
address = [::1]:556

[route echo]
match = any
action = echo
EOC
it_daemon "$T/a.conf" a
# a second daemon for the dual-stack wildcard ([::]:557 takes IPv4 too)
cat >"$T/b.conf" <<EOC
[udpmux]
control = $T/b.sock
attach = $T/b-attach.sock
workers = 2
response-rate = 0

[listen]
address = [::]:557
dual-stack = yes

[route echo]
match = any
action = echo
EOC
it_daemon "$T/b.conf" b

matrix()
{
    local out="$T/matrix-$1.log" rc=0
    : >"$out"
    while read -r addr v6only; do
        $SEC_PY bind --as-uid 65534 --addr "$addr" --v6only "$v6only" >>"$out" 2>&1 || rc=1
    done <<EOM
127.0.0.1:553 1
0.0.0.0:553 1
[::]:553 0
[::ffff:127.0.0.1]:553 0
0.0.0.0:554 1
127.0.0.1:554 1
127.0.0.2:554 1
[::]:554 0
[::ffff:127.0.0.2]:554 0
[::]:555 1
[::]:555 0
[::1]:555 1
[::1]:556 1
[::]:556 1
[::]:556 0
[::]:557 1
[::]:557 0
[::1]:557 1
0.0.0.0:557 1
127.0.0.1:557 1
EOM
    local n
    n=$(grep -c "uid 65534 bind" "$out")
    it_eq "$n" 80 "bind attempts made ($1)"
    if [ $rc != 0 ] || grep -q BOUND "$out"; then
        grep BOUND "$out" >&2 || true
        it_fail "uid 65534 could bind an address overlapping udpmuxd ($1)"
    fi
    it_log "$1: 80 of 80 binds by uid 65534 refused ($(grep -c EADDRINUSE "$out") EADDRINUSE, $(grep -c EACCES "$out") EACCES)"
}

matrix default
sysctl -qw net.ipv4.ip_unprivileged_port_start=0
matrix unprivileged-ports-0
# with the port boundary gone only the uid check is left: all must be
# EADDRINUSE now (no EACCES)
it_eq "$(grep -c EACCES "$T/matrix-unprivileged-ports-0.log")" 0 "EACCES with start=0"

# every datagram reached the daemon (echo comes back byte-exact)
for to in 127.0.0.1:553 127.0.0.1:554 "[::1]:555" "[::1]:556" "[::1]:557" 127.0.0.1:557; do
    got=$($SEC_PY count --to "$to" --n 1000 --max-seconds 30)
    it_eq "$got" 1000 "echoes from $to"
done
it_log "6 x 1000 datagrams answered by udpmuxd"

# only udpmuxd's sockets on the ports, owned by root (uid omitted by ss)
ss -uanpe >"$T/ss.log"
for p in 553 554 555 556 557; do
    lines=$(grep -E "[]:*.0-9]:$p[[:space:]]" "$T/ss.log" || true)
    [ -n "$lines" ] || it_fail "no socket on port $p in ss"
    if echo "$lines" | grep -v '"udpmuxd"' | grep -q .; then
        it_fail "a socket other than udpmuxd's on port $p: $(echo "$lines" | grep -v udpmuxd)"
    fi
    if echo "$lines" | grep -q "uid:"; then
        it_fail "a socket on port $p not owned by root: $lines"
    fi
done

# socket options of the wildcard listeners
$SEC_PY sockopts --pid "$(sec_dpid a)" --port 554 >"$T/opt554.log"
$SEC_PY sockopts --pid "$(sec_dpid a)" --port 555 >"$T/opt555.log"
$SEC_PY sockopts --pid "$(sec_dpid b)" --port 557 >"$T/opt557.log"
it_eq "$(wc -l <"$T/opt554.log")" 2 "sockets on 0.0.0.0:554 (one per worker)"
it_eq "$(grep -c '"mcast_all": 0' "$T/opt554.log")" 2 "IP_MULTICAST_ALL=0 on 0.0.0.0:554"
it_eq "$(grep -c '"reuseaddr": 0' "$T/opt554.log")" 2 "no SO_REUSEADDR on 0.0.0.0:554"
it_eq "$(grep -c '"v6only": 1' "$T/opt555.log")" 2 "IPV6_V6ONLY=1 on [::]:555"
it_eq "$(grep -c '"mcast_all": 0' "$T/opt555.log")" 2 "IPV6_MULTICAST_ALL=0 on [::]:555"
it_eq "$(grep -c '"v6only": 0' "$T/opt557.log")" 2 "IPV6_V6ONLY=0 on dual-stack [::]:557"
it_eq "$(grep -c '"mcast_all_v4": 0' "$T/opt557.log")" 2 "IP_MULTICAST_ALL=0 on dual-stack [::]:557"

# multicast: another process joins 239.1.2.3 on its own port; datagrams to
# the group on the daemon's wildcard port must not reach the daemon
before=$(sec_stat rx.datagrams)
res=$($SEC_PY mcast --group 239.1.2.3 --port 554 --other-port 5999 --n 20)
after=$(sec_stat rx.datagrams)
it_log "multicast: $res, daemon rx.datagrams $before -> $after"
it_contains "$res" "daemon=0 " "the daemon answered group traffic"
it_contains "$res" "control=20" "the control socket did not get the group (test setup broken)"
it_eq "$after" "$before" "daemon rx.datagrams changed by group traffic"
[ "$before" -ge 4000 ] || it_fail "rx.datagrams not readable via udpmuxctl ($before)"

sec_no_refused a
sec_no_refused b
it_pass
