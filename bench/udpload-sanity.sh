#!/usr/bin/env bash
# udpload-sanity: udpload send + sink over loopback must count exactly.
# Paced well below what loopback carries, so any loss is a bug, not load.
# Usage: udpload-sanity.sh PATH/TO/udpload        (bounded: ~5 s)
set -u
U=${1:?usage: $0 path/to/udpload}
fail=0

kv() { # kv KEY LINE -> value
    sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"
}

check() { # check NAME SENDER-ARGS...
    local name=$1
    shift
    local out
    out=$(mktemp)
    # the sink binds an ephemeral port and prints it
    timeout 10 "$U" sink -l 127.0.0.1:0 -d 5 -i 400 -B 1048576 >"$out" &
    local spid=$!
    for _ in $(seq 100); do grep -q ready=1 "$out" && break; sleep 0.05; done
    local port
    port=$(kv port "$(grep ready=1 "$out")")
    local s
    s=$(timeout 10 "$U" send -t 127.0.0.1:$port -d 3 "$@")
    wait $spid
    local r
    r=$(grep 'received=' "$out")
    rm -f "$out"
    local sent recv gaps dup reord flows
    sent=$(kv sent "$s")
    recv=$(kv received "$r")
    gaps=$(kv gaps "$r")
    dup=$(kv duplicates "$r")
    reord=$(kv reordered "$r")
    flows=$(kv flows "$r")
    echo "$name: sender: $s"
    echo "$name: sink:   $r"
    if [ -z "$sent" ] || [ "$sent" = 0 ] || [ "$sent" != "$recv" ] || [ "$gaps" != 0 ] ||
        [ "$dup" != 0 ] || [ "$reord" != 0 ] || [ "$flows" != "${want_flows:-1}" ]; then
        echo "FAIL $name: sent=$sent received=$recv gaps=$gaps dup=$dup reord=$reord flows=$flows"
        fail=1
    else
        echo "ok $name"
    fi
}

want_flows=1 check single-flow-sendmmsg -n 5000 -r 20000 -s 64 -b 16
want_flows=1 check single-flow-gso -n 5000 -r 20000 -s 1200 -b 16 -g
want_flows=4 check four-flows -n 4000 -r 20000 -s 100 -f 4
want_flows=5 check five-flows-gso-trains -n 4000 -r 20000 -s 100 -f 5 -g -L 4
# size 0 datagrams carry no header: counted (as short), no flow seen
want_flows=0 check count-bound-empty -n 1234 -s 0 -b 32 -r 10000

# pingpong against the echo mode: every probe answered, percentiles present
eout=$(mktemp)
timeout 10 "$U" echo -l 127.0.0.1:0 -d 4 -i 400 >"$eout" &
epid=$!
for _ in $(seq 100); do grep -q ready=1 "$eout" && break; sleep 0.05; done
port=$(kv port "$(grep ready=1 "$eout")")
p=$(timeout 10 "$U" pingpong -t 127.0.0.1:$port -n 300 -r 1000 -d 3)
wait $epid
rm -f "$eout"
echo "pingpong: $p"
if [ "$(kv received "$p")" != 300 ] || [ -z "$(kv p99_us "$p")" ]; then
    echo "FAIL pingpong"
    fail=1
else
    echo "ok pingpong"
fi
exit $fail
