# shellcheck shell=bash disable=SC2034
# lib.sh - shared harness for the integration tests (sourced, not run).
#
# Each test is a bash script that starts with
#
#   . "$(dirname "$0")/lib.sh"
#   it_init "$@"            # re-exec in a fresh network (and mount) namespace
#
# and then starts real programs, one udpmuxd in front of them, and asserts on
# what the clients see and on the daemon's log. Rules every helper keeps:
#
# - Isolation: the script re-executes itself under `unshare -n -m`, so every
#   address is a namespace address and every bind mount (/etc/hosts for
#   QUIC) disappears with the test. Tests may create child namespaces with
#   it_child_ns (veth pairs) for clients that must not share the daemon's.
# - Bounds: the whole test runs under `timeout` (IT_TIMEOUT, default 120 s);
#   every background program runs under its own `timeout`; every wait loop
#   has a count and a time limit.
# - Cleanup: an EXIT trap stops every process it_bg started, by pid, and
#   removes the temporary directory (kept with IT_KEEP=1). On failure it
#   prints the tail of every log, so `meson test --print-errorlogs` shows why.
#
# Environment (set by tests/integration/meson.build; defaults for running a
# script by hand from the source tree):
#   UDPMUXD    the daemon binary      (default: build-integ/daemon/udpmuxd)
#   UDPMUXCTL  the control tool, may be unset (tests must not need it)
#   UMX_SRC    the source tree        (default: two levels up)
#
# Conventions: the shared port is 127.0.0.1:$IT_PORT (4000); backends use
# ports 5000-5999; every config gets its control and attach sockets inside
# the test's directory (UNIX paths are not per network namespace).

set -euo pipefail

IT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
UMX_SRC=${UMX_SRC:-$(cd "$IT_DIR/../.." && pwd)}
UDPMUXD=${UDPMUXD:-$UMX_SRC/build-integ/daemon/udpmuxd}
if [ -z "${UDPMUXCTL:-}" ] && [ -x "$(dirname "$UDPMUXD")/../ctl/udpmuxctl" ]; then
    UDPMUXCTL=$(dirname "$UDPMUXD")/../ctl/udpmuxctl
fi
IT_PY=/usr/bin/python3
IT_UDP="$IT_PY $IT_DIR/it-udp.py"
IT_PORT=4000
IT_TIMEOUT=${IT_TIMEOUT:-120}
IT_NAME=$(basename "$0" .sh)

it_log()
{
    printf '[%s %s] %s\n' "$IT_NAME" "$(date +%T.%N | cut -c1-12)" "$*" >&2
}

