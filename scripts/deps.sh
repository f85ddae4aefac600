#!/usr/bin/env bash
# deps.sh - the one list of Debian 12 (bookworm) packages udpmux needs, and
# an installer that only runs apt-get when something is missing.
#
#   scripts/deps.sh            install what is missing (as root), or print the
#                              exact apt-get command (as another user)
#   scripts/deps.sh --list     print every package, one per line
#   scripts/deps.sh --missing  print the missing packages, one per line
#
# Other engineers: append packages to the arrays below (one group per
# purpose, keep the comments). BUILD_PKGS are required: if they cannot be
# installed the script fails. TOOL_PKGS are the real programs the
# integration tests talk to; if some cannot be installed the script warns
# and goes on, and the tests that need them skip.
set -euo pipefail

BUILD_PKGS=(
    # build system and compilers
    meson ninja-build pkgconf gcc clang libclang-rt-14-dev
    # libraries
    libcmocka-dev libpcre2-dev libssl-dev libpcap-dev libseccomp-dev
    libmicrohttpd-dev
    # docs, style, test wrappers, namespaces
    scdoc clang-format valgrind iproute2
    # security tests: ps (sec_dpid), setpriv/unshare, python3 helpers
    procps util-linux python3
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
    # generic plumbing, proxies, captures, plots, UI checks
    socat nginx-light libnginx-mod-stream tshark tcpdump gnuplot-nox tmux curl chromium
    # promtool (check metrics) for the /metrics exposition test
    prometheus
    # systemd-socket-activate (socket activation test), setpriv/pgrep, helpers
    systemd util-linux procps python3
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

case "${1:-}" in
--list)
    printf '%s\n' "${BUILD_PKGS[@]}" "${TOOL_PKGS[@]}"
    exit 0
    ;;
--missing)
    missing_of "${BUILD_PKGS[@]}" "${TOOL_PKGS[@]}"
    exit 0
    ;;
"") ;;
*)
    echo "usage: $0 [--list|--missing]" >&2
    exit 2
    ;;
esac

mapfile -t miss_build < <(missing_of "${BUILD_PKGS[@]}")
mapfile -t miss_tool < <(missing_of "${TOOL_PKGS[@]}")
if [ ${#miss_build[@]} -eq 0 ] && [ ${#miss_tool[@]} -eq 0 ]; then
    echo "deps: all $((${#BUILD_PKGS[@]} + ${#TOOL_PKGS[@]})) packages present"
    exit 0
fi

all_miss=("${miss_build[@]}" "${miss_tool[@]}")
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages: ${all_miss[*]}" >&2
    echo "deps: install them as root with:" >&2
    echo "  sudo sh -c 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${all_miss[*]}'" >&2
    # Without the build packages nothing can be built; the tools are optional.
    [ ${#miss_build[@]} -eq 0 ] && exit 0
    exit 1
fi

echo "deps: installing ${all_miss[*]}"
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
