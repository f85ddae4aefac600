#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-check.sh - `udpmuxd -t`: 0 and "configuration OK" for a good file, 78
# (EX_CONFIG) with FILE:LINE in the message for each broken one; `-T`
# prints a resolved config that `-t` accepts again.
. "$(dirname "$0")/lib.sh"
it_init "$@"
D=$UMX_SRC/tests/data/integration/check

out=$("$UDPMUXD" -t -c "$D/good.conf" 2>&1) || it_fail "good.conf rejected: $out"
it_contains "$out" "configuration OK" "-t on a good file"
"$UDPMUXD" -T -c "$D/good.conf" >"$T/resolved.conf" 2>&1 || it_fail "-T failed"
out=$("$UDPMUXD" -t -c "$T/resolved.conf" 2>&1) || it_fail "-T output rejected: $out"

n=0
# each bad-*.conf names the line its error is on in its first line:
#   # expect LINE: TEXT
for f in "$D"/bad-*.conf; do
    n=$((n + 1))
    read -r _ _ want_line want_text <<<"$(head -n 1 "$f")"
    want_line=${want_line%:}
    set +e
    out=$("$UDPMUXD" -t -c "$f" 2>&1)
    rc=$?
    set -e
    it_eq "$rc" 78 "exit code for $(basename "$f")"
    it_contains "$out" "$f:$want_line:" "file:line for $(basename "$f")"
    it_contains "$out" "$want_text" "message for $(basename "$f")"
done
[ "$n" -ge 8 ] || it_fail "only $n broken configs"
# a missing file is a config error too
set +e
out=$("$UDPMUXD" -t -c "$T/nosuch.conf" 2>&1)
rc=$?
set -e
it_eq "$rc" 78 "exit code for a missing file"
it_contains "$out" "nosuch.conf" "missing file named"
# a FIFO is refused at once (it used to hang -t until a writer came), and
# so is a directory
mkfifo "$T/fifo.conf"
set +e
out=$(timeout 5 "$UDPMUXD" -t -c "$T/fifo.conf" 2>&1)
rc=$?
set -e
it_eq "$rc" 78 "exit code for a FIFO"
it_contains "$out" "fifo.conf: a FIFO, not a configuration file" "FIFO named"
set +e
out=$(timeout 5 "$UDPMUXD" -t -c "$T" 2>&1)
rc=$?
set -e
it_eq "$rc" 78 "exit code for a directory"
it_contains "$out" "a directory, not a configuration file" "directory named"
# --help and the man page list the same options; --version is meson's
help=$("$UDPMUXD" --help) || it_fail "--help failed"
man=$UMX_SRC/docs/man/udpmuxd.8.scd
for opt in $(grep -o -- '--[a-z-]*' <<<"$help" | sort -u); do
    grep -q -- "\*$opt\*" "$man" || it_fail "$opt is in --help but not in udpmuxd.8.scd"
done
for opt in $(grep -o -- '\*--[a-z-]*\*' "$man" | tr -d '*' | sort -u); do
    grep -q -- "$opt" <<<"$help" || it_fail "$opt is in udpmuxd.8.scd but not in --help"
done
want=$(sed -n "s/^  version: '\(.*\)',/\1/p" "$UMX_SRC/meson.build")
it_contains "$("$UDPMUXD" --version)" "udpmuxd $want" "--version"
set +e
"$UDPMUXD" --no-such-option >/dev/null 2>&1
rc=$?
set -e
it_eq "$rc" 64 "exit code for an unknown option"
it_pass
