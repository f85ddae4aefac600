#!/bin/bash
# sec-asan-exit.sh - the ASan build of udpmuxd exits after SIGTERM with its
# seccomp filter on, and LeakSanitizer's report is produced and read: the
# leak checker ran (it logs the threads it scanned), found nothing, and the
# daemon exited 0 within 5 s. Before daemon/harden.c allowed the old
# getdents in sanitizer builds, LSan's tracer process was killed by the
# filter and the main thread waited for it in a sched_yield loop for ever.
# Runs in `make asan` (UMX_SANITIZE from b_sanitize); a plain build skips it
# (77: shown as SKIP).
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/sec-lib.sh"
case "${UMX_SANITIZE:-none}" in
*address*) ;;
*)
    echo "sec-asan-exit: not an AddressSanitizer build (b_sanitize=${UMX_SANITIZE:-none}): skipped"
    exit 77
    ;;
esac
it_init "$@"

it_conf "$T/u.conf" <<EOC
[listen]
address = 127.0.0.1:$IT_PORT

[route echo]
match = any
action = echo
EOC
# the daemon's own sanitizer options: leak check at exit, and a line per
# thread the checker scans (the proof it ran); 23 is LSan's exit status
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23
export LSAN_OPTIONS=log_threads=1:exitcode=23
it_daemon "$T/u.conf"
it_log_has udpmuxd "seccomp allow-list" "filter installed"
# some work first: traffic, control requests
for i in 1 2 3; do
    it_eq "$(it_ask 127.0.0.1:$IT_PORT "ping $i")" "ping $i" "echo $i"
done
timeout 5 "$UDPMUXCTL" -s "$T/control.sock" stats >/dev/null || it_fail "udpmuxctl stats"
pid=$UMXD_PID
t0=$(date +%s%N)
kill -TERM "$pid"
for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$pid" 2>/dev/null && it_fail "udpmuxd (ASan) still running 5 s after SIGTERM"
ms=$((($(date +%s%N) - t0) / 1000000))
rc=0
wait "$(it_pid udpmuxd)" || rc=$?
it_log "udpmuxd exited $rc, ${ms} ms after SIGTERM"
it_log_lacks udpmuxd "ERROR: LeakSanitizer|ERROR: AddressSanitizer" "sanitizer report"
it_log_has udpmuxd "==[0-9]+==Processing thread $pid\." "the leak checker scanned the main thread"
it_eq "$rc" 0 "exit status (23: leaks)"
sec_no_refused
it_pass
