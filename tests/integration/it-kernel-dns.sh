#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-kernel-dns.sh - `datapath = kernel`: dnsmasq in its own namespace, dig
# in another, udpmuxd in the middle. Only the first datagram of each flow
# reaches udpmuxd (its NFQUEUE counters), conntrack carries the rest in both
# directions (packets and bytes on the flow, none on the workers), the
# answers come back from the public address and port (dig drops any other
# source), and the backend sees udpmuxd's host (masquerade):
#
#   cli ns 10.1.0.2 --- 10.1.0.1:4000 [udpmuxd ns] 10.2.0.1 --- 10.2.0.2:5053 be ns
. "$(dirname "$0")/lib.sh"
it_init "$@"
it_child_ns cli 10.1.0.1 10.1.0.2
it_child_ns be 10.2.0.1 10.2.0.2
# forwarding is the host's decision (udpmux.conf(5), datapath)
sysctl -qw net.ipv4.ip_forward=1

it_bg dnsmasq 60 ip netns exec "$(it_ns be)" dnsmasq --no-daemon --conf-file=/dev/null \
    --no-resolv --no-hosts --listen-address=10.2.0.2 --bind-interfaces --port=5053 --user=root \
    --pid-file="$T/dnsmasq.pid" --address=/www.example.test/192.0.2.10 --log-queries \
    --log-facility="$T/dnsmasq-queries.log"
for i in $(seq 1 50); do
    ip netns exec "$(it_ns be)" ss -Hlun "sport = :5053" | grep -q . && break
    sleep 0.1
done

IT_CONF_EXTRA="metrics = 127.0.0.1:9100"
it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 10.1.0.1:$IT_PORT

[route stun]
match = stun
action = stun

[route dns]
match = dns
forward = 10.2.0.2:5053
datapath = kernel
CONF
it_daemon "$T/udpmux.conf"
it_log_has udpmuxd "kernel datapath: table ip/ip6 udpmuxd, NFQUEUE"

ctl() { timeout 5 "$UDPMUXCTL" -s "$T/control.sock" "$@"; }
stat() { ctl stats | tr ' ' '\n' | sed -n "s/^$1=//p"; }
dig_cli() { timeout 10 ip netns exec "$(it_ns cli)" dig @10.1.0.1 -p "$IT_PORT" +tries=1 +time=2 "$@"; }

# the table is there, with its queue rule and the kernel route's DNAT
nft list table ip udpmuxd >"$T/table.txt"
grep -q 'queue num 4747 bypass' "$T/table.txt" || it_fail "no NFQUEUE rule: $(cat "$T/table.txt")"
grep -q 'dnat to 10.2.0.2:5053' "$T/table.txt" || it_fail "no dnat rule"

# one flow of five queries from one source port: one datagram queued
for i in 1 2 3 4 5; do
    a=$(dig_cli -b "10.1.0.2#6000" +short www.example.test A)
    it_eq "$a" "192.0.2.10" "query $i of the fixed-port flow"
done
it_eq "$(stat kernel.queued)" "1" "the queue saw the first datagram only"
it_eq "$(stat kernel.to_kernel)" "1" "one kernel flow"
# conntrack has the flow, with udpmuxd's mark and all ten datagrams
ct=$(conntrack -L -p udp --orig-port-src 6000 2>/dev/null)
it_contains "$ct" "src=10.2.0.2 dst=10.2.0.1 sport=5053 dport=6000" "conntrack: DNAT to the backend, masquerade"
it_contains "$ct" "packets=5" "conntrack accounting: five datagrams each way"
mark=$(sed -n 's/.*mark=\([0-9]*\).*/\1/p' <<<"$ct")
[ $(((mark >> 16) & 0x3fff)) -ge $((0x1000)) ] || it_fail "conntrack mark $mark is not a udpmuxd kernel mark"
# the workers never saw a DNS datagram
it_eq "$(stat rx.datagrams)" "0" "the workers received nothing of the kernel route"
it_eq "$(stat tx.datagrams)" "0" "the workers sent nothing of the kernel route"
# udpmuxctl flows shows it as a kernel flow with the conntrack counters
f=$(ctl -j flows -r dns)
it_contains "$f" '"peer":"10.1.0.2:6000"' "the flow is listed"
it_contains "$f" '"datapath":"kernel"' "marked kernel"
it_contains "$f" '"rx.datagrams":5' "its datagrams from the peer"
it_contains "$f" '"tx.datagrams":5' "its datagrams to the peer"
it_contains "$(ctl flows -r dns)" " kernel" "the table view marks it kernel"
# the backend saw udpmuxd's host, not the client
it_contains "$(cat "$T/dnsmasq-queries.log")" "from 10.2.0.1" "masquerade towards the backend"

