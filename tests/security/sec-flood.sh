#!/bin/bash
# sec-flood.sh - C7: bounded state under a spoofed-source flood.
#
# A legitimate flow is established (it got answers) before one million
# datagrams arrive from one million distinct sources (62500 addresses of
# 127.100.0.0/16 x 16 ports; raw IPv4 from tests/security/umx-flood, all
# inside this namespace's loopback). The flood matches a forwarding route
# whose backend answers, the worst case: every spoofed source asks for a
# flow and an upstream socket. With max-flows = 4096 per worker and the
# default per-/24 new-flow rate, the daemon must stay within its caps:
# flows <= max-flows * workers, open descriptors <= that plus a small
# constant, RSS growth bounded, no crash; and the established flow keeps
# at least 99 % of its datagrams answered during the flood (established
# flows are never evicted for unanswered ones). UMX_FLOOD_PPS sets the
# offered rate (default 50000/s: 20 s; fast enough to overflow the socket
# without the overload budget, slow enough for a busy 2-core CI machine).
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/sec-lib.sh"
IT_TIMEOUT=200
it_init "$@"

PPS=${UMX_FLOOD_PPS:-50000}
COUNT=1000000
if [ "$SEC_SANITIZED" = 1 ]; then
    # a sanitizer build is several times slower: same shape, a quarter of it
    PPS=${UMX_FLOOD_PPS:-15000}
    COUNT=250000
fi
MAXF=4096
it_bg legit-be 200 $SEC_PY echo --listen 127.0.0.1:5001 --seconds 190
it_bg flood-be 200 $SEC_PY echo --listen 127.0.0.1:5002 --seconds 190 --discard
it_wait_udp 5001
it_wait_udp 5002
IT_CONF_EXTRA="max-flows = $MAXF" it_conf "$T/fl.conf" <<EOC
[listen]
address = 127.0.0.1:4000

[route legit]
match = regex "^LEGIT"
forward = 127.0.0.1:5001

[route rest]
match = any
forward = 127.0.0.1:5002
unanswered-timeout = 30s
EOC
it_daemon "$T/fl.conf"
pid=$(sec_dpid udpmuxd)

# the legitimate flow: established before the flood, runs through it
it_bg legit 120 $SEC_PY stream --to 127.0.0.1:4000 --rate 200 --seconds 30 --tag LEGIT
sleep 2
rss0=$(sec_rss_kb "$pid")
fd0=$(it_fds "$pid")
cpu0=$(sec_cpu_ticks "$pid")
t0=$(date +%s.%N)
timeout 60 "$UMX_FLOOD" -d 127.0.0.1 -p 4000 -s 127.100.0.0 -n "$COUNT" -P 16 -r "$PPS" \
    -m "spoofed-flood-datagram" -t 40 >"$T/flood.log" 2>&1 || it_fail "flood helper failed"
t1=$(date +%s.%N)
rss1=$(sec_rss_kb "$pid")
fd1=$(it_fds "$pid")
cpu1=$(sec_cpu_ticks "$pid")
it_log "flood: $(cat "$T/flood.log")"
# wait for the legitimate stream to finish (bounded by it_bg's timeout)
for i in $(seq 1 400); do
    it_alive legit || break
    sleep 0.1
done
res=$(tail -n 1 "$T/legit.log")
kill -0 "$pid" || it_fail "udpmuxd died during the flood"
secs=$(/usr/bin/python3 -c "print(round($t1 - $t0, 2))")
cpu=$(/usr/bin/python3 -c "print(round(($cpu1 - $cpu0) / $(getconf CLK_TCK), 2))")
flows=$(sec_stat flows.active)
[ "$flows" = 0 ] && flows=$(timeout 5 "$UDPMUXCTL" -s "$T/control.sock" status | tr ' ' '\n' | awk -F= '$1=="flows_active"{print $2}')
it_log "legit flow: $res"
it_log "daemon: VmRSS ${rss0} -> ${rss1} kB, fds $fd0 -> $fd1, CPU ${cpu} s over ${secs} s"
it_log "counters: rx.datagrams=$(sec_stat rx.datagrams) rx.kernel_drops=$(sec_stat rx.kernel_drops) flows.created=$(sec_stat flows.created) flows.evicted=$(sec_stat flows.evicted) drop.rate_limited=$(sec_stat drop.rate_limited) drop.table_full=$(sec_stat drop.table_full)"
ratio=$(echo "$res" | sec_json ratio)
/usr/bin/python3 -c "import sys; sys.exit(0 if $ratio >= 0.99 else 1)" ||
    it_fail "established flow answered $ratio of its datagrams during the flood (< 0.99)"
sec_le "$fd1" $((2 * MAXF + 64)) "open descriptors (max-flows x workers + constant)"
sec_le $((rss1 - rss0)) 65536 "RSS growth in kB"
sec_ge "$(sec_stat rx.datagrams)" $((COUNT / 10)) "flood datagrams seen (the flood must reach the daemon)"
sec_ge "$(sec_stat flows.created)" 4096 "flood flows created (the caps must be exercised)"
sec_no_refused
sec_sanitizer_clean
it_pass
