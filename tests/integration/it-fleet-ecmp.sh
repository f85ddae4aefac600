#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-fleet-ecmp.sh - a fleet of three udpmuxd instances behind a router's
# ECMP route with L4 hashing and a resilient next-hop group (#15):
#
#   cli 10.10.0.2 (+ 10.20.0.1-20: 200 client tuples)
#    |
#   router (this namespace): 10.99.0.1/32 nhid 100 = resilient group of
#    |    i1 10.11.1.2, i2 10.11.2.2, i3 10.11.3.2 (each: VIP 10.99.0.1 on lo,
#    |    udpmuxd on 10.99.0.1:4000 and on its own address, same config)
#   b1 10.12.1.2, b2 10.12.2.2: echo backends (plain :5001, QUIC :5443)
#    and wireguard-go servers (:51820, the same key) with a tunnel echo
#
# Checks: every instance picks the same backend for a client (fleet-key);
# removing i3's next-hop moves only i3's clients, and every client keeps its
# backend; adding it back: the same; QUIC datagrams with QUIC-LB CIDs reach
# the backend their server id names, from migrated 4-tuples, across the
# rehash; a WireGuard tunnel through the fleet survives the rehash that
# moves it to another instance (time measured, printed as `wg-rehash-gap`).
# Then the control: the same fleet without fleet-key and quic-lb (main's
# behaviour) disagrees and misroutes, so these checks can fail.
#
# FLEET_WG_CONTROL=1: only the WireGuard measurement, on a fleet without
# fleet-key and with a 30 s stream, for the numbers in docs/scale-out.md
# (when the new instance happens to pick the other server, the client
# re-handshakes: about 15 s). No assertions then; run it a few times.
. "$(dirname "$0")/lib.sh"
it_init "$@"

FLEET_KEY=3f8a2b9c4d5e6f708192a3b4c5d6e7f8
QLB_KEY=8f95f09245765f80256934e50c66207f
SID1=0000b001
SID2=0000b002
FC="$IT_PY $IT_DIR/fleet-client.py"
N=200

sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.ipv4.fib_multipath_hash_policy=1
# the same seed on every router of a real fleet (Linux 6.11+)
sysctl -qw net.ipv4.fib_multipath_hash_seed=12345 2>/dev/null || true

it_child_ns cli 10.10.0.1 10.10.0.2
for i in 1 2 3; do
    it_child_ns "i$i" "10.11.$i.1" "10.11.$i.2"
    ip -n "$(it_ns "i$i")" addr add 10.99.0.1/32 dev lo
done
for b in 1 2; do
    it_child_ns "b$b" "10.12.$b.1" "10.12.$b.2"
done
for a in $(seq 1 20); do
    ip -n "$(it_ns cli)" addr add "10.20.0.$a/32" dev lo
done
ip route add 10.20.0.0/24 via 10.10.0.2
for i in 1 2 3; do
    ip nexthop add id "$i" via "10.11.$i.2" dev "v-i$i"
done
# resilient: a removed next-hop's buckets go to the others, nothing else
# moves; an added one takes over buckets idle for 1 s
GROUP="type resilient buckets 64 idle_timer 1 unbalanced_timer 1"
# shellcheck disable=SC2086
ip nexthop add id 100 group 1/2/3 $GROUP
ip route add 10.99.0.1/32 nhid 100

for b in 1 2; do
    it_bg "echo-b$b" 200 ip netns exec "$(it_ns "b$b")" $IT_UDP echo \
        --listen "10.12.$b.2:5001" --tag "b$b" --max-seconds 195
    it_bg "qecho-b$b" 200 ip netns exec "$(it_ns "b$b")" $IT_UDP echo \
        --listen "10.12.$b.2:5443" --tag "qb$b" --max-seconds 195
done

