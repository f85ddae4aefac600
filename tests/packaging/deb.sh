#!/usr/bin/env bash
# deb.sh - the Debian packages, built and installed as an operator would:
#
#   1. dpkg-buildpackage -us -uc -b on a copy of the tree (DEB_BUILD_OPTIONS
#      nocheck parallel=2: the suites run elsewhere in make check), with
#      Debian's PATH (no pyenv/venv interpreter)
#   2. lintian: no error
#   3. dpkg -i of udpmuxd, libudpmux0, libudpmux-dev, python3-udpmux into
#      this machine's root seen through overlays (/usr, /etc, /var, /run
#      are copy-on-write in this test's private mount namespace: nothing
#      reaches the real system, and everything is gone when the test ends)
#   4. the packages' promises: the udpmux system user (sysusers.d),
#      /run/udpmux (tmpfiles.d), a conffile in /etc/udpmux that udpmuxd -t
#      accepts, the units as installed; the daemon started the way the unit
#      starts it (as udpmux, ambient CAP_NET_BIND_SERVICE only) answers a
#      STUN request on the default configuration and binds 443 with the
#      packaged 443 example; udpmuxctl talks to it; udpmux-bind-check (and its
#      man page) is installed and names the daemon as the holder of 443;
#      Python imports udpmux and
#      udpmux.twisted from dist-packages; a C program builds against
#      libudpmux-dev with pkg-config, shared and static, and runs
#   5. dpkg --purge removes the configuration
. "$(dirname "$0")/../integration/lib.sh"
it_init "$@"
for tool in dpkg-buildpackage dh lintian; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool missing (scripts/deps.sh check)"; exit 77; }
done
for p in dh-python pybuild-plugin-pyproject python3-all; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        { echo "SKIP: $p missing (scripts/deps.sh check)"; exit 77; }
done
SYSPATH=/usr/sbin:/usr/bin:/sbin:/bin

