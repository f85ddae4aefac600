#!/usr/bin/env bash
# test-holder-message.sh PEER BIND_CHECK [UDPMUXD] - while one program holds a port,
# a second one trying to bind it gets a message naming the holder: its pid
# and program name. Checked for examples/peer (which reports on
# -EADDRINUSE) and for udpmux-bind-check.
set -euo pipefail
peer=$1
check=$2
udpmuxd=${3:-}
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

# 5. a program holding the port with a SO_REUSEPORT group of two sockets:
# its line is printed once, with the count; a --reuseport bind would join
# its group (exit 2, the program named), an exclusive one is refused
port2=$((port + 1))
python3 -c '
import socket, sys, time
socks = []
for _ in range(2):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", int(sys.argv[1])))
    socks.append(s)
print("listening", flush=True)
time.sleep(20)' "$port2" >"$tmp/group.log" 2>&1 &
holder=$!
for _ in $(seq 1 50); do
    grep -q listening "$tmp/group.log" 2>/dev/null && break
    sleep 0.1
done
gcomm=$(cat "/proc/$holder/comm")
rc=0
"$check" "127.0.0.1:$port2" >"$tmp/check4.log" 2>&1 || rc=$?
cat "$tmp/check4.log"
[ $rc -eq 1 ] || { echo "FAIL: exclusive bind-check on a group exited $rc, want 1"; fail=1; }
[ "$(grep -c "pid $holder ($gcomm)" "$tmp/check4.log")" = 1 ] ||
    { echo "FAIL: the group's holder line is not printed exactly once"; fail=1; }
grep -qF "pid $holder ($gcomm) uid $(id -u) on 127.0.0.1:$port2, SO_REUSEADDR=no SO_REUSEPORT=yes (2 sockets)" \
    "$tmp/check4.log" || { echo "FAIL: no socket count on the group's line"; fail=1; }
rc=0
"$check" --reuseport "127.0.0.1:$port2" >"$tmp/check5.log" 2>&1 || rc=$?
cat "$tmp/check5.log"
[ $rc -eq 2 ] || { echo "FAIL: --reuseport bind-check joining a group exited $rc, want 2"; fail=1; }
grep -qF "joins another program's group" "$tmp/check5.log" ||
    { echo "FAIL: --reuseport did not say it would join the group"; fail=1; }
grep -qF "pid $holder ($gcomm)" "$tmp/check5.log" ||
    { echo "FAIL: --reuseport did not name the group's program"; fail=1; }
# udpmuxd names the group's program once too
if [ -n "$udpmuxd" ]; then
    rc=0
    timeout 10 "$udpmuxd" -l "127.0.0.1:$port2" -r any=echo >"$tmp/udpmuxd.log" 2>&1 || rc=$?
    cat "$tmp/udpmuxd.log"
    [ $rc -ne 0 ] || { echo "FAIL: udpmuxd started on a held port"; fail=1; }
    [ "$(grep -c "held by pid $holder ($gcomm)" "$tmp/udpmuxd.log")" = 1 ] ||
        { echo "FAIL: udpmuxd did not name the group's program exactly once"; fail=1; }
    grep -qF "(2 sockets)" "$tmp/udpmuxd.log" || { echo "FAIL: udpmuxd gave no socket count"; fail=1; }
fi
kill "$holder"
wait "$holder" 2>/dev/null || true
holder=''

if [ $fail -ne 0 ]; then
    echo "example-holder-message: FAILED"
    exit 1
fi
echo "example-holder-message: OK"