# conf FILE INSTANCE KEYS(yes|no)
conf()
{
    {
        printf '[udpmux]\ncontrol = %s/i%s-control.sock\nattach = %s/i%s-attach.sock\n' \
            "$T" "$2" "$T" "$2"
        printf 'workers = 2\nlog-level = info\n'
        [ "$3" = yes ] && printf 'fleet-key = %s\n' "$FLEET_KEY"
        printf '[listen]\naddress = 10.99.0.1:%s\naddress = 10.11.%s.2:%s\n' \
            "$IT_PORT" "$2" "$IT_PORT"
        printf '[route wg]\nmatch = wireguard\nforward = 10.12.1.2:51820, 10.12.2.2:51820\n'
        if [ "$3" = yes ]; then
            printf '[route quic]\nmatch = quic\n'
            printf 'forward = 10.12.1.2:5443 server-id=%s, 10.12.2.2:5443 server-id=%s\n' \
                "$SID1" "$SID2"
            printf 'quic-lb = config-id=1 server-id-length=4 nonce-length=12 key=%s\n' "$QLB_KEY"
        fi
        printf '[route plain]\nmatch = any\nforward = 10.12.1.2:5001, 10.12.2.2:5001\n'
    } >"$1"
}

start_fleet()
{
    local i k
    for i in 1 2 3; do
        conf "$T/i$i.conf" "$i" "$1"
        it_bg "i$i-$1" 200 ip netns exec "$(it_ns "i$i")" "$UDPMUXD" -c "$T/i$i.conf"
    done
    for i in 1 2 3; do
        for k in $(seq 1 100); do
            grep -q " ready" "$T/i$i-$1.log" 2>/dev/null && break
            sleep 0.05
        done
        grep -q " ready" "$T/i$i-$1.log" || it_fail "instance i$i did not start"
    done
}

stop_fleet()
{
    local i
    for i in 1 2 3; do
        it_stop "i$i-$1"
    done
}

# round NAME TO [fleet-client options]: a round of the N clients, JSON in
# $T/NAME.json; fails unless every client was answered
round()
{
    local name=$1 to=$2
    shift 2
    timeout 60 ip netns exec "$(it_ns cli)" $FC round --to "$to" --clients "$N" "$@" \
        >"$T/$name.json" || it_fail "round $name failed"
    py_check "import json; d=json.load(open('$T/$name.json')); \
assert len(d) == $N, '$name: %d of $N clients answered' % len(d)"
}

# py_check CODE: a Python assertion over the rounds' JSON files
py_check()
{
    "$IT_PY" -c "$1" >>"$T/checks.log" 2>&1 || {
        tail -n 3 "$T/checks.log" >&2
        it_fail "check failed: ${1:0:160}"
    }
}

set_group()
{
    # shellcheck disable=SC2086
    ip nexthop replace id 100 group "$1" $GROUP
}

if [ -n "${FLEET_WG_CONTROL:-}" ]; then
    start_fleet no
    STREAM_SECS=30
else
start_fleet yes
STREAM_SECS=4

# 1. agreement: every client asks each instance directly
for i in 1 2 3; do
    round "direct$i" "10.11.$i.2:$IT_PORT"
done
py_check "
import json
d = [json.load(open('$T/direct%d.json' % i)) for i in (1, 2, 3)]
bad = [c for c in d[0] if len({d[k][c][0] for k in range(3)}) != 1]
assert not bad, 'instances disagree for %d clients, e.g. %s' % (len(bad), bad[:3])
print('agree: all', len(d[0]), 'clients')"

# 2. through the ECMP route: spread over the instances
round r1 "10.99.0.1:$IT_PORT"
py_check "
import json, collections
d = json.load(open('$T/r1.json')); dd = json.load(open('$T/direct1.json'))
per = collections.Counter(v[1] for v in d.values())
print('r1 per instance', dict(per))
assert len(per) == 3 and min(per.values()) >= 20, per
assert all(d[c][0] == dd[c][0] for c in d), 'ECMP path gave another backend'"

