#!/usr/bin/env bash
# unit-security.sh UNIT HARDEN_C - the systemd unit as built
# (build/dist/udpmuxd.service):
#
#   1. `systemd-analyze security` exposure at most 2.5 ("OK")
#   2. the options the unit promises are there: runs as udpmux, no restart
#      loop on a configuration error (exit 78), the hardening options that
#      cost nothing
#   3. its SystemCallFilter= lets through every system call udpmuxd's own
#      seccomp allow-list (daemon/harden.c) permits, and the ones it makes
#      before its filter is in place (seccomp, capset, setrlimit...): a
#      filter that kills the daemon on start would pass 1 and 2
set -euo pipefail
unit=${1:?unit file}
harden=${2:?daemon/harden.c}
max=2.5
command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze missing"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. exposure (offline: no running systemd needed)
out=$(systemd-analyze security --offline=true "$unit" 2>&1) || true
exposure=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
[ -n "$exposure" ] || { printf '%s\n' "$out" >&2; fail "no exposure level from systemd-analyze"; }
echo "exposure $exposure (at most $max)"
awk -v e="$exposure" -v m="$max" 'BEGIN { exit !(e <= m) }' ||
    { printf '%s\n' "$out" | grep '✗' >&2; fail "exposure $exposure above $max"; }

# 2. promised options
for want in User=udpmux RestartPreventExitStatus=78 NoNewPrivileges=yes \
    ProtectClock=yes ProtectKernelLogs=yes ProtectHostname=yes RestrictRealtime=yes \
    RestrictSUIDSGID=yes SystemCallArchitectures=native PrivateDevices=yes UMask=0077 \
    ProtectSystem=strict ProtectHome=yes AmbientCapabilities=CAP_NET_BIND_SERVICE \
    CapabilityBoundingSet=CAP_NET_BIND_SERVICE RuntimeDirectory=udpmux Type=notify; do
    grep -qx -- "$want" "$unit" || fail "$want missing from $unit"
done

# 3. system calls: the unit's allow-list (groups expanded) minus its deny
# lines, against the daemon's
/usr/bin/python3 - "$unit" "$harden" <<'PY'
import re, subprocess, sys
unit, harden = sys.argv[1], sys.argv[2]
groups, cur = {}, None
for line in subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True,
                           text=True, check=True).stdout.splitlines():
    s = line.strip()
    if not s or s.startswith("#"):
        continue
    if line.startswith("@"):
        cur = s.split()[0]
        groups[cur] = []
    elif cur:
        groups[cur].append(s.split()[0])

def expand(names):
    out = set()
    for n in names:
        out |= expand(groups.get(n, [])) if n.startswith("@") else {n}
    return out

allow, deny = set(), set()
for line in open(unit):
    m = re.match(r"SystemCallFilter=(~?)(.*)", line.strip())
    if m:
        (deny if m.group(1) else allow).update(expand(m.group(2).split()))
text = open(harden).read()
block = re.search(r"allow_plain\[\] = \{(.*?)\n\};", text, re.S)
if not block:
    sys.exit("FAIL: no allow_plain[] list in " + harden)
used = set(re.findall(r'"([a-z0-9_]+)"', block.group(1)))
used |= set(re.findall(r'add\(ctx, "([a-z0-9_]+)"', text))
# before the daemon's own filter: install it, drop capabilities, raise limits
used |= {"seccomp", "capset", "capget", "setrlimit", "prlimit64", "bind", "setsockopt",
         "setgroups", "setresuid", "setresgid", "chown", "chmod", "umask", "listen"}
# only allowed in sanitizer builds (LeakSanitizer's tracer)
used -= {"ptrace"}
if len(used) < 60:
    sys.exit(f"FAIL: only {len(used)} system calls read from {harden}")
blocked = sorted(s for s in used if s not in allow or s in deny)
if blocked:
    sys.exit("FAIL: the unit's SystemCallFilter= blocks " + " ".join(blocked))
print(f"{len(used)} system calls of udpmuxd allowed by the unit")
PY
echo PASS
