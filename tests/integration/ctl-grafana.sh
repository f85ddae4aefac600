#!/usr/bin/env bash
# ctl-grafana.sh - docs/grafana-dashboard.json against a real Prometheus
# (Debian's prometheus) scraping udpmuxd with traffic: every panel query and
# annotation parses and evaluates (dashboard variables replaced the way
# Grafana would), and the queries that must show the traffic do: datagrams
# per route, drops by reason, flow table occupancy, backends not taking
# flows (one is drained).
. "$(dirname "$0")/lib.sh"
it_init "$@"
. "$(dirname "$0")/ctl-lib.sh"

command -v prometheus >/dev/null || it_fail "prometheus missing (scripts/deps.sh installs it)"
M=127.0.0.1:9531
P=127.0.0.1:9090
it_echo b1 127.0.0.1:5001 b1
it_echo b2 127.0.0.1:5002 b2
it_wait_udp 5001
it_wait_udp 5002
IT_CONF_EXTRA="metrics = $M" it_conf "$T/u.conf" <<EOF
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
EOF
it_daemon "$T/u.conf"
ctl drain 127.0.0.1:5002 >/dev/null

cat >"$T/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: udpmux
    static_configs:
      - targets: ['$M']
EOF
it_bg prometheus 90 prometheus --config.file="$T/prometheus.yml" \
    --storage.tsdb.path="$T/tsdb" --web.listen-address="$P" --log.level=warn

# traffic over several scrapes, so rate() has points to work with
it_bg ping 60 $IT_PY "$T/traffic.py" --bind 127.0.0.1:6001 --prefix PING --rate 30 --seconds 40
it_bg junk 60 $IT_PY "$T/traffic.py" --bind 127.0.0.1:6002 --prefix JUNK --rate 10 --seconds 40 \
    --no-reply
for i in 1 2 3; do send "127.0.0.1:610$i" "FWD $i" 2 >/dev/null; done

# until Prometheus has several samples of udpmuxd (bounded: 30 s)
q()
{
    timeout 10 curl -sS -G "http://$P/api/v1/query" --data-urlencode "query=$1"
}
ok=0
for i in $(seq 1 60); do
    n=$(q 'count_over_time(udpmux_rx_datagrams_total[1m])' 2>/dev/null |
        $IT_PY -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)' 2>/dev/null || echo 0)
    if [ "${n%.*}" -ge 6 ] 2>/dev/null; then
        ok=1
        break
    fi
    sleep 0.5
done
[ $ok = 1 ] || it_fail "Prometheus did not scrape udpmuxd (samples: ${n:-none})"

$IT_PY - "$UMX_SRC/docs/grafana-dashboard.json" "http://$P" >"$T/queries.log" 2>&1 <<'EOF' ||
import json, sys, urllib.parse, urllib.request
dash = json.load(open(sys.argv[1]))
base = sys.argv[2]
def query(expr):
    # Grafana's substitutions: all instances and routes, a rate interval
    expr = (expr.replace("$__rate_interval", "5s").replace('"$instance"', '".*"')
            .replace('"$route"', '".*"'))
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        d = json.load(r)
    assert d["status"] == "success", (expr, d)
    return d["data"]["result"]
results = {}
n = 0
for p in dash["panels"]:
    for t in p.get("targets", []):
        results[(p["title"], t["refId"])] = query(t["expr"])
        n += 1
for a in dash["annotations"]["list"]:
    query(a["expr"])
    n += 1
for v in dash["templating"]["list"]:
    # label_values(METRIC, LABEL): the metric must have the label
    q = v["query"]["query"]
    metric, label = q[len("label_values("):-1].rsplit(",", 1)
    r = query(metric.replace('"$instance"', '".*"'))
    assert r and all(label.strip() in s["metric"] for s in r), (q, r)
def series(title, ref="A"):
    return {tuple(sorted(s["metric"].items())): float(s["value"][1])
            for s in results[(title, ref)]}
def by(title, label, ref="A"):
    return {dict(k).get(label): v for k, v in series(title, ref).items()}
per_route = by("Datagrams per route (in)", "route")
assert 15 <= per_route.get("ping", 0) <= 45, per_route
assert 5 <= per_route.get("junk", 0) <= 15, per_route
reasons = by("Drops by reason", "reason")
assert 5 <= reasons.get("action", 0) <= 15, reasons
assert reasons.get("table_full", -1) == 0, reasons
occ = list(series("Flow table occupancy").values())
assert occ and 0 < occ[0] < 0.01, occ
down = list(series("Backends not taking flows").values())
assert down == [1.0], down
up = list(series("Uptime").values())
assert up and 0 < up[0] < 120, up
backends = results[("Backends", "A")]
assert sorted(s["metric"]["backend"] for s in backends) == ["127.0.0.1:5001", "127.0.0.1:5002"]
print("%d queries evaluated; ping %.1f/s, junk drops %.1f/s" %
      (n, per_route["ping"], reasons["action"]))
EOF
    it_fail "dashboard queries: $(cat "$T/queries.log")"
it_log "$(tail -n 1 "$T/queries.log")"
it_pass
