#!/usr/bin/env bash
# ctl-top.sh - `udpmuxctl top` in a real terminal (tmux): it draws the
# routes, its rates follow the traffic (about 20/s, then about 80/s, then
# 0), drops appear by reason while a drop route gets traffic, and it quits
# on q. Also `top -j -n 3`: three NDJSON samples.
. "$(dirname "$0")/lib.sh"
it_init "$@"
. "$(dirname "$0")/ctl-lib.sh"

command -v tmux >/dev/null || it_fail "tmux missing (scripts/deps.sh installs it)"
it_echo b1 127.0.0.1:5001 b1
it_wait_udp 5001
it_conf "$T/u.conf" <<EOF
[listen]
address = 127.0.0.1:$IT_PORT

[route ping]
match = regex "^PING"
action = echo

[route fwd]
match = regex "^FWD"
forward = 127.0.0.1:5001

[route junk]
match = regex "^JUNK"
action = drop
EOF
it_daemon "$T/u.conf"

TM="tmux -S $T/tmux.sock"
$TM new-session -d -s top -x 150 -y 30 "$UDPMUXCTL -s $T/control.sock top"
# the tmux server is ours to stop: the trap kills it by pid
IT_PIDS+=("$($TM display-message -p '#{pid}')")

# screen: the current pane; rate ROUTE: that route's IN DG/S column
screen()
{
    $TM capture-pane -p -t top
}
rate()
{
    screen | awk -v r="$1" '$1 == r { print $2; exit }'
}
# between LO and HI (the rate may carry a decimal point)
in_range()
{
    $IT_PY -c 'import sys; v=float(sys.argv[1]); sys.exit(0 if float(sys.argv[2]) <= v <= float(sys.argv[3]) else 1)' "$@"
}

for i in $(seq 1 50); do
    screen | grep -q "^ping " && break
    sleep 0.1
done
screen >"$T/screen0.txt"
it_contains "$(cat "$T/screen0.txt")" "udpmuxctl top"
it_contains "$(cat "$T/screen0.txt")" "ROUTE"
grep -q "^fwd " "$T/screen0.txt" || it_fail "top does not list route fwd"

# phase A: ~20 datagrams/s
it_bg slow 30 $IT_PY "$T/traffic.py" --bind 127.0.0.1:6001 --prefix PING --rate 20 --seconds 5
sleep 3.5
screen >"$T/screen1.txt"
r1=$(rate ping)
in_range "$r1" 10 30 || it_fail "rate at 20/s shows '$r1': $(cat "$T/screen1.txt")"
it_stop slow
# phase B: ~80 datagrams/s
it_bg fast 30 $IT_PY "$T/traffic.py" --bind 127.0.0.1:6002 --prefix PING --rate 80 --seconds 5
it_bg junk 30 $IT_PY "$T/traffic.py" --bind 127.0.0.1:6003 --prefix JUNK --rate 20 --seconds 5 \
    --no-reply
sleep 3.5
screen >"$T/screen2.txt"
grep -Eq "^drops/s action=[0-9]" "$T/screen2.txt" || it_fail "drops not shown: $(cat "$T/screen2.txt")"
grep -q "^drops/s none" "$T/screen1.txt" || it_fail "drops shown without any: $(cat "$T/screen1.txt")"
r2=$(rate ping)
in_range "$r2" 55 105 || it_fail "rate at 80/s shows '$r2': $(cat "$T/screen2.txt")"
it_stop fast
it_stop junk
sleep 2.5
screen >"$T/screen3.txt"
r3=$(rate ping)
it_eq "$r3" 0 "rate after the traffic stopped"
it_log "ping rates seen by top: $r1 -> $r2 -> $r3 datagrams/s"
[ "$(rate fwd)" = 0 ] || it_fail "fwd had no traffic but shows $(rate fwd)"

# q quits
$TM send-keys -t top q
for i in $(seq 1 30); do
    $TM has-session -t top 2>/dev/null || break
    sleep 0.1
done
if $TM has-session -t top 2>/dev/null; then
    it_fail "top still runs after q: $(screen)"
fi

# JSON mode: one object per refresh
timeout 20 "$UDPMUXCTL" -s "$T/control.sock" -j top -n 3 </dev/null >"$T/top.ndjson"
ctl_eq "$(wc -l <"$T/top.ndjson")" 3 "NDJSON lines"
$IT_PY - "$T/top.ndjson" <<'EOF' || it_fail "top -j output: $(cat "$T/top.ndjson")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert [l["iteration"] for l in lines] == [0, 1, 2], lines
assert all(0.8 < l["interval_s"] < 1.5 for l in lines[1:]), lines
assert sorted(r["name"] for r in lines[0]["routes"]) == ["fwd", "junk", "ping"], lines
EOF
it_pass
