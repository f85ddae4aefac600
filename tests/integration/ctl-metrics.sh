#!/usr/bin/env bash
# ctl-metrics.sh - the Prometheus endpoint of udpmuxd with traffic: the
# exposition passes `promtool check metrics` and a strict parser of the
# text format (HELP/TYPE once per family, before its samples, families
# contiguous, counters named *_total, label syntax), every number matches
# what was sent and what udpmuxctl says, drain shows up in the gauges, no
# label carries a client address, every family is documented in
# docs/metrics.md, and /status.json and 404s answer as they should.
. "$(dirname "$0")/lib.sh"
it_init "$@"
. "$(dirname "$0")/ctl-lib.sh"

command -v promtool >/dev/null || it_fail "promtool missing (scripts/deps.sh installs prometheus)"
M=127.0.0.1:9531

it_echo b1 127.0.0.1:5001 b1
it_echo b2 127.0.0.1:5002 b2
it_wait_udp 5001
it_wait_udp 5002
IT_CONF_EXTRA="metrics = $M
max-flows = 1000" it_conf "$T/u.conf" <<EOF
[listen]
address = 127.0.0.1:$IT_PORT

[route fwd]
match = regex "^FWD"
forward = 127.0.0.1:5001, 127.0.0.1:5002

[route dns]
match = dns
forward = 127.0.0.1:5003

[route ping]
match = regex "^PING"
action = echo

[route junk]
match = regex "^JUNK"
action = drop
EOF
it_daemon "$T/u.conf"

# Flows to route fwd from distinct addresses (backends are picked by a
# keyed hash of the peer's address) until both backends carry some: at
# least 5, at most 16 (all on one backend: 2^-15).
nfwd=0
while [ "$nfwd" -lt 16 ]; do
    nfwd=$((nfwd + 1))
    send "127.0.0.$((10 + nfwd)):$((6000 + nfwd))" "FWD flow$nfwd" 3 >"$T/fwd$nfwd.json"
    [ "$nfwd" -ge 5 ] && grep -q '"tags": \["b1"\]' "$T"/fwd*.json &&
        grep -q '"tags": \["b2"\]' "$T"/fwd*.json && break
done
send 127.0.0.1:6100 PING 7 >"$T/ping.json"
send 127.0.0.1:6200 JUNK 4 --no-reply >"$T/junk.json"
# no route matches this: counted as unmatched
send 127.0.0.1:6300 "nothing matches" 2 --no-reply >"$T/none.json"
ctl drain 127.0.0.1:5002 >/dev/null
sleep 0.6 # the documents are rendered every 250 ms

get()
{
    timeout 10 curl -sS -o "$2" -w '%{http_code} %{content_type}' "http://$M$1"
}

it_eq "$(get /metrics "$T/metrics.txt")" "200 text/plain; version=0.0.4; charset=utf-8" "/metrics"
promtool check metrics <"$T/metrics.txt" >"$T/promtool.log" 2>&1 ||
    it_fail "promtool check metrics: $(cat "$T/promtool.log")"

# strict parse + value checks (Python, stdlib)
cat >"$T/check.py" <<'EOF'
import json, re, sys
text = open(sys.argv[1]).read()
doc = open(sys.argv[2]).read()
exp = json.loads(sys.argv[3])
NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LBL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(,|$)')
fams, order, samples, errors = {}, [], {}, []
cur = None
for n, line in enumerate(text.split("\n")[:-1], 1):
    if line.startswith("# HELP ") or line.startswith("# TYPE "):
        kind, name, rest = line[2:6], line.split(" ")[2], " ".join(line.split(" ")[3:])
        if not NAME.match(name):
            errors.append("%d: bad name %s" % (n, name))
        f = fams.setdefault(name, {})
        if kind in f:
            errors.append("%d: second %s for %s" % (n, kind, name))
        if f.get("samples"):
            errors.append("%d: %s after samples of %s" % (n, kind, name))
        f[kind] = rest
        if name not in order:
            order.append(name)
        cur = name
        continue
    if not line or line.startswith("#"):
        errors.append("%d: unexpected line %r" % (n, line))
        continue
    m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
    if not m:
        errors.append("%d: bad sample %r" % (n, line))
        continue
    name, labels, value = m.group(1), m.group(3) or "", m.group(4)
    if name != cur:
        errors.append("%d: sample of %s outside its family (%s)" % (n, name, cur))
    lab, pos = {}, 0
    while pos < len(labels):
        lm = LBL.match(labels, pos)
        if not lm:
            errors.append("%d: bad labels %r" % (n, labels))
            break
        lab[lm.group(1)] = lm.group(2)
        pos = lm.end()
    float(value)
    fams[name]["samples"] = True
    samples[(name, tuple(sorted(lab.items())))] = float(value)
for name in order:
    f = fams[name]
    if "TYPE" not in f or "HELP" not in f:
        errors.append("%s: HELP and TYPE required" % name)
    if f.get("TYPE") == "counter" and not name.endswith("_total"):
        errors.append("%s: counter without _total" % name)
    if f.get("TYPE") != "counter" and name.endswith("_total"):
        errors.append("%s: _total on a %s" % (name, f.get("TYPE")))
    if ("`%s`" % name) not in doc:
        errors.append("%s: not documented in docs/metrics.md" % name)