# 3. remove i3: only i3's clients move, and they keep their backend
set_group 1/2
sleep 0.5
round r2 "10.99.0.1:$IT_PORT"
# 4. add it back: buckets idle for 1 s move to i3
set_group 1/2/3
sleep 3
round r3 "10.99.0.1:$IT_PORT"
py_check "
import json
r1, r2, r3 = (json.load(open('$T/%s.json' % n)) for n in ('r1', 'r2', 'r3'))
moved2 = [c for c in r1 if r1[c][1] != r2[c][1]]
assert moved2 and all(r1[c][1] == '10.11.3.2' for c in moved2), 'removal moved others'
assert not any(v[1] == '10.11.3.2' for v in r2.values())
assert all(r1[c][0] == r2[c][0] for c in r1), 'a client changed backend on removal'
moved3 = [c for c in r2 if r2[c][1] != r3[c][1]]
assert moved3 and all(r3[c][1] == '10.11.3.2' for c in moved3), 're-add moved others'
assert all(r1[c][0] == r3[c][0] for c in r1), 'a client changed backend on re-add'
print('removal moved', len(moved2), 'of', len(r1), '(all from i3); re-add moved', len(moved3))"

# 5. QUIC-LB: half the clients hold a CID of b1, half of b2; they migrate
# (new ports) and the next-hops change in between
QA=(--quic-key "$QLB_KEY" --quic-sids "$SID1,$SID2")
round q1 "10.99.0.1:$IT_PORT" "${QA[@]}" --migrate 100
set_group 1/2
sleep 0.5
round q2 "10.99.0.1:$IT_PORT" "${QA[@]}" --migrate 110
set_group 1/2/3
sleep 3
round q3 "10.99.0.1:$IT_PORT" "${QA[@]}" --migrate 120
py_check "
import json
for n in ('q1', 'q2', 'q3'):
    d = json.load(open('$T/%s.json' % n))
    bad = []
    for c, v in d.items():
        # client i = 10 * (address - 1) + port % 10 holds server id i % 2
        a, port = c.split(':')
        i = 10 * (int(a.split('.')[3]) - 1) + (int(port) - 20000) % 10
        want = 'qb1' if i % 2 == 0 else 'qb2'
        if v[0] != want:
            bad.append((c, v, want))
    assert not bad, '%s: %d QUIC clients not at their CID\'s backend, e.g. %s' % (n, len(bad), bad[:3])
    print(n, 'all', len(d), 'QUIC clients at their server id backend; instances',
          sorted({v[1] for v in d.values()}))"

fi

# 6. WireGuard: one tunnel through the fleet; the server answers on
# whichever backend the fleet picks (both have the same key)
it_private_dir /run/wireguard
(umask 077 && wg genkey >"$T/k0" && wg genkey >"$T/k1")
wg pubkey <"$T/k0" >"$T/p0"
wg pubkey <"$T/k1" >"$T/p1"
for b in 1 2; do
    WG_PROCESS_FOREGROUND=1 it_bg "wgs$b" 200 ip netns exec "$(it_ns "b$b")" wireguard-go -f "wgs$b"
done
WG_PROCESS_FOREGROUND=1 it_bg wgc 200 ip netns exec "$(it_ns cli)" wireguard-go -f wgc
for k in $(seq 1 100); do
    [ -S /run/wireguard/wgs1.sock ] && [ -S /run/wireguard/wgs2.sock ] &&
        [ -S /run/wireguard/wgc.sock ] && break
    sleep 0.05
done
[ -S /run/wireguard/wgc.sock ] || it_fail "wireguard-go did not start"
for b in 1 2; do
    ip netns exec "$(it_ns "b$b")" wg set "wgs$b" listen-port 51820 private-key "$T/k0" \
        peer "$(cat "$T/p1")" allowed-ips 10.9.0.2/32
    ip -n "$(it_ns "b$b")" addr add 10.9.0.1/24 dev "wgs$b"
    ip -n "$(it_ns "b$b")" link set "wgs$b" up
    it_bg "tun-echo-b$b" 200 ip netns exec "$(it_ns "b$b")" $IT_UDP echo \
        --listen 10.9.0.1:7777 --tag "wg-b$b" --max-seconds 190
done
ip netns exec "$(it_ns cli)" wg set wgc listen-port 51821 private-key "$T/k1" \
    peer "$(cat "$T/p0")" allowed-ips 10.9.0.1/32 endpoint "10.99.0.1:$IT_PORT"