# it_init "$@": enter a private network + mount namespace (re-exec), make
# the temp dir, set the trap.
it_init()
{
    if [ -z "${IT_IN_NS:-}" ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "$IT_NAME: needs root (network namespaces); run make check as root" >&2
            exit 1
        fi
        if [ ! -x "$UDPMUXD" ]; then
            echo "$IT_NAME: no daemon at $UDPMUXD (set UDPMUXD)" >&2
            exit 1
        fi
        IT_IN_NS=1 exec timeout -k 5 "$IT_TIMEOUT" unshare -n -m --propagation private \
            -- bash "$0" "$@"
    fi
    ip link set lo up
    T=$(mktemp -d /tmp/umx-it.XXXXXX)
    chmod 755 "$T"
    export T
    IT_PIDS=()
    IT_NAMES=()
    IT_CHILD_NS=()
    IT_STASH=()
    IT_OK=0
    trap it_cleanup EXIT
    # the EXIT trap must also run when the outer timeout stops the test
    trap 'exit 143' TERM INT HUP
    it_log "namespace ready, work dir $T"
}

it_cleanup()
{
    local rc=$? i p
    set +e
    # on failure, the daemon's own view first (while it still runs)
    if { [ "$rc" != 0 ] || [ "$IT_OK" != 1 ]; } && [ -n "${UDPMUXCTL:-}" ] &&
        [ -S "$T/control.sock" ]; then
        {
            timeout 5 "$UDPMUXCTL" -s "$T/control.sock" stats | grep -v '=0$'
            timeout 5 "$UDPMUXCTL" -s "$T/control.sock" flows
        } >"$T/zz-udpmuxctl.log" 2>&1
    fi
    # stop what we started, by pid; a second pass kills what ignored TERM
    for i in "${!IT_PIDS[@]}"; do
        kill "${IT_PIDS[$i]}" 2>/dev/null
    done
    for i in $(seq 1 20); do
        p=0
        for i2 in "${!IT_PIDS[@]}"; do
            kill -0 "${IT_PIDS[$i2]}" 2>/dev/null && p=1
        done
        [ $p = 0 ] && break
        sleep 0.1
    done
    for i in "${!IT_PIDS[@]}"; do
        kill -KILL "${IT_PIDS[$i]}" 2>/dev/null
    done
    wait 2>/dev/null
    for p in "${IT_CHILD_NS[@]}"; do
        ip netns del "$p" 2>/dev/null
    done
    for p in "${IT_STASH[@]}"; do
        # $T was bound back from the real /tmp: unmount it, then remove the
        # real directory through the stash
        if [ -z "${IT_KEEP:-}" ] && [ -n "${T:-}" ]; then
            umount -l "$T" 2>/dev/null
            rm -rf "${p:?}/${T#/tmp/}"
        fi
        umount -l "$p" 2>/dev/null
        rmdir "$p" 2>/dev/null
    done
    if [ "$rc" != 0 ] || [ "$IT_OK" != 1 ]; then
        echo "==== $IT_NAME FAILED (exit $rc); logs from $T:" >&2
        for f in "$T"/*.log; do
            [ -f "$f" ] || continue
            echo "---- $(basename "$f") (last 25 lines)" >&2
            tail -n 25 "$f" >&2
        done
        [ "$rc" = 0 ] && rc=1
    fi
    if [ -z "${IT_KEEP:-}" ]; then
        rm -rf "$T"
    else
        echo "kept $T" >&2
    fi
    exit "$rc"
}

it_fail()
{
    it_log "FAIL: $*"
    exit 1
}

# it_pass: the last line of every test; without it the trap reports failure
# (so a test that stops early by mistake cannot pass).
it_pass()
{
    IT_OK=1
    it_log "PASS"
}

# it_bg NAME SECONDS CMD...: runs CMD in the background under timeout, output
# in $T/NAME.log; remembers the pid as IT_PID_<NAME>.
it_bg()
{
    local name=$1 secs=$2
    shift 2
    timeout -k 2 "$secs" "$@" >"$T/$name.log" 2>&1 &
    local pid=$!
    IT_PIDS+=("$pid")
    IT_NAMES+=("$name")
    printf -v "IT_PID_${name//[^A-Za-z0-9_]/_}" '%s' "$pid"
}

# it_pid NAME: the pid it_bg recorded.
it_pid()
{
    local v="IT_PID_${1//[^A-Za-z0-9_]/_}"
    echo "${!v}"
}

# it_stop NAME [SIGNAL]: stops one background program and waits (bounded).
it_stop()
{
    local pid i
    pid=$(it_pid "$1")
    kill "-${2:-TERM}" "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# it_alive NAME: true while the program runs.
it_alive()
{
    kill -0 "$(it_pid "$1")" 2>/dev/null
}

# it_wait_udp PORT [ADDR]: until a UDP socket is bound on PORT (5 s).
it_wait_udp()
{
    local i
    for i in $(seq 1 100); do
        if ss -Hlun "sport = :$1" | grep -q "${2:-}"; then
            return 0
        fi
        sleep 0.05
    done
    it_fail "nothing listening on udp port $1 ${2:-}"
}

# it_wait_log FILE REGEX [SECONDS]: until the log has a line matching REGEX.
it_wait_log()
{
    local f=$1 re=$2 secs=${3:-10} i
    for i in $(seq 1 $((secs * 10))); do
        grep -Eq -- "$re" "$f" 2>/dev/null && return 0
        sleep 0.1
    done
    it_fail "no line matching '$re' in $(basename "$f") within ${secs}s"
}

# it_conf FILE: writes the harness's [udpmux] section (paths inside $T, two
# workers, info logging) followed by stdin. Tests give [listen] and routes.
# Set IT_CONF_EXTRA for more [udpmux] keys (one per line).
it_conf()
{
    {
        printf '[udpmux]\ncontrol = %s/control.sock\nattach = %s/attach.sock\n' "$T" "$T"
        printf 'workers = %s\nlog-level = %s\n' "${IT_WORKERS:-2}" "${IT_LOGLEVEL:-info}"
        [ -n "${IT_CONF_EXTRA:-}" ] && printf '%s\n' "$IT_CONF_EXTRA"
        printf '\n'
        cat
    } >"$1"
}

# it_daemon CONF [NAME]: starts udpmuxd -c CONF (log $T/NAME.log, default
# udpmuxd) and waits for its "ready" line. Sets UMXD_PID (the daemon's pid,
# for kill -HUP and /proc).
it_daemon()
{
    local conf=$1 name=${2:-udpmuxd}
    it_bg "$name" "$IT_TIMEOUT" "$UDPMUXD" -c "$conf"
    # UMXD_PID is the daemon itself, not its `timeout` wrapper: signals for
    # the daemon (SIGHUP) must not go through timeout, which forwards them
    # but also starts its --kill-after clock on any signal it receives
    local i tpid
    tpid=$(it_pid "$name")
    UMXD_PID=
    for i in $(seq 1 100); do
        UMXD_PID=$(pgrep -P "$tpid" | head -n 1) && [ -n "$UMXD_PID" ] && break
        sleep 0.02
    done
    [ -n "$UMXD_PID" ] || it_fail "udpmuxd did not start"
    for i in $(seq 1 100); do
        grep -q " ready" "$T/$name.log" 2>/dev/null && return 0
        kill -0 "$UMXD_PID" 2>/dev/null || it_fail "udpmuxd exited during start-up"
        sleep 0.05
    done
    it_fail "udpmuxd not ready within 5 s"
}

# it_ask TO DATA [more it-udp.py ask options]: one request, prints the answer.
it_ask()
{
    local to=$1 data=$2
    shift 2
    timeout 10 $IT_UDP ask --to "$to" --data "$data" "$@"
}

# it_attach_conf FILE NAME=PREFIX...: a config (it_conf, so IT_CONF_EXTRA
# applies) whose routes NAME are attach routes for datagrams starting with
# "PREFIX " that root may claim, in order, then a drop route for the rest.
it_attach_conf()
{
    local file=$1 r
    shift
    {
        printf '[listen]\naddress = 127.0.0.1:%s\n' "$IT_PORT"
        for r in "$@"; do
            printf '\n[route %s]\nmatch = regex "^%s "\naction = attach\nallow = uid:0\n' \
                "${r%%=*}" "${r#*=}"
        done
        printf '\n[route rest]\nmatch = any\naction = drop\n'
    } | it_conf "$file"
}

# it_udp_ask ADDR:PORT TEXT: sends TEXT in one datagram, prints the answer
# (empty when none came within a second).
it_udp_ask()
{
    printf '%s' "$2" | timeout 1 socat -t0.5 - "UDP4:$1" 2>/dev/null || true
}

# it_activated NAME CONF TEXT: udpmuxd -c CONF under the real
# systemd-socket-activate --datagram on 127.0.0.1:$IT_PORT (as NAME, log
# $T/NAME.log); the daemon starts on the first datagram, so TEXT is sent
# until it comes back (an echo route) or 5 s pass.
it_activated()
{
    local name=$1 conf=$2 text=$3 i
    it_bg "$name" 30 systemd-socket-activate --datagram -l "127.0.0.1:$IT_PORT" \
        "$UDPMUXD" -c "$conf"
    for i in $(seq 1 50); do
        [ "$(it_udp_ask "127.0.0.1:$IT_PORT" "$text")" = "$text" ] && return 0
        sleep 0.1
    done
    it_fail "no echo through the activated socket ($name)"
}

# it_echo NAME ADDR:PORT [TAG]: a tagged UDP echo backend.
it_echo()
{
    it_bg "$1" 200 $IT_UDP echo --listen "$2" --tag "${3:-$1}" --max-seconds 190
}

# Assertions ---------------------------------------------------------------------

it_eq()
{
    [ "$1" = "$2" ] || it_fail "${3:-values differ}: got '$1', want '$2'"
}

it_contains()
{
    case "$1" in
    *"$2"*) ;;
    *) it_fail "${3:-missing text}: '$2' not in '$1'" ;;
    esac
}

it_log_has()
{
    grep -Eq -- "$2" "$T/$1.log" || it_fail "${3:-log} $1.log has no line matching '$2'"
}

it_log_lacks()
{
    if grep -Eq -- "$2" "$T/$1.log"; then
        it_fail "${3:-log} $1.log has a line matching '$2': $(grep -E -- "$2" "$T/$1.log" | head -n 1)"
    fi
}

# it_fds PID: number of open file descriptors.
it_fds()
{
    ls "/proc/$1/fd" | wc -l
}

# it_ns NAME: the name of the child namespace it_child_ns NAME made.
it_ns()
{
    echo "it-$1-$$"
}

# it_child_ns NAME ADDR_HERE ADDR_THERE: a child netns (named by it_ns NAME)
# joined to this one by a veth pair (here: v-NAME, there: eth0), both /24
# addresses, the child's default route pointing back here. Removed by the
# trap. Run programs there with: ip netns exec "$(it_ns NAME)" CMD...
it_child_ns()
{
    local ns here=$2 there=$3
    ns=$(it_ns "$1")
    ip netns add "$ns"
    IT_CHILD_NS+=("$ns")
    ip link add "v-$1" type veth peer name eth0 netns "$ns"
    ip addr add "$here/24" dev "v-$1"
    ip link set "v-$1" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$there/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "$here"
}

# it_addrconfig_fix: in.tftpd resolves -a with AI_ADDRCONFIG, which fails in
# a namespace with only loopback: add a veth pair (dummy links are not
# available everywhere) with documentation addresses no traffic uses.
it_addrconfig_fix()
{
    ip link add umxa0 type veth peer name umxa1
    ip addr add 192.0.2.254/24 dev umxa0
    ip addr add 2001:db8::254/64 dev umxa0 nodad
    ip link set umxa0 up
    ip link set umxa1 up
}

# it_private_dir DIR: an empty tmpfs on DIR, visible only to this test (the
# mount namespace is private): programs with fixed socket paths
# (/run/wireguard/*.sock) cannot collide with other tests running at once.
it_private_dir()
{
    mkdir -p "$1"
    mount -t tmpfs -o mode=0755,size=1m it-tmpfs "$1"
}

# it_wg_devices SERVER_NS CLIENT_NS SERVER_PORT CLIENT_PORT ENDPOINT: keys and
# two wireguard-go devices, wg0 (server) run in SERVER_NS and wg1 (client)
# in CLIENT_NS (namespace names as it_ns takes them; "" for this one). wg0
# has no endpoint for its peer (it learns it from the first handshake); wg1
# listens on CLIENT_PORT and talks to ENDPOINT (the mux). No addresses yet.
it_wg_devices()
{
    local sns=$1 cns=$2 sport=$3 cport=$4 ep=$5 i
    local -a sx=() cx=()
    [ -n "$sns" ] && sx=(ip netns exec "$(it_ns "$sns")")
    [ -n "$cns" ] && cx=(ip netns exec "$(it_ns "$cns")")
    it_private_dir /run/wireguard
    (umask 077 && wg genkey >"$T/k0" && wg genkey >"$T/k1")
    wg pubkey <"$T/k0" >"$T/p0"
    wg pubkey <"$T/k1" >"$T/p1"
    WG_PROCESS_FOREGROUND=1 it_bg wg0 120 "${sx[@]}" wireguard-go -f wg0
    WG_PROCESS_FOREGROUND=1 it_bg wg1 120 "${cx[@]}" wireguard-go -f wg1
    for i in $(seq 1 100); do
        [ -S /run/wireguard/wg0.sock ] && [ -S /run/wireguard/wg1.sock ] && break
        sleep 0.05
    done
    [ -S /run/wireguard/wg1.sock ] || it_fail "wireguard-go did not start"
    wg set wg0 listen-port "$sport" private-key "$T/k0" peer "$(cat "$T/p1")" \
        allowed-ips 10.9.0.2/32
    wg set wg1 listen-port "$cport" private-key "$T/k1" peer "$(cat "$T/p0")" \
        allowed-ips 10.9.0.1/32 endpoint "$ep" persistent-keepalive 1
}

# it_wg_pair SERVER_PORT CLIENT_PORT ENDPOINT: it_wg_devices here; wg0 is
# 10.9.0.1, wg1 10.9.0.2 with its tun device moved to the child namespace
# "wgc" so the two tunnel addresses are not both local; its UDP socket stays
# here. Send through the tunnel with it_wg_poke.
it_wg_pair()
{
    it_wg_devices "" "" "$@"
    ip addr add 10.9.0.1/24 dev wg0
    ip link set wg0 up
    it_wg_client_tun
}

# it_wg_client_tun: wg1's tun device (10.9.0.2) into child namespace
# "wgc", its UDP socket staying where wireguard-go runs (here).
it_wg_client_tun()
{
    ip netns add "$(it_ns wgc)"
    IT_CHILD_NS+=("$(it_ns wgc)")
    ip link set wg1 netns "$(it_ns wgc)"
    ip -n "$(it_ns wgc)" link set lo up
    ip -n "$(it_ns wgc)" addr add 10.9.0.2/24 dev wg1
    ip -n "$(it_ns wgc)" link set wg1 up
    IT_WG_CLIENT=wgc
}

# it_wg_wait_handshake DEV: pokes through the tunnel until DEV has a
# handshake (at most 50 tries, 0.2 s apart); the caller checks.
it_wg_wait_handshake()
{
    local _
    for _ in $(seq 1 50); do
        it_wg_poke
        [ "$(it_wg_handshake "$1")" != 0 ] && return 0
        sleep 0.2
    done
    return 0
}

# it_wg_pair_ns SERVER_NS CLIENT_NS SERVER_PORT CLIENT_PORT ENDPOINT: the
# same tunnel with each side, its UDP socket and tun device, in its own
# child namespace (a backend and a client apart from udpmuxd's).
it_wg_pair_ns()
{
    it_wg_devices "$@"
    ip -n "$(it_ns "$1")" addr add 10.9.0.1/24 dev wg0
    ip -n "$(it_ns "$1")" link set wg0 up
    ip -n "$(it_ns "$2")" addr add 10.9.0.2/24 dev wg1
    ip -n "$(it_ns "$2")" link set wg1 up
    IT_WG_CLIENT=$2
}

# it_wg_poke: one datagram from the client's tunnel address to the server's
# (10.9.0.1:9, discard; the server's kernel answers with ICMP port
# unreachable, so data flows both ways through the tunnel).
it_wg_poke()
{
    timeout 5 ip netns exec "$(it_ns "$IT_WG_CLIENT")" bash -c 'echo udpmux >/dev/udp/10.9.0.1/9' || true
}

# it_wg_handshake DEV: latest handshake time (0: none yet).
it_wg_handshake()
{
    wg show "$1" latest-handshakes | awk '{print $2}' | head -n 1
}

# it_wg_move PORT: the client (wg1) re-binds to PORT and sends through the
# tunnel; fails unless data reached it at the new port.
it_wg_move()
{
    local rx0 rx1 _
    read -r rx0 _ <<<"$(it_wg_transfer wg1)"
    wg set wg1 listen-port "$1"
    for _ in 1 2 3 4 5; do
        it_wg_poke
        sleep 0.3
    done
    read -r rx1 _ <<<"$(it_wg_transfer wg1)"
    [ "$rx1" -gt "$rx0" ] || it_fail "no data reached wg1 at port $1"
}

# it_wg_transfer DEV: "rx tx" bytes of the first peer.
it_wg_transfer()
{
    wg show "$1" transfer | awk '{print $2, $3}' | head -n 1
}

# it_prog_pid NAME: the pid of the program it_bg NAME started (the child of
# its timeout wrapper), for signals meant for the program alone (STOP/CONT).
it_prog_pid()
{
    local i p
    for i in $(seq 1 50); do
        p=$(pgrep -P "$(it_pid "$1")" | head -n 1) && [ -n "$p" ] && {
            echo "$p"
            return 0
        }
        sleep 0.02
    done
    it_fail "no process under $1"
}

# it_now_ms: monotonic-enough wall clock in milliseconds.
it_now_ms()
{
    echo $(($(date +%s%N) / 1000000))
}

# it_chrony_ready PORT: until a chronyd serving on 127.0.0.1:PORT answers as
# a synchronised server (its `local stratum` reference takes a moment after
# start-up; before that clients reject its answers), asked directly, not
# through udpmuxd. Bounded: 10 tries.
it_chrony_ready()
{
    local i
    printf 'server 127.0.0.1 port %s iburst maxsamples 1 minpoll -6 maxpoll -6\nport 0\ncmdport 0\npidfile %s\n' \
        "$1" "$T/chrony-ready.pid" >"$T/chrony-ready.conf"
    for i in $(seq 1 10); do
        if timeout 5 chronyd -Q -x -U -u root -t 3 -f "$T/chrony-ready.conf" 2>&1 |
            grep -q "System clock wrong by"; then
            return 0
        fi
        sleep 0.3
    done
    it_fail "chronyd on port $1 never answered as a synchronised server"
}

# it_private_tmp: a private, empty tmpfs on /tmp for programs with fixed
# paths there (the `make run` demo's /tmp/udpmux-control.sock). The source
# tree, the build directory ($UDPMUXD's) and $T stay reachable even when
# they live under /tmp: the real /tmp is bind-mounted on a stash directory
# under /run first and those paths are bound back into the new /tmp.
it_private_tmp()
{
    local stash=/run/umx-it-stash-$$ p build
    build=$(cd "$(dirname "$UDPMUXD")/.." && pwd) # before /tmp is covered
    mkdir -p "$stash"
    IT_STASH+=("$stash")
    mount --bind /tmp "$stash"
    mount -t tmpfs -o mode=1777,size=16m it-tmp /tmp
    for p in "$UMX_SRC" "$build" "$T"; do
        case "$p" in
        /tmp/*)
            mkdir -p "$p"
            mount --bind "$stash/${p#/tmp/}" "$p"
            ;;
        esac
    done
}
