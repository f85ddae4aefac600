#!/usr/bin/env bash
# kernel-measure/nat-floor.sh - by hand, as root:
#   bash tests/integration/kernel-measure/nat-floor.sh [REPS]
# What netfilter itself costs one 64 B GSO flow on lo, bench/run's layout
# (generator and sink on CPU 0), with no udpmuxd: the floor under any
# netfilter datapath. Modes, alternated REPS times (default 5) so that
# machine noise hits all alike; prints each mode's median pps and its
# ratio to the direct path's median:
#   direct     no rules (conntrack not loaded in the namespace)
#   ctonly     conntrack on (one `ct state new` rule), no NAT
#   dnat       static DNAT + masquerade (bench/run's nftnat)
#   const      notrack + a constant daddr/dport rewrite in one output rule,
#              no reroute, no masquerade: the cheapest rewrite there is
#   maps       notrack + the rewrite from map lookups (verdict map + two
#              data maps) in a route chain: a per-flow stateless NAT
#   muxk       udpmuxd itself, `datapath = kernel` (bench/run's muxk config,
#              started for each run): where it sits on that floor
# docs/internals/kernel-datapath.md ("Where the time goes") has the numbers.
set -eu
W=$(cd "$(dirname "$0")/../../.." && pwd)
U= D=
for b in build build-bench; do [ -x "$W/$b/bench/udpload" ] && U=$W/$b/bench/udpload && D=$W/$b/daemon/udpmuxd && break; done
[ -n "$U" ] && [ -x "$D" ] || { echo "build udpload and udpmuxd first (meson compile -C build)" >&2; exit 1; }
REPS=${1:-5}
exec unshare -n bash -s "$U" "$REPS" "$D" <<'INNER'
set -eu
U=$1 REPS=$2 D=$3 T=$(mktemp -d)
ip link set lo up
ip addr add 10.78.0.1/32 dev lo
BACK=10.78.0.1:7001
taskset -c 0 "$U" sink -l $BACK -d 600 -B 8388608 >"$T/sink.log" 2>&1 &
SP=$!
DP=
trap 'kill $SP 2>/dev/null; [ -z "$DP" ] || kill $DP 2>/dev/null; rm -rf "$T"' EXIT
# bench/run's muxk: the one-liner's config with the route on the kernel path
"$D" -l 127.0.0.1:7000 -r any=$BACK -w 1 -T 2>/dev/null |
    sed -e '/^datapath = /d' -e 's|^upstream = connected|upstream = connected\ndatapath = kernel|' \
        -e "s|^control = .*|control = $T/control.sock|" -e "s|^attach = .*|attach = $T/attach.sock|" >"$T/muxk.conf"
sleep 0.3
rules() {
    nft flush ruleset
    case $1 in
    ctonly) nft -f - <<'NFT' ;;
table ip m {
    chain out { type filter hook output priority 0; ct state new counter; }
}
NFT
    dnat) nft -f - <<'NFT' ;;
table ip m {
    chain out { type nat hook output priority -100; ip daddr 127.0.0.1 udp dport 7000 dnat to 10.78.0.1:7001; }
    chain post { type nat hook postrouting priority 100; ip daddr 10.78.0.1 udp dport 7001 masquerade; }
}
NFT
    const) nft -f - <<'NFT' ;;
table ip m {
    chain out { type filter hook output priority -300; ip daddr 127.0.0.1 udp dport 7000 notrack ip daddr set 10.78.0.1 udp dport set 7001; }
}
NFT
    muxk)
        "$D" -c "$T/muxk.conf" >"$T/muxk.log" 2>&1 &
        DP=$!
        for _ in $(seq 50); do nft list table ip udpmuxd >/dev/null 2>&1 && [ -S "$T/control.sock" ] && break; sleep 0.05; done
        ;;
    maps) nft -f - <<'NFT' ;;
table ip m {
    map v { type ipv4_addr . ipv4_addr . inet_service : verdict; flags timeout; counter; elements = { 127.0.0.1 . 127.0.0.1 . 7000 timeout 1h : goto rw } }
    map a { type ipv4_addr . ipv4_addr . inet_service : ipv4_addr; elements = { 127.0.0.1 . 127.0.0.1 . 7000 : 10.78.0.1 } }
    map p { type ipv4_addr . inet_service : inet_service; elements = { 127.0.0.1 . 7000 : 7001 } }
    chain rw { notrack; ip daddr set ip saddr . ip daddr . udp dport map @a; udp dport set ip saddr . udp dport map @p; }
    chain out { type route hook output priority -300; meta l4proto udp ip saddr . ip daddr . udp dport vmap @v; }
}
NFT
    esac
}
report=0
run() { # run MODE -> appends the sink's pps to $T/MODE
    local to=127.0.0.1:7000
    case $1 in direct | ctonly) to=$BACK ;; esac
    rules "$1"
    report=$((report + 1))
    kill -USR1 $SP
    sleep 0.2
    taskset -c 0 "$U" send -t $to -d 2 -n 100000000 -s 64 -b 32 -g -L 8 >/dev/null
    sleep 0.3
    report=$((report + 1))
    kill -USR1 $SP
    for _ in $(seq 50); do grep -q " report=$report " "$T/sink.log" && break; sleep 0.05; done
    sed -n "s/.* report=$report .*pps=\([0-9]*\).*/\1/p" "$T/sink.log" >>"$T/$1"
    if [ -n "$DP" ]; then
        kill $DP
        wait $DP 2>/dev/null || true
        DP=
    fi
}
MODES="direct ctonly dnat const maps muxk"
for _ in $(seq "$REPS"); do for m in $MODES; do run $m; done; done
nft flush ruleset
med() { sort -n "$T/$1" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
d=$(med direct)
for m in $MODES; do
    printf '%-7s median %8s pps  %.3fx direct   (runs: %s)\n' $m "$(med $m)" \
        "$(awk -v a="$(med $m)" -v b="$d" 'BEGIN { print a / b }')" "$(tr '\n' ' ' <"$T/$m")"
done
INNER