ip -n "$(it_ns cli)" addr add 10.9.0.2/24 dev wgc
ip -n "$(it_ns cli)" link set wgc up
tun_ask()
{
    timeout 5 ip netns exec "$(it_ns cli)" $IT_UDP ask --to 10.9.0.1:7777 --data "$1" \
        --timeout "${2:-0.2}" --tries 1 2>/dev/null
}
out=
for k in $(seq 1 50); do
    out=$(tun_ask up 0.3) && break
done
[ -n "$out" ] || it_fail "no answer through the WireGuard tunnel"
wgb=${out%%|*}
wgb=${wgb#wg-}
hs_before=$(ip netns exec "$(it_ns "$wgb")" wg show "wgs${wgb#b}" latest-handshakes | awk '{print $2}')
ep=$(ip netns exec "$(it_ns "$wgb")" wg show "wgs${wgb#b}" endpoints | awk '{print $2}')
inst=${ep%:*}
inst=${inst#10.11.}
inst=${inst%.2}
it_log "tunnel up via instance i$inst to $wgb (endpoint $ep)"
case $inst in
1) rest=2/3 ;; 2) rest=1/3 ;; 3) rest=1/2 ;; *) it_fail "tunnel endpoint $ep is no instance" ;;
esac
# the rehash: the tunnel's instance leaves the group while a stream of
# 100 datagrams/s runs inside the tunnel; the datagrams lost are the gap
it_bg wgstream $((STREAM_SECS + 16)) ip netns exec "$(it_ns cli)" $IT_UDP stream \
    --to 10.9.0.1:7777 --seconds "$STREAM_SECS" --rate 100
sleep 1.5
set_group "$rest"
for k in $(seq 1 $((STREAM_SECS * 10 + 100))); do
    it_alive wgstream || break
    sleep 0.1
done
ep2=$(ip netns exec "$(it_ns "$wgb")" wg show "wgs${wgb#b}" endpoints | awk '{print $2}')
hs_after=$(ip netns exec "$(it_ns "$wgb")" wg show "wgs${wgb#b}" latest-handshakes | awk '{print $2}')
if [ -n "${FLEET_WG_CONTROL:-}" ]; then
    py_check "
import json
d = json.loads(open('$T/wgstream.log').read().strip().splitlines()[-1])
print('wg-rehash without fleet-key: sent', d['sent'], 'lost', d['nlost'],
      '(gap about %d ms at 100/s), servers' % (d['nlost'] * 10), d['tags'])"
    cat "$T/checks.log" >&2
    it_pass
    exit 0
fi
[ "$ep2" != "$ep" ] || it_fail "the tunnel did not move to another instance ($ep)"
py_check "
import json
d = json.loads(open('$T/wgstream.log').read().strip().splitlines()[-1])
print('wg-rehash: sent', d['sent'], 'answered', d['answered'], 'lost', d['nlost'],
      '(gap about %d ms at 100/s), servers' % (d['nlost'] * 10), d['tags'],
      'endpoint $ep -> $ep2, new handshake: $([ "$hs_after" = "$hs_before" ] && echo no || echo yes)')
assert set(d['tags']) == {'wg-$wgb'}, 'the tunnel changed server'
assert d['answered'] > 300, 'the tunnel did not carry on after the rehash'
assert d['nlost'] * 10 < 2000, 'gap too long'"
set_group 1/2/3

# 7. the control (main's behaviour): no fleet-key, no quic-lb. The
# instances disagree and the QUIC clients land by address, not by CID
stop_fleet yes
start_fleet no
for i in 1 2 3; do
    round "nodirect$i" "10.11.$i.2:$IT_PORT"
done
py_check "
import json
d = [json.load(open('$T/nodirect%d.json' % i)) for i in (1, 2, 3)]
bad = [c for c in d[0] if len({d[k][c][0] for k in range(3)}) != 1]
print('control without fleet-key: instances disagree for', len(bad), 'of', len(d[0]))
assert len(bad) > 20, 'the control should disagree'"
round noq "10.99.0.1:$IT_PORT" "${QA[@]}" --migrate 130
py_check "
import json
d = json.load(open('$T/noq.json'))
q = [c for c, v in d.items() if v[0].startswith('qb')]
print('control without quic-lb: QUIC clients at a QUIC backend:', len(q), 'of', len(d))
assert not q"
cat "$T/checks.log" >&2
it_pass
