#!/bin/bash
# sec-soak.sh - bounded soak: churning flows, reloads every 3 s, a backend
# restarting every 5 s, and one established flow that must lose nothing.
# At the end (after the churned flows expired): no leaked descriptor
# (open fds back to the baseline), stable memory (RSS after warm-up vs at
# the end), every reload applied, no crash, no seccomp refusal.
#
# Short by default (40 s, part of make check); UMX_LONG=1 runs 600 s
# (UMX_SOAK_SECONDS overrides both).
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/sec-lib.sh"
if [ -n "${UMX_SOAK_SECONDS:-}" ]; then
    DUR=$UMX_SOAK_SECONDS
elif [ -n "${UMX_LONG:-}" ]; then
    DUR=600
else
    DUR=40
fi
IT_TIMEOUT=$((DUR + 120))
it_init "$@"

it_bg est-be $((DUR + 100)) $SEC_PY echo --listen 127.0.0.1:5001 --seconds $((DUR + 90))
it_bg churn-be $((DUR + 100)) $SEC_PY echo --listen 127.0.0.1:5002 --seconds $((DUR + 90))
it_wait_udp 5001
it_wait_udp 5002

conf()
{
    # $1: the churn route's idle timeout; reloads alternate between two
    it_conf "$T/soak.conf" <<EOC
[listen]
address = 127.0.0.1:4000
address = [::1]:4000

[route est]
match = regex "^EST"
forward = 127.0.0.1:5001

[route churn]
match = regex "^CHURN"
forward = 127.0.0.1:5002
idle-timeout = $1
unanswered-timeout = 1s
down-time = 1s

[route stun]
match = stun
action = stun
EOC
}
conf 2s
it_daemon "$T/soak.conf"
pid=$(sec_dpid udpmuxd)
fd0=$(it_fds "$pid")

it_bg est $((DUR + 60)) $SEC_PY stream --to 127.0.0.1:4000 --rate 100 --seconds "$DUR" --tag EST
start=$(date +%s)
reloads=0
restarts=0
rss_warm=
t=0
while [ $t -lt "$DUR" ]; do
    # new flows every second, from both families
    timeout 5 $IT_UDP burst --to 127.0.0.1:4000 --flows 16 --timeout 0.3 --prefix CHURN \
        >/dev/null 2>&1 || true
    timeout 5 $IT_UDP burst --to "[::1]:4000" --flows 4 --timeout 0.3 --prefix CHURN \
        >/dev/null 2>&1 || true
    if [ $((t % 3)) = 2 ]; then
        if [ $((reloads % 2)) = 0 ]; then conf 3s; else conf 2s; fi
        kill -HUP "$pid"
        reloads=$((reloads + 1))
    fi
    if [ $((t % 5)) = 4 ]; then
        it_stop churn-be
        sleep 0.3
        it_bg churn-be $((DUR + 100)) $SEC_PY echo --listen 127.0.0.1:5002 --seconds $((DUR + 90))
        restarts=$((restarts + 1))
    fi
    # t advances by wall clock: under load an iteration can take more than a
    # second and skip t = 10, which left rss_warm empty (a false RSS growth)
    if [ -z "$rss_warm" ] && [ $t -ge 10 ]; then rss_warm=$(sec_rss_kb "$pid"); fi
    kill -0 "$pid" || it_fail "udpmuxd died at t=$t s"
    sleep 0.6
    t=$(($(date +%s) - start))
done
for i in $(seq 1 200); do
    it_alive est || break
    sleep 0.1
done
res=$(tail -n 1 "$T/est.log")
# let the churned flows expire (idle <= 3 s, unanswered 1 s)
sleep 5
fd1=$(it_fds "$pid")
rss1=$(sec_rss_kb "$pid")
applied=$(grep -c "configuration reloaded" "$T/udpmuxd.log" || true)
it_log "soak ${DUR} s: established flow $res; $reloads reloads ($applied applied), $restarts backend restarts"
it_log "fds $fd0 -> $fd1; VmRSS ${rss_warm} kB at 10 s -> ${rss1} kB at the end; flows.created=$(sec_stat flows.created) flows.expired=$(sec_stat flows.expired)"
it_eq "$(echo "$res" | sec_json answered)" "$(echo "$res" | sec_json sent)" "established flow datagrams answered"
it_eq "$applied" "$reloads" "reloads applied"
it_log_lacks udpmuxd "reload refused"
sec_le "$fd1" $((fd0 + 2)) "open descriptors after the churn (leak)"
if [ "$SEC_SANITIZED" = 1 ]; then
    # freed memory stays in ASan's quarantine; LeakSanitizer checks at exit
    sec_le $((rss1 - rss_warm)) 262144 "RSS growth after warm-up in kB (sanitizer build)"
else
    sec_le $((rss1 - rss_warm)) 4096 "RSS growth after warm-up in kB"
fi
sec_ge "$(sec_stat flows.created)" $((DUR * 10)) "churned flows"
sec_no_refused
sec_sanitizer_clean
it_pass
