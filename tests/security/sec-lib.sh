# sec-lib.sh - helpers shared by the security tests (sourced after
# tests/integration/lib.sh, whose it_* harness they use: own network and
# mount namespace, bounded waits, cleanup trap, logs on failure).
#
# Environment (tests/security/meson.build): UDPMUXD, UDPMUXCTL, UMX_FLOOD
# (the spoofed-source flood helper), SECCOMP_CHECK, UMX_SRC.

SEC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SEC_PY="/usr/bin/python3 $SEC_DIR/sec.py"
UDPMUXCTL=${UDPMUXCTL:-$(dirname "$UDPMUXD")/../ctl/udpmuxctl}
UMX_FLOOD=${UMX_FLOOD:-$(dirname "$UDPMUXD")/../tests/security/umx-flood}

# sec_stat NAME: one daemon counter (udpmuxctl stats), 0 when absent.
sec_stat()
{
    local v
    v=$(timeout 5 "$UDPMUXCTL" -s "$T/control.sock" stats 2>/dev/null |
        awk -F= -v k="$1" '$1 == k { print $2; exit }')
    echo "${v:-0}"
}

# sec_status PID FIELD: a /proc/PID/status field (first value).
sec_status()
{
    awk -v k="$2:" '$1 == k { print $2; exit }' "/proc/$1/status"
}

# sec_rss_kb PID / sec_cpu_ticks PID (utime + stime of the whole process)
sec_rss_kb()
{
    sec_status "$1" VmRSS
}

sec_cpu_ticks()
{
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# sec_json FIELD: reads a JSON object on stdin, prints one top-level field.
sec_json()
{
    /usr/bin/python3 -c 'import json,sys; v=json.load(sys.stdin)[sys.argv[1]]; print(json.dumps(v) if isinstance(v,(dict,list)) else v)' "$1"
}

# sec_le A B MSG / sec_ge A B MSG: numeric assertions.
sec_le()
{
    [ "$1" -le "$2" ] || it_fail "$3: $1 > $2"
}

sec_ge()
{
    [ "$1" -ge "$2" ] || it_fail "$3: $1 < $2"
}

# sec_no_refused NAME: the daemon log has no seccomp refusal.
sec_no_refused()
{
    it_log_lacks "${1:-udpmuxd}" "seccomp: refused" "seccomp"
}

# sec_dpid NAME: the pid of the program it_bg started as NAME (it_bg's pid
# is the `timeout` wrapper's; the program is its only child).
sec_dpid()
{
    local w c i
    w=$(it_pid "$1")
    for i in $(seq 1 50); do
        c=$(ps -o pid= --ppid "$w" | head -n 1 | tr -d ' ')
        [ -n "$c" ] && { echo "$c"; return 0; }
        sleep 0.05
    done
    it_fail "no child process under $1 ($w)"
}

# SEC_SANITIZED=1 when udpmuxd is an ASan/UBSan build: it is 2-5x slower, so
# the load tests offer proportionally less load, and RSS is no leak signal
# (freed memory sits in ASan's quarantine); leaks are LeakSanitizer's job
# at exit instead (sec_sanitizer_clean).
SEC_SANITIZED=0
if grep -aq -e __asan_init -e __ubsan_handle "$UDPMUXD" 2>/dev/null; then
    SEC_SANITIZED=1
fi

# sec_sanitizer_clean NAME: stops the daemon started as NAME and checks its
# log for sanitizer reports (leaks at exit, UB, memory errors).
sec_sanitizer_clean()
{
    it_stop "${1:-udpmuxd}"
    it_log_lacks "${1:-udpmuxd}" "AddressSanitizer|LeakSanitizer|runtime error:" "sanitizer"
}
