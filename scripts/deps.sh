#!/usr/bin/env bash
# deps.sh - the lists of Debian 12 (bookworm) packages udpmux needs, one per
# purpose, and an installer that only runs apt-get when something is missing.
#
#   scripts/deps.sh run          what building and running udpmuxd needs
#                                (`make run`, `make install`)
#   scripts/deps.sh check        all of run, plus what the test suites need
#                                (`make check`; also the default)
#   scripts/deps.sh deb          all of run, plus the Debian packaging tools
#                                (`make deb`)
#   scripts/deps.sh --list [PURPOSE]     print the packages, one per line
#   scripts/deps.sh --missing [PURPOSE]  print the missing ones, one per line
#
# As root it installs what is missing; as another user it prints the exact
# apt-get command.
#
# Other engineers: append packages to the arrays below (one group per
# purpose, keep the comments). RUN_PKGS, TEST_BUILD_PKGS and DEB_PKGS are
# required: if they cannot be installed the script fails. TOOL_PKGS are the
# real programs the integration tests talk to; if some cannot be installed
# the script warns and goes on, and the tests that need them skip.
set -euo pipefail

# Building and running the daemon, udpmuxctl and the library: nothing else.
# debian/control's Build-Depends lists the same libraries.
RUN_PKGS=(
    meson ninja-build pkgconf gcc
    libpcre2-dev libssl-dev libpcap-dev libseccomp-dev
    libmicrohttpd-dev zlib1g-dev
    # datapath = kernel (daemon/kdp/): NFQUEUE, nftables table, conntrack
    libnetfilter-queue-dev libnftnl-dev libmnl-dev libnetfilter-conntrack-dev
    # the reuseport eBPF program (daemon/steer/): compiled by clang for the
    # BPF target, embedded with bpftool's skeleton, loaded by libbpf
    libbpf-dev bpftool clang linux-libc-dev
)

# Building and running the test suites (unit tests, sanitizers, man pages,
# style, namespaces, the Python package's tests).
TEST_BUILD_PKGS=(
    clang libclang-rt-14-dev libcmocka-dev
    scdoc clang-format valgrind iproute2
    # security tests: ps (sec_dpid), setpriv/unshare, python3 helpers
    procps util-linux python3
    # the Python package: asyncio and Twisted programs, pip install in a venv
    python3-twisted python3-venv python3-pip python3-setuptools
)

# Building the Debian packages (make deb, tests/packaging/deb.sh).
DEB_PKGS=(
    dpkg-dev debhelper dh-python pybuild-plugin-pyproject python3-all
    python3-setuptools fakeroot lintian scdoc
)

TOOL_PKGS=(
    # DNS
    dnsutils knot-dnsutils dnsmasq unbound
    # STUN/TURN, NTP, SNMP
    coturn chrony ntpsec-ntpdig snmpd snmp
    # VPNs
    openvpn wireguard-tools wireguard-go
    # TFTP, QUIC
    tftpd-hpa tftp-hpa ngtcp2-client ngtcp2-server
    # generic plumbing, proxies, captures, plots, UI checks (openssl: the
    # QUIC-LB connection ids of it-fleet-ecmp)
    openssl socat nginx-light libnginx-mod-stream tshark tcpdump gnuplot-nox tmux curl chromium
    # promtool (check metrics) for the /metrics exposition test
    prometheus
    # systemd-socket-activate (socket activation test), systemd-analyze
    # (unit hardening test), setpriv/pgrep, helpers
    systemd util-linux procps python3
    # the kernel datapath tests look at the tables and flows udpmuxd made
    conntrack nftables iptables
)

missing_of() {
    local p
    for p in "$@"; do
        local st
        st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
        if [ "${st:0:2}" != "ii" ]; then
            printf '%s\n' "$p"
        fi
    done
}

apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

purpose_pkgs() {
    case "$1" in
    run) printf '%s\n' "${RUN_PKGS[@]}" ;;
    check) printf '%s\n' "${RUN_PKGS[@]}" "${TEST_BUILD_PKGS[@]}" "${DEB_PKGS[@]}" ;;
    deb) printf '%s\n' "${RUN_PKGS[@]}" "${DEB_PKGS[@]}" ;;
    tools) [ "$2" = check ] && printf '%s\n' "${TOOL_PKGS[@]}" ;;
    esac
    return 0
}

usage() {
    echo "usage: $0 [run|check|deb] | --list [run|check|deb] | --missing [run|check|deb]" >&2
    exit 2
}

mode=install
case "${1:-}" in
--list | --missing)
    mode=${1#--}
    purpose=${2:-check}
    ;;
"") purpose=check ;;
*) purpose=$1 ;;
esac
case "$purpose" in
run | check | deb) ;;
*) usage ;;
esac

# the required group, and the optional tools (only for check); each package once
mapfile -t req < <(purpose_pkgs "$purpose" | awk '!seen[$0]++')
mapfile -t opt < <(purpose_pkgs tools "$purpose" | awk '!seen[$0]++')

case "$mode" in
list)
    printf '%s\n' "${req[@]}" "${opt[@]}" | awk 'NF && !seen[$0]++'
    exit 0
    ;;
missing)
    missing_of "${req[@]}" "${opt[@]}" | awk '!seen[$0]++'
    exit 0
    ;;
esac

mapfile -t miss_build < <(missing_of "${req[@]}")
mapfile -t miss_tool < <(if [ ${#opt[@]} -gt 0 ]; then missing_of "${opt[@]}"; fi)
if [ ${#miss_build[@]} -eq 0 ] && [ ${#miss_tool[@]} -eq 0 ]; then
    echo "deps ($purpose): all $((${#req[@]} + ${#opt[@]})) packages present"
    exit 0
fi

all_miss=("${miss_build[@]}" "${miss_tool[@]}")
if [ "$(id -u)" -ne 0 ]; then
    echo "deps ($purpose): missing Debian packages: ${all_miss[*]}" >&2
    echo "deps: install them as root with:" >&2
    echo "  sudo sh -c 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${all_miss[*]}'" >&2
    # Without the required packages nothing can be built; the tools are optional.
    [ ${#miss_build[@]} -eq 0 ] && exit 0
    exit 1
fi

echo "deps ($purpose): installing ${all_miss[*]}"
export DEBIAN_FRONTEND=noninteractive
# Installing dnsmasq, unbound, chrony, snmpd, nginx, coturn, tftpd-hpa would
# start them as system services on their well-known ports, where they would
# get in the way of the tests (which start their own instances). Where no
# policy exists, hold service starts back for the duration of the install.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# temporary, from udpmux scripts/deps.sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get update -q
if apt_install "${all_miss[@]}"; then
    exit 0
fi
# One unavailable tool package must not block the build: install the
# required group on its own, then the tools one by one.
if [ ${#miss_build[@]} -gt 0 ]; then
    apt_install "${miss_build[@]}"
fi
failed=()
for p in "${miss_tool[@]}"; do
    apt_install "$p" || failed+=("$p")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "deps: WARNING: could not install: ${failed[*]} (tests that need them will skip)" >&2
fi
exit 0
