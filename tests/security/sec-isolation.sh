#!/bin/bash
# sec-isolation.sh - C10, C11: failure isolation, visible and fair
# overload.
#
# 1. Two routes, A and B, each with its own echo backend and a 200/s flow.
#    Backend A dies: the daemon marks it down (ICMP port unreachable on the
#    connected upstream), does not spin (CPU stays low while A's client
#    keeps sending), does not flood the log, and B keeps every datagram.
# 2. A single flow floods route A at 40000/s while B's flow runs
#    B keeps >= 99 % (per-socket batches: the shared socket, A's upstream
#    and B's upstream each get one batch per turn of the loop).
# 3. Kernel drops are visible: with the daemon stopped (SIGSTOP) and a
#    small receive buffer (rcvbuf = 64K, a second daemon), 3000 datagrams overflow the socket; after
#    SIGCONT, rx.datagrams + rx.kernel_drops equals what was sent.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/sec-lib.sh"
it_init "$@"

it_bg beA 200 $SEC_PY echo --listen 127.0.0.1:5001 --seconds 190
it_bg beB 200 $SEC_PY echo --listen 127.0.0.1:5002 --seconds 190
it_wait_udp 5001
it_wait_udp 5002
routes()
{
    cat <<EOC
[listen]
address = 127.0.0.1:4000

[route a]
match = regex "^AAA"
forward = 127.0.0.1:5001
down-time = 2s

[route b]
match = regex "^BBB"
forward = 127.0.0.1:5002
EOC
}
it_conf "$T/iso.conf" < <(routes)
it_daemon "$T/iso.conf"
pid=$(sec_dpid udpmuxd)

# 1. backend A dies mid-traffic
it_bg streamA 60 $SEC_PY stream --to 127.0.0.1:4000 --rate 200 --seconds 12 --tag AAA
it_bg streamB 60 $SEC_PY stream --to 127.0.0.1:4000 --rate 200 --seconds 12 --tag BBB
sleep 3
it_stop beA
lines0=$(wc -l <"$T/udpmuxd.log")
cpu0=$(sec_cpu_ticks "$pid")
sleep 8
cpu1=$(sec_cpu_ticks "$pid")
lines1=$(wc -l <"$T/udpmuxd.log")
for i in $(seq 1 100); do
    it_alive streamB || break
    sleep 0.1
done
for i in $(seq 1 100); do
    it_alive streamA || break
    sleep 0.1
done
resA=$(tail -n 1 "$T/streamA.log")
resB=$(tail -n 1 "$T/streamB.log")
cpu=$(/usr/bin/python3 -c "print(round(100 * ($cpu1 - $cpu0) / $(getconf CLK_TCK) / 8, 1))")
it_log "dead backend A: A $resA, B $resB; daemon CPU ${cpu}% over 8 s; $((lines1 - lines0)) log lines"
it_log "counters: backend.marked_down=$(sec_stat backend.marked_down) upstream.rx.errors=$(sec_stat upstream.rx.errors) upstream.tx.errors=$(sec_stat upstream.tx.errors) drop.no_backend=$(sec_stat drop.no_backend)"
/usr/bin/python3 -c "import sys; sys.exit(0 if $(echo "$resB" | sec_json ratio) >= 0.99 else 1)" ||
    it_fail "route B lost datagrams while backend A was dead: $resB"
/usr/bin/python3 -c "import sys; sys.exit(0 if $(echo "$resA" | sec_json ratio) < 0.5 else 1)" ||
    it_fail "route A still answered with its backend dead (test broken): $resA"
/usr/bin/python3 -c "import sys; sys.exit(0 if $cpu < 20 else 1)" ||
    it_fail "daemon CPU ${cpu}% with a dead backend (busy loop?)"
sec_le $((lines1 - lines0)) 20 "log lines in 8 s with a dead backend"
sec_ge "$(sec_stat backend.marked_down)" 1 "backend.marked_down"

# 2. a flood on route A (backend back up) must not starve route B
it_bg beA 200 $SEC_PY echo --listen 127.0.0.1:5001 --seconds 190
it_wait_udp 5001
sleep 2.5 # past down-time
it_bg streamB2 60 $SEC_PY stream --to 127.0.0.1:4000 --rate 200 --seconds 8 --tag BBB
sleep 1
rate=40000
[ "$SEC_SANITIZED" = 1 ] && rate=10000
timeout 30 "$UMX_FLOOD" -d 127.0.0.1 -p 4000 -s 127.100.0.1 -F -n $((rate * 5)) -r "$rate" \
    -m "AAA-flood-on-one-flow" -t 6 >"$T/floodA.log" 2>&1 || it_fail "flood helper failed"
for i in $(seq 1 150); do
    it_alive streamB2 || break
    sleep 0.1
done
resB=$(tail -n 1 "$T/streamB2.log")
it_log "flood on A: $(cat "$T/floodA.log"); B $resB; rx.kernel_drops=$(sec_stat rx.kernel_drops)"
/usr/bin/python3 -c "import sys; sys.exit(0 if $(echo "$resB" | sec_json ratio) >= 0.99 else 1)" ||
    it_fail "route B starved by a flood on route A: $resB"

# 3. kernel drops are counted: a daemon with a 64 KiB receive buffer is
# stopped and its buffer overflowed
it_stop udpmuxd
IT_CONF_EXTRA="rcvbuf = 64K" it_conf "$T/small.conf" < <(routes)
it_daemon "$T/small.conf" small
pid=$(sec_dpid small)
sec_no_refused
rx0=$(sec_stat rx.datagrams)
kd0=$(sec_stat rx.kernel_drops)
kill -STOP "$pid"
/usr/bin/python3 - <<'EOP'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 39999))
for i in range(3000):
    s.sendto(b"BBB-overflow-%d" % i, ("127.0.0.1", 4000))
EOP
kill -CONT "$pid"
sleep 1
# one more datagram from the same flow carries the socket's final drop count
/usr/bin/python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 39999))
s.sendto(b"BBB-tail", ("127.0.0.1", 4000))'
sleep 1
rx=$(($(sec_stat rx.datagrams) - rx0))
kd=$(($(sec_stat rx.kernel_drops) - kd0))
it_log "overflow: sent 3001, received $rx, kernel drops counted $kd"
sec_ge "$kd" 1 "kernel drops counted"
it_eq $((rx + kd)) 3001 "received + counted drops"
sec_no_refused small
sec_sanitizer_clean small
it_pass
