# shellcheck shell=bash
# common.sh - shared helpers for scripts/capture/<protocol>.sh (sourced, not run).
#
# Every capture script re-executes itself inside a fresh network namespace
# (`unshare -n`), so all traffic stays on a private loopback interface that
# disappears with the script. Every program runs under `timeout`, every loop
# is bounded, and tcpdump records only UDP on the ports the script uses.
#
# Usage inside a script:
#   . "$(dirname "$0")/common.sh"
#   umx_enter_netns "$@"           # re-exec in a new netns (no-op when inside)
#   umx_capture_start NAME.pcap "udp port 5300"
#   ...run real programs with `timeout`...
#   umx_capture_stop               # flushes and writes tests/data/pcap/NAME.pcap
#
# Requires root (unshare -n, tcpdump). Override the output directory with
# UMX_PCAP_DIR (default: <repo>/tests/data/pcap).

set -euo pipefail # scripts that source this file exit on any failed command (cd included)

UMX_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
UMX_PCAP_DIR=${UMX_PCAP_DIR:-$UMX_REPO/tests/data/pcap}

umx_enter_netns()
{
    if [ -z "${UMX_IN_NETNS:-}" ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "$0: needs root (unshare -n, tcpdump)" >&2
            exit 1
        fi
        UMX_IN_NETNS=1 exec timeout -k 5 180 unshare -n -- bash "$0" "$@"
    fi
    ip link set lo up
    UMX_TMP=$(mktemp -d /tmp/umx-capture.XXXXXX)
    export UMX_TMP
    trap umx_cleanup EXIT
}

umx_cleanup()
{
    local p
    # stop every background job this script started (by pid, never by name)
    for p in $(jobs -p); do
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$UMX_TMP"
}

# umx_capture_start FILE FILTER   (interface: $UMX_CAPTURE_IF, default lo)
umx_capture_start()
{
    UMX_PCAP_OUT=$UMX_PCAP_DIR/$1
    mkdir -p "$UMX_PCAP_DIR"
    timeout -k 2 120 tcpdump -i "${UMX_CAPTURE_IF:-lo}" -n -s 0 -U --immediate-mode -Z root \
        -w "$UMX_TMP/cap.pcap" "$2" \
        2>"$UMX_TMP/tcpdump.log" &
    UMX_TCPDUMP_PID=$!
    for _ in $(seq 1 50); do
        grep -q "listening on" "$UMX_TMP/tcpdump.log" 2>/dev/null && break
        sleep 0.1
    done
    sleep 0.2
}

umx_capture_stop()
{
    sleep 0.5
    kill -INT "$UMX_TCPDUMP_PID" 2>/dev/null || true
    wait "$UMX_TCPDUMP_PID" 2>/dev/null || true
    cp "$UMX_TMP/cap.pcap" "$UMX_PCAP_OUT"
    chmod 644 "$UMX_PCAP_OUT"
    echo "$(basename "$UMX_PCAP_OUT"): $(tcpdump -r "$UMX_PCAP_OUT" -n 2>/dev/null | wc -l) packets"
}

# umx_wait_port PROTO PORT: wait (bounded, 5 s) until something listens on udp PORT
umx_wait_udp()
{
    for _ in $(seq 1 50); do
        ss -Hlun "sport = :$1" | grep -q . && return 0
        sleep 0.1
    done
    echo "nothing listening on udp/$1" >&2
    return 1
}