for (name, lab), v in samples.items():
    for k, val in lab:
        if k not in ("listener", "route", "backend", "reason", "probe", "action", "result",
                     "version"):
            errors.append("%s: unexpected label %s" % (name, k))
        if re.search(r":60\d\d$|^127\.0\.0\.1$", val):
            errors.append("%s: client address in label %s=%s" % (name, k, val))
def s(name, **lab):
    key = (name, tuple(sorted(lab.items())))
    if key not in samples:
        errors.append("missing sample %s %s" % (name, lab))
        return None
    return samples[key]
for name, lab, want in exp:
    got = s(name, **lab)
    if got is not None and got != want:
        errors.append("%s%s = %s, want %s" % (name, lab, got, want))
print("\n".join(errors))
sys.exit(1 if errors else 0)
EOF

fwd_bytes=0
for i in $(seq 1 "$nfwd"); do fwd_bytes=$((fwd_bytes + $(jget "$T/fwd$i.json" "d['sent_bytes']"))); done
rx=$((3 * nfwd + 7 + 4 + 2))
# what each backend carried, from the client side: datagrams and bytes
# sent, replies (tagged by the backend) and their bytes, flows
$IT_PY - "$T" "$nfwd" >"$T/per-backend.json" <<'EOF'
import json, sys
t, n = sys.argv[1], int(sys.argv[2])
per = {}
for i in range(1, n + 1):
    d = json.load(open("%s/fwd%d.json" % (t, i)))
    assert d["tags"] in (["b1"], ["b2"]) and d["replies"] == d["sent"], d
    be = {"b1": "127.0.0.1:5001", "b2": "127.0.0.1:5002"}[d["tags"][0]]
    p = per.setdefault(be, [0, 0, 0, 0, 0])
    for k, v in enumerate((d["sent"], d["sent_bytes"], d["replies"], d["reply_bytes"], 1)):
        p[k] += v
assert len(per) == 2, per
exp = []
for be, (tx, txb, rx, rxb, fl) in sorted(per.items()):
    lab = {"route": "fwd", "backend": be}
    exp += [["udpmux_backend_tx_datagrams_total", lab, tx],
            ["udpmux_backend_tx_bytes_total", lab, txb],
            ["udpmux_backend_rx_datagrams_total", lab, rx],
            ["udpmux_backend_rx_bytes_total", lab, rxb],
            ["udpmux_backend_flows_created_total", lab, fl],
            ["udpmux_backend_flows_active", lab, fl],
            ["udpmux_backend_tx_dropped_total", lab, 0],
            ["udpmux_backend_tx_dropped_bytes_total", lab, 0],
            ["udpmux_backend_health_checks_sent_total", lab, 0],
            ["udpmux_backend_health_checks_total", dict(lab, result="ok"), 0],
            ["udpmux_backend_health_transitions_total", lab, 0]]
print(json.dumps(exp))
EOF
junk_bytes=$(jget "$T/junk.json" "d['sent_bytes']")
none_bytes=$(jget "$T/none.json" "d['sent_bytes']")
exp=$(
    cat <<EOF
[["udpmux_rx_datagrams_total", {}, $rx],
 ["udpmux_upstream_tx_datagrams_total", {}, $((3 * nfwd))],
 ["udpmux_upstream_tx_bytes_total", {}, $fwd_bytes],
 ["udpmux_builtin_echo_replies_total", {}, 7],
 ["udpmux_classify_unmatched_total", {}, 2],
 ["udpmux_drops_total", {"reason": "action"}, 4],
 ["udpmux_drops_total", {"reason": "table_full"}, 0],
 ["udpmux_flows_created_total", {}, $nfwd],
 ["udpmux_flow_table_entries", {}, $nfwd],
 ["udpmux_flow_table_capacity", {}, $((1000 * 2))],
 ["udpmux_workers", {}, 2],
 ["udpmux_listener_info", {"listener": "127.0.0.1:$IT_PORT"}, 1],
 ["udpmux_listener_kernel_drops_total", {"listener": "127.0.0.1:$IT_PORT"}, 0],
 ["udpmux_listener_reuseport_sockets", {"listener": "127.0.0.1:$IT_PORT"}, 2],
 ["udpmux_listener_reuseport_foreign_sockets", {"listener": "127.0.0.1:$IT_PORT"}, 0],
 ["udpmux_listener_steering_attached", {"listener": "127.0.0.1:$IT_PORT"}, 1],
 ["udpmux_guard_foreign_sockets", {}, 0],
 ["udpmux_route_rx_datagrams_total", {"route": "fwd"}, $((3 * nfwd))],
 ["udpmux_route_rx_bytes_total", {"route": "fwd"}, $fwd_bytes],
 ["udpmux_route_tx_datagrams_total", {"route": "ping"}, 7],
 ["udpmux_route_drops_total", {"route": "junk"}, 4],
 ["udpmux_route_drops_by_reason_total", {"route": "junk", "reason": "action"}, 4],
 ["udpmux_route_drops_by_reason_total", {"route": "fwd", "reason": "action"}, 0],
 ["udpmux_route_flows_active", {"route": "fwd"}, $nfwd],
 ["udpmux_route_flows_created_total", {"route": "fwd"}, $nfwd],
 ["udpmux_dropped_bytes_total", {"reason": "action"}, $junk_bytes],
 ["udpmux_dropped_bytes_total", {"reason": "unmatched"}, $none_bytes],
 ["udpmux_dropped_bytes_total", {"reason": "send_error"}, 0],
 ["udpmux_route_classify_matched_total", {"route": "dns", "probe": "dns"}, 0],
 ["udpmux_route_classify_matched_total", {"route": "ping", "probe": "custom"}, 7],
 ["udpmux_route_info", {"route": "dns", "action": "forward", "probe": "dns"}, 1],
 ["udpmux_route_draining", {"route": "fwd"}, 0],
 ["udpmux_backend_up", {"route": "fwd", "backend": "127.0.0.1:5001"}, 1],
 ["udpmux_backend_up", {"route": "fwd", "backend": "127.0.0.1:5002"}, 0],
 ["udpmux_backend_draining", {"route": "fwd", "backend": "127.0.0.1:5002"}, 1],
 ["udpmux_config_reloads_total", {"result": "ok"}, 0],
 ["udpmux_build_info", {"version": "$("$UDPMUXD" -V | awk '{print $2}')"}, 1]]
EOF
)
exp=$($IT_PY -c 'import json,sys; print(json.dumps(json.loads(sys.argv[1]) + json.load(open(sys.argv[2]))))' \
    "$exp" "$T/per-backend.json")
