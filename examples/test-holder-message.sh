#!/usr/bin/env bash
# test-holder-message.sh PEER BIND_CHECK - while one program holds a port,
# a second one trying to bind it gets a message naming the holder: its pid
# and program name. Checked for examples/peer (which reports on
# -EADDRINUSE) and for udpmux-bind-check.
set -euo pipefail
peer=$1
check=$2
tmp=$(mktemp -d)
holder=''
cleanup() {
    [ -n "$holder" ] && kill "$holder" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
fail=0

started=0
for attempt in 1 2 3 4 5; do
    port=$((20000 + (RANDOM % 20000)))
    "$peer" -l "127.0.0.1:$port" -t 20000 >"$tmp/holder.log" 2>&1 &
    holder=$!
    for _ in $(seq 1 50); do # up to 5 s
        grep -q listening "$tmp/holder.log" 2>/dev/null && break
        kill -0 "$holder" 2>/dev/null || break
        sleep 0.1
    done
    if grep -q listening "$tmp/holder.log"; then
        started=1
        break
    fi
    wait "$holder" || true
    holder=''
done
[ $started -eq 1 ] || { echo "FAIL: could not start a holder"; exit 1; }
comm=$(cat "/proc/$holder/comm")
echo "holder: pid $holder ($comm) on 127.0.0.1:$port"

# 1. the example itself, started a second time on the same address
rc=0
"$peer" -l "127.0.0.1:$port" -t 1000 >"$tmp/second.log" 2>&1 || rc=$?
echo "--- second peer (exit $rc):"; cat "$tmp/second.log"
[ $rc -eq 2 ] || { echo "FAIL: second peer exited $rc, want 2"; fail=1; }
grep -qF "cannot bind 127.0.0.1:$port: Address already in use" "$tmp/second.log" ||
    { echo "FAIL: no 'Address already in use'"; fail=1; }
grep -qF "pid $holder ($comm)" "$tmp/second.log" ||
    { echo "FAIL: holder pid $holder ($comm) not named"; fail=1; }

# 2. the wildcard address conflicts with it too
rc=0
"$check" "0.0.0.0:$port" >"$tmp/check.log" 2>&1 || rc=$?
echo "--- udpmux-bind-check 0.0.0.0:$port (exit $rc):"; cat "$tmp/check.log"
[ $rc -eq 1 ] || { echo "FAIL: bind-check exited $rc, want 1"; fail=1; }
grep -qF "pid $holder ($comm) uid $(id -u) on 127.0.0.1:$port" "$tmp/check.log" ||
    { echo "FAIL: bind-check did not name the holder"; fail=1; }

# 3. opting into SO_REUSEPORT does not get around an exclusive holder
rc=0
"$check" --reuseport "127.0.0.1:$port" >"$tmp/check2.log" 2>&1 || rc=$?
[ $rc -eq 1 ] || { echo "FAIL: --reuseport bind-check exited $rc, want 1"; fail=1; }

# 4. once the holder is gone the port is free
kill "$holder"
wait "$holder" || true
holder=''
rc=0
"$check" "127.0.0.1:$port" >"$tmp/check3.log" 2>&1 || rc=$?
cat "$tmp/check3.log"
[ $rc -eq 0 ] || { echo "FAIL: port still busy after the holder exited"; fail=1; }

if [ $fail -ne 0 ]; then
    echo "example-holder-message: FAILED"
    exit 1
fi
echo "example-holder-message: OK"