# 1. build from a copy of the tracked tree (a build never writes into it);
# UMX_DEBS=DIR takes the packages of an earlier run instead (debugging)
mkdir -p "$T/src/udpmux"
if [ -n "${UMX_DEBS:-}" ]; then
    cp "$UMX_DEBS"/*.deb "$UMX_DEBS"/*.changes "$UMX_DEBS"/*.buildinfo "$T/src/"
elif git -C "$UMX_SRC" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$UMX_SRC" ls-files -co --exclude-standard -z |
        (cd "$UMX_SRC" && tar --null -cf - -T - --ignore-failed-read) | tar -xf - -C "$T/src/udpmux"
else
    (cd "$UMX_SRC" && tar --exclude='./build*' --exclude='./obj-*' -cf - .) | tar -xf - -C "$T/src/udpmux"
fi
if [ -z "${UMX_DEBS:-}" ]; then
    it_log "dpkg-buildpackage (nocheck parallel=2)"
    (cd "$T/src/udpmux" && env -i PATH=$SYSPATH HOME="$T" LANG=C.UTF-8 \
        DEB_BUILD_OPTIONS="nocheck parallel=2" nice dpkg-buildpackage -us -uc -b) \
        >"$T/build.log" 2>&1 || it_fail "dpkg-buildpackage failed"
fi
debs=()
for p in udpmuxd libudpmux0 libudpmux-dev python3-udpmux; do
    f=$(ls "$T/src/${p}_"*.deb 2>/dev/null | head -n 1)
    [ -n "$f" ] || it_fail "no $p package built"
    debs+=("$f")
done

# 2. lintian
env -i PATH=$SYSPATH lintian --fail-on error "$T/src/"udpmux_*.changes >"$T/lintian.log" 2>&1 ||
    it_fail "lintian reports errors"
it_log "lintian: $(grep -c '^[EW]:' "$T/lintian.log") errors+warnings"

# 3. install into copy-on-write views of the system directories
for d in usr etc var run; do
    mkdir -p "$T/ov/$d/upper" "$T/ov/$d/work"
    mount -t overlay "ov-$d" -o "lowerdir=/$d,upperdir=$T/ov/$d/upper,workdir=$T/ov/$d/work" "/$d" ||
        it_fail "cannot mount an overlay on /$d"
done
# no service starts from maintainer scripts (no systemd here either)
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
env -i PATH=$SYSPATH DEBIAN_FRONTEND=noninteractive dpkg -i "${debs[@]}" >"$T/dpkg.log" 2>&1 ||
    it_fail "dpkg -i failed"
for p in udpmuxd libudpmux0 libudpmux-dev python3-udpmux; do
    it_eq "$(dpkg-query -W -f='${Status}' "$p")" "install ok installed" "$p state"
done

# 4a. user, directories, configuration, units
pw=$(getent passwd udpmux) || it_fail "no udpmux user after installation"
it_contains "$pw" "/nonexistent" "udpmux home"
[ "$(stat -c %U /run/udpmux)" = udpmux ] || it_fail "/run/udpmux not owned by udpmux"
it_contains "$(dpkg-query -W -f='${Conffiles}' udpmuxd)" "/etc/udpmux/udpmux.conf" "conffile"
setpriv --reuid=udpmux --regid=udpmux --init-groups /usr/sbin/udpmuxd -t -c /etc/udpmux/udpmux.conf \
    >"$T/t.log" 2>&1 || it_fail "udpmuxd -t rejects the packaged configuration"
unit=/lib/systemd/system/udpmuxd.service
grep -q '^User=udpmux$' $unit || it_fail "the unit does not run as udpmux"
grep -q '^ExecStart=/usr/sbin/udpmuxd -c /etc/udpmux/udpmux.conf$' $unit || it_fail "ExecStart path"
[ -f /lib/systemd/system/udpmuxd.socket ] || it_fail "no socket unit"
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify --man=no $unit >"$T/verify.log" 2>&1 ||
        { grep -v "Failed to connect\|No such file" "$T/verify.log" | grep -q . && it_fail "systemd-analyze verify"; }
fi

# 4b. the daemon as the unit starts it: user udpmux, CAP_NET_BIND_SERVICE only
start_as_unit()
{
    local name=$1 conf=$2
    it_bg "$name" 60 setpriv --reuid=udpmux --regid=udpmux --init-groups \
        --inh-caps=+net_bind_service --ambient-caps=+net_bind_service \
        /usr/sbin/udpmuxd -c "$conf"
    for _ in $(seq 1 100); do
        grep -q " ready" "$T/$name.log" && return 0
        it_alive "$name" || it_fail "$name exited"
        sleep 0.05
    done
    it_fail "$name not ready"
}
start_as_unit pkgd /etc/udpmux/udpmux.conf
out=$(timeout 10 turnutils_stunclient -p 3478 127.0.0.1 2>&1) || true
it_contains "$out" "UDP reflexive addr: 127.0.0.1:" "STUN answer from the packaged configuration"
st=$(timeout 5 udpmuxctl -s /run/udpmux/control.sock routes 2>&1) || it_fail "udpmuxctl routes: $st"
it_contains "$st" "stun" "udpmuxctl routes"
pid=$(it_prog_pid pkgd)
it_eq "$(stat -c %U /proc/"$pid")" udpmux "daemon user"
it_eq "$(awk '/^CapEff/ {print $2}' /proc/"$pid"/status)" 0000000000000000 "capabilities after start"
it_stop pkgd

sed -e "s|^control = .*|control = /run/udpmux/control443.sock|" \
    -e "s|^attach = .*|attach = /run/udpmux/attach443.sock|" \
    -e "s|^metrics = .*|metrics = off|" \
    /usr/share/doc/udpmuxd/examples/443-quic-wireguard-openvpn.conf >"$T/443.conf"
chmod 644 "$T/443.conf"
start_as_unit d443 "$T/443.conf"
ss -uln | grep -q '0.0.0.0:443 ' || it_fail "port 443 not bound by the udpmux user"
# udpmux-bind-check comes with udpmuxd (binary and man page) and names the
# holder of a taken port, here the packaged daemon itself
it_eq "$(dpkg -S /usr/bin/udpmux-bind-check 2>/dev/null | cut -d: -f1)" udpmuxd \
    "udpmux-bind-check in the udpmuxd package"
[ -f /usr/share/man/man1/udpmux-bind-check.1.gz ] || it_fail "no udpmux-bind-check(1) man page"
rc=0
out=$(cd / && env -i PATH=$SYSPATH udpmux-bind-check 0.0.0.0:443 2>&1) || rc=$?
it_eq "$rc" 1 "udpmux-bind-check on a taken port"
it_contains "$out" "(udpmuxd) uid $(id -u udpmux)" "udpmux-bind-check names the holder"
rc=0
out=$(cd / && env -i PATH=$SYSPATH udpmux-bind-check 127.0.0.1:0 2>&1) || rc=$?
it_eq "$rc:$out" "0:udpmux-bind-check: 127.0.0.1:0 is free" "udpmux-bind-check on a free port"
it_stop d443

# 4c. Python and C consumers
where=$(cd / && env -i PATH=$SYSPATH python3 -c \
    'import udpmux, udpmux.twisted; print(udpmux.__file__, udpmux.__version__)') ||
    it_fail "python3 cannot import udpmux"
it_contains "$where" "/usr/lib/python3/dist-packages/udpmux/" "python3-udpmux location"
cp "$UMX_SRC/examples/readme.c" "$T/readme.c"
# shellcheck disable=SC2046 # pkg-config prints words
cc -o "$T/readme-shared" "$T/readme.c" $(pkg-config --cflags --libs udpmux) ||
    it_fail "cannot build against libudpmux-dev (shared)"
# shellcheck disable=SC2046
cc -o "$T/readme-static" "$T/readme.c" $(pkg-config --cflags udpmux) \
    -Wl,-Bstatic -ludpmux -Wl,-Bdynamic $(pkg-config --libs-only-l --static udpmux | sed 's/-ludpmux//') ||
    it_fail "cannot build against libudpmux.a"
# the installed library, not one from the build tree (meson test may set
# LD_LIBRARY_PATH); the cache as dpkg's trigger left it, refreshed once more
ldconfig
env -u LD_LIBRARY_PATH ldd "$T/readme-shared" >"$T/ldd-shared.log" 2>&1 || true
env -u LD_LIBRARY_PATH ldd "$T/readme-static" >"$T/ldd-static.log" 2>&1 || true
it_log_has ldd-shared 'libudpmux\.so\.0 => (/usr)?/lib/' "shared build linked to libudpmux0"
it_log_lacks ldd-static 'libudpmux' "static build"
for v in shared static; do
    it_bg "readme-$v" 20 env -u LD_LIBRARY_PATH "$T/readme-$v"
    it_wait_udp 7000
    hex=00$(printf 'hello %s' "$v" | od -An -tx1 | tr -d ' \n')
    it_eq "$(it_ask 127.0.0.1:7000 "" --hex "$hex" --print-hex)" "$hex" "readme example ($v)"
    it_stop "readme-$v"
done

# 5. purge
env -i PATH=$SYSPATH dpkg --purge python3-udpmux libudpmux-dev udpmuxd libudpmux0 >"$T/purge.log" 2>&1 ||
    it_fail "dpkg --purge failed"
[ -e /etc/udpmux/udpmux.conf ] && it_fail "purge left /etc/udpmux/udpmux.conf"
[ -e /usr/sbin/udpmuxd ] && it_fail "purge left /usr/sbin/udpmuxd"
it_pass