$IT_PY "$T/check.py" "$T/metrics.txt" "$UMX_SRC/docs/metrics.md" "$exp" >"$T/check.log" 2>&1 ||
    it_fail "exposition check: $(head -n 20 "$T/check.log")"

# the Grafana dashboard only uses metrics that exist
$IT_PY - "$UMX_SRC/docs/grafana-dashboard.json" "$T/metrics.txt" <<'EOF' >"$T/grafana.log" 2>&1 ||
import json, re, sys
d = json.load(open(sys.argv[1]))
have = {l.split(" ")[2] for l in open(sys.argv[2]) if l.startswith("# TYPE ")}
exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
exprs += [a["expr"] for a in d["annotations"]["list"]]
used = {m for e in exprs for m in re.findall(r"\b(udpmux_[a-z_]+)", e)}
missing = sorted(used - have)
assert exprs and not missing, "dashboard uses unknown metrics: %s" % missing
print("%d expressions, %d metrics" % (len(exprs), len(used)))
EOF
    it_fail "grafana dashboard: $(cat "$T/grafana.log")"

# the same numbers through udpmuxctl
ctl_eq "$(jget <(ctl -j stats) "d['stats']['rx.datagrams']")" "$rx" "udpmuxctl agrees"

# /status.json: the page's data
it_eq "$(get /status.json "$T/status.json")" "200 application/json" "/status.json"
ctl_eq "$(jget "$T/status.json" "d['stats']['rx.datagrams']")" "$rx" "status.json rx"
it_eq "$(jget "$T/status.json" "[r['name'] for r in d['routes']]")" "['fwd', 'dns', 'ping', 'junk']" \
    "status.json routes"
it_eq "$(jget "$T/status.json" "[b['health'] for b in d['routes'][0]['backends']]")" \
    "['up', 'draining']" "status.json health"
# per-backend numbers: the status page and udpmuxctl routes say what /metrics says
want=$(jget "$T/per-backend.json" \
    "sorted((e[1]['backend'], e[2]) for e in d if e[0] == 'udpmux_backend_tx_bytes_total')")
it_eq "$(jget "$T/status.json" "sorted((b['addr'], b['tx.bytes']) for b in d['routes'][0]['backends'])")" \
    "$want" "status.json per backend"
ctl -j routes >"$T/routes.json"
it_eq "$(jget "$T/routes.json" "sorted((b['addr'], int(b['tx.bytes'])) for r in d['routes'] if r['name'] == 'fwd' for b in r['backends'])")" \
    "$want" "udpmuxctl routes per backend"

# counters move with traffic and the documents follow within a tick
send 127.0.0.1:6100 PING 3 >/dev/null
sleep 0.6
get /metrics "$T/metrics2.txt" >/dev/null
grep -qx "udpmux_route_rx_datagrams_total{route=\"ping\"} 10" "$T/metrics2.txt" ||
    it_fail "metrics did not follow: $(grep 'rx_datagrams_total{route="ping"}' "$T/metrics2.txt")"

it_eq "$(get /nope "$T/nope.txt")" "404 text/plain" "unknown path"
code=$(timeout 10 curl -sS -o /dev/null -w '%{http_code}' -X POST "http://$M/metrics")
it_eq "$code" 405 "POST"
it_pass
