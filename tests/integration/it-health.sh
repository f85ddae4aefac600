#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-health.sh - active health checks. Two routes: a pool of two UDP echo
# backends checked with `health = payload`, and dnsmasq checked with
# `health = dns`. A backend that stops answering (SIGSTOP: its socket stays
# bound, so there is no ICMP and passive health cannot see it) is marked
# down within health-interval * health-fall (+ timeout and the 250 ms
# tick), new flows avoid it, and it is up again after health-rise good
# checks once it answers again (SIGCONT).
. "$(dirname "$0")/lib.sh"
it_init "$@"
for i in $(seq 2 16); do ip addr add "127.0.0.$i/8" dev lo 2>/dev/null || true; done

it_echo a 127.0.0.1:5001
it_echo b 127.0.0.1:5002
it_bg dnsmasq 60 dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts \
    --listen-address=127.0.0.1 --bind-interfaces --port=5053 --user=root \
    --local=/example.test/ --address=/www.example.test/192.0.2.10 --pid-file="$T/dnsmasq.pid"
it_wait_udp 5001
it_wait_udp 5002
it_wait_udp 5053

# payload checks send "hello"; the echo backends answer "TAG|from=...|hello",
# so health-expect is left out (any answer from the backend counts)
it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route dns]
match = dns
forward = 127.0.0.1:5053
health = dns
health-interval = 500ms
health-timeout = 250ms
health-fall = 2
health-rise = 2

[route pool]
match = any
forward = 127.0.0.1:5001, 127.0.0.1:5002
health = payload
health-send = 0x68656c6c6f
health-interval = 500ms
health-timeout = 250ms
health-fall = 2
health-rise = 2
CONF
it_daemon "$T/udpmux.conf"
sleep 1.2 # a few rounds of checks, all good
it_log_lacks udpmuxd "health: " "no state change while everything answers"

declare -A first
for i in $(seq 1 16); do
    r=$(it_ask "127.0.0.1:$IT_PORT" "x-$i" --bind "127.0.0.$i:6000")
    first[$i]=${r%%|*}
done
it_eq "$(printf '%s\n' "${first[@]}" | sort -u | tr '\n' ' ')" "a b " "both backends in use"

# stop a and dnsmasq (no ICMP: the sockets stay bound)
t0=$(it_now_ms)
kill -STOP "$(it_prog_pid a)" "$(it_prog_pid dnsmasq)"
it_wait_log "$T/udpmuxd.log" "health: route pool backend 127.0.0.1:5001 is DOWN" 5
t1=$(it_now_ms)
it_wait_log "$T/udpmuxd.log" "health: route dns backend 127.0.0.1:5053 is DOWN" 3
# worst case by design: fall * interval (1000) + timeout (250) + two ticks
# (500) = 1750 ms; 3000 leaves room for a loaded 2-core CI machine and is
# still far from what passive health or the defaults (15 s) would give
[ $((t1 - t0)) -le 3000 ] || it_fail "marked down after $((t1 - t0)) ms (want <= 3000)"
it_log "a marked down after $((t1 - t0)) ms"
it_log_lacks udpmuxd "backend 127.0.0.1:5002 is DOWN" "b stays up"
# every new flow goes to b
for i in $(seq 1 16); do
    r=$(it_ask "127.0.0.1:$IT_PORT" "y-$i" --bind "127.0.0.$i:6001")
    it_eq "${r%%|*}" b "new flow of client $i while a is down"
done
# a DNS route whose only backend is down refuses new flows (no answer)
if timeout 5 dig @127.0.0.1 -p "$IT_PORT" +tries=1 +time=1 +short www.example.test >/dev/null; then
    it_fail "DNS answered with its only backend down"
fi

# a and dnsmasq answer again: up after rise (2) good checks
t0=$(it_now_ms)
kill -CONT "$(it_prog_pid a)" "$(it_prog_pid dnsmasq)"
it_wait_log "$T/udpmuxd.log" "health: route pool backend 127.0.0.1:5001 is UP again" 5
it_wait_log "$T/udpmuxd.log" "health: route dns backend 127.0.0.1:5053 is UP again" 5
t1=$(it_now_ms)
it_log "up again after $((t1 - t0)) ms"
for i in $(seq 1 16); do
    [ "${first[$i]}" = a ] || continue
    r=$(it_ask "127.0.0.1:$IT_PORT" "z-$i" --bind "127.0.0.$i:6002")
    it_eq "${r%%|*}" a "new flow of client $i after a came back"
done
a=$(timeout 10 dig @127.0.0.1 -p "$IT_PORT" +tries=2 +time=1 +short www.example.test A)
it_eq "$a" "192.0.2.10" "DNS after dnsmasq came back"
# the checks as counters (udpmuxctl routes; /metrics has the same,
# ctl-metrics.sh checks the exposition): a went down and up once, b never
timeout 20 "$UDPMUXCTL" -s "$T/control.sock" -j routes >"$T/routes.json" ||
    it_fail "udpmuxctl routes"
$IT_PY - "$T/routes.json" <<'EOF' >"$T/checks.log" 2>&1 || it_fail "check counters: $(cat "$T/checks.log")"
import json, sys
d = json.load(open(sys.argv[1]))
be = {(r["name"], b["addr"]): {k: int(v) for k, v in b.items() if k.startswith("checks.")}
      for r in d["routes"] for b in r["backends"]}
a, b, dns = be[("pool", "127.0.0.1:5001")], be[("pool", "127.0.0.1:5002")], be[("dns", "127.0.0.1:5053")]
print(a, b, dns)
assert a["checks.transitions"] == 2 and dns["checks.transitions"] == 2, (a, dns)
assert b["checks.transitions"] == 0, b
assert a["checks.failed"] >= 2 and a["checks.ok"] >= 2, a
assert b["checks.ok"] >= 4 and b["checks.failed"] <= 1, b
for c in (a, b, dns):
    assert c["checks.ok"] + c["checks.failed"] <= c["checks.sent"] <= c["checks.ok"] + c["checks.failed"] + 1, c
EOF
it_log "check counters: $(head -n 1 "$T/checks.log")"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