# ten new flows (dig picks a new port each time): ten queued datagrams
for i in $(seq 1 10); do
    a=$(dig_cli +short www.example.test A)
    it_eq "$a" "192.0.2.10" "dig #$i"
done
it_eq "$(stat kernel.queued)" "11" "one queued datagram per flow"
it_eq "$(stat kernel.flows)" "11" "eleven kernel flows in conntrack"
# the documents are rendered on the 250 ms tick: wait for one after the digs
for i in $(seq 1 20); do
    curl -s -m 3 http://127.0.0.1:9100/metrics >"$T/metrics.txt" || it_fail "/metrics"
    grep -qx 'udpmux_kernel_flows 11' "$T/metrics.txt" && break
    sleep 0.1
done
grep -qx 'udpmux_kernel_flows 11' "$T/metrics.txt" || it_fail "metrics: no udpmux_kernel_flows 11"
grep -qx 'udpmux_kernel_queued_total 11' "$T/metrics.txt" || it_fail "metrics: queued"
grep -qx 'udpmux_kernel_flow_datagrams 30' "$T/metrics.txt" || it_fail "metrics: kernel datagrams"
curl -s -m 3 http://127.0.0.1:9100/status.json >"$T/status.json" || it_fail "/status.json"
grep -q '"kernel":{"queued":11,"to_kernel":11,' "$T/status.json" || it_fail "status.json: no kernel section"
grep -q '"flows":11,"datagrams":30,' "$T/status.json" || it_fail "status.json: kernel flows"

# a user route through the same port still works (marked user, then the
# workers' socket), and a datagram no route matches is dropped in the queue
out=$(timeout 10 ip netns exec "$(it_ns cli)" $IT_UDP ask --to "10.1.0.1:$IT_PORT" \
    --bind 10.1.0.2:6100 --hex 000100002112a4420102030405060708090a0b0c --print-hex --tries 2) ||
    it_fail "no STUN answer"
it_contains "$out" "0101" "the built-in STUN route answers (user path)"
it_eq "$(stat kernel.to_user)" "1" "the STUN flow went to the workers"
timeout 5 ip netns exec "$(it_ns cli)" $IT_UDP ask --to "10.1.0.1:$IT_PORT" --data "junk" \
    --bind 10.1.0.2:6200 --timeout 0.3 >/dev/null 2>&1 && it_fail "junk was answered"
for i in $(seq 1 20); do
    [ "$(stat kernel.dropped)" = 1 ] && break
    sleep 0.1
done
it_eq "$(stat kernel.dropped)" "1" "an unmatched datagram is dropped by the verdict"

# stop: the table and the conntrack entries go with udpmuxd
kill -TERM "$UMXD_PID"
for i in $(seq 1 50); do
    kill -0 "$UMXD_PID" 2>/dev/null || break
    sleep 0.1
done
nft list table ip udpmuxd >/dev/null 2>&1 && it_fail "the table is still there after exit"
[ -z "$(conntrack -L -m 0x10000000/0x10000000 2>/dev/null)" ] || it_fail "kernel flows left after exit"
it_pass
