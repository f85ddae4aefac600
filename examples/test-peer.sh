#!/usr/bin/env bash
# test-peer.sh PEER - two instances of examples/peer on loopback, A and B,
# each sending its own requests from its one port and serving the other's.
# Passes when both exit 0 and each log shows: requests served from the
# other's listening port (so the other's client role used its server port)
# and all of its own answers received.
set -euo pipefail
peer=$1
n=5
tmp=$(mktemp -d)
pa='' pb=''
cleanup() {
    [ -n "$pa" ] && kill "$pa" 2>/dev/null || true
    [ -n "$pb" ] && kill "$pb" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

for attempt in 1 2 3 4 5; do
    a=$((20000 + (RANDOM % 20000)))
    b=$((a + 1))
    "$peer" -l "127.0.0.1:$a" -p "127.0.0.1:$b" -n $n -t 15000 >"$tmp/a.log" 2>&1 &
    pa=$!
    "$peer" -l "127.0.0.1:$b" -p "127.0.0.1:$a" -n $n -t 15000 >"$tmp/b.log" 2>&1 &
    pb=$!
    ra=0 rb=0
    wait "$pa" || ra=$?
    wait "$pb" || rb=$?
    pa='' pb=''
    # 2: the port was taken by something else; pick other ports
    if [ $ra -eq 2 ] || [ $rb -eq 2 ]; then
        echo "attempt $attempt: ports $a/$b busy, retrying"
        continue
    fi
    break
done

fail=0
check() { # file pattern
    if ! grep -qF -- "$2" "$1"; then
        echo "FAIL: $(basename "$1") lacks: $2"
        fail=1
    fi
}
echo "--- A (127.0.0.1:$a), exit $ra"; cat "$tmp/a.log"
echo "--- B (127.0.0.1:$b), exit $rb"; cat "$tmp/b.log"
[ $ra -eq 0 ] || { echo "FAIL: A exited $ra"; fail=1; }
[ $rb -eq 0 ] || { echo "FAIL: B exited $rb"; fail=1; }
for i in $(seq 1 $n); do
    check "$tmp/a.log" "served PING $i from 127.0.0.1:$b"
    check "$tmp/b.log" "served PING $i from 127.0.0.1:$a"
    check "$tmp/a.log" "answer PONG $i from 127.0.0.1:$b"
    check "$tmp/b.log" "answer PONG $i from 127.0.0.1:$a"
    check "$tmp/a.log" "answer echo $i from 127.0.0.1:$b"
    check "$tmp/b.log" "answer echo $i from 127.0.0.1:$a"
done
check "$tmp/a.log" "done: $n/$n PONG and $n/$n echo answers from 127.0.0.1:$b; served $n PING and $n echo requests from 127.0.0.1:$b (the peer's own port), all on 127.0.0.1:$a"
check "$tmp/b.log" "done: $n/$n PONG and $n/$n echo answers from 127.0.0.1:$a; served $n PING and $n echo requests from 127.0.0.1:$a (the peer's own port), all on 127.0.0.1:$b"
check "$tmp/a.log" "served echo (2 bytes) from 127.0.0.1:$b"
if [ $fail -ne 0 ]; then
    echo "example-peer: FAILED"
    exit 1
fi
echo "example-peer: OK"
