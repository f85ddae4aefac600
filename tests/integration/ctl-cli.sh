#!/usr/bin/env bash
# ctl-cli.sh - udpmuxctl's command line: --help and --version (the version
# is meson's project version), an unknown long option is a usage error
# (64), and `udpmuxctl top` writes plain lines with no escape codes when its
# output is not a terminal (a pipe, a log file).
. "$(dirname "$0")/lib.sh"
it_init "$@"

want=$(sed -n "s/^  version: '\([^']*\)',$/\1/p" "$UMX_SRC/meson.build")
[ -n "$want" ] || it_fail "no project version in meson.build"
it_eq "$("$UDPMUXCTL" --version)" "udpmuxctl $want (control protocol 1)" "--version"
it_eq "$("$UDPMUXCTL" -V)" "udpmuxctl $want (control protocol 1)" "-V"
"$UDPMUXCTL" --help >"$T/help.txt" || it_fail "--help exit status"
it_contains "$(cat "$T/help.txt")" "--socket SOCKET"
it_contains "$(cat "$T/help.txt")" "--version"
rc=0
"$UDPMUXCTL" --no-such-option status >/dev/null 2>&1 || rc=$?
it_eq "$rc" 64 "unknown long option"

it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route echo]
match = any
action = echo
CONF
it_daemon "$T/udpmux.conf"
# long options reach the daemon too
"$UDPMUXCTL" --socket "$T/control.sock" --timeout 5 status >/dev/null || it_fail "--socket status"
# top into a pipe: two refreshes, plain text
timeout 10 "$UDPMUXCTL" --socket "$T/control.sock" top -n 2 </dev/null | cat >"$T/top.txt" ||
    it_fail "top -n 2 into a pipe"
if LC_ALL=C grep -q $'[\x1b\r]' "$T/top.txt"; then
    it_fail "escape codes or CRs in top's output to a pipe: $(od -c "$T/top.txt" | head -n 3)"
fi
it_eq "$(grep -c '^udpmuxctl top ' "$T/top.txt")" 2 "refresh blocks"
it_eq "$(grep -c '^echo ' "$T/top.txt")" 2 "route lines"
it_pass
