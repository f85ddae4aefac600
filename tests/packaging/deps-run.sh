#!/usr/bin/env bash
# deps-run.sh SRCDIR - `make run` installs only what building and running the
# daemon needs (scripts/deps.sh run), and that is enough:
#   1. every dependency() meson requires unconditionally is provided by a
#      package of the run list (the .pc file's owner, asked from dpkg)
#   2. the compiler and build tools are there
#   3. none of the test-only packages (test tools, cmocka, valgrind,
#      the programs the integration tests talk to) is in the run list
set -euo pipefail
src=${1:?source dir}
fail() { echo "FAIL: $*" >&2; exit 1; }
mapfile -t run < <("$src/scripts/deps.sh" --list run)
mapfile -t check < <("$src/scripts/deps.sh" --list check)
[ ${#run[@]} -gt 0 ] || fail "scripts/deps.sh --list run is empty"
# (here-strings, not `printf | grep -q`: grep -q quits at the first match,
# printf may then die of SIGPIPE, and pipefail turned a match into a miss:
# "gcc missing from the run list" in one CI run)
in_run() { grep -qx -- "$1" <<<"$(printf '%s\n' "${run[@]}")"; }
# what the run list brings along directly (libpcap-dev -> libpcap0.8-dev)
brought=$(for p in "${run[@]}"; do dpkg-query -W -f='${Depends}\n' "$p" 2>/dev/null || true; done |
    tr ',|' '\n\n' | sed -E 's/^ *([^ (:]+).*/\1/' | sort -u)
provided() { in_run "$1" || grep -qx -- "$1" <<<"$brought"; }
echo "run list: ${#run[@]} packages, check list: ${#check[@]}"

# 1. required meson dependencies -> .pc file -> owning package
deps=$(cd "$src" && git ls-files -co --exclude-standard '*meson.build' 2>/dev/null ||
    find . -name meson.build -not -path './build*')
for f in $deps; do
    grep -oE "dependency\('[a-z0-9_.+-]+'[^)]*\)" "$src/$f" || true
done | grep -v "required" | sed -E "s/dependency\('([^']+)'.*/\1/" | sort -u | while read -r dep; do
    [ "$dep" = threads ] && continue
    pc=$(pkg-config --path "$dep" 2>/dev/null) || fail "pkg-config does not know $dep"
    pc=$(readlink -f "$pc")
    pkg=$(dpkg -S "$pc" 2>/dev/null | head -n 1 | cut -d: -f1) ||
        fail "no package owns $pc ($dep)"
    provided "$pkg" || fail "meson requires $dep ($pkg) but the run list does not bring it"
    echo "ok $dep <- $pkg"
done

# 2. build tools
for p in meson ninja-build pkgconf gcc; do
    in_run "$p" || fail "$p missing from the run list"
done

# 3. nothing only the tests need
# (clang is a build tool of the daemon: it compiles the reuseport eBPF program)
for p in libcmocka-dev valgrind chromium prometheus nginx-light coturn unbound \
    tshark python3-twisted lintian debhelper; do
    in_run "$p" && fail "$p is in the run list (a test-only package)"
    grep -qx -- "$p" <<<"$(printf '%s\n' "${check[@]}")" || fail "$p missing from the check list"
done
echo PASS
