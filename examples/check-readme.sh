#!/usr/bin/env bash
# check-readme.sh README.md examples/readme.c - the README's library example
# (the ```c block right after the "example: examples/readme.c" marker) must
# be the compiled file, byte for byte, so the README never shows code that
# does not build.
set -euo pipefail
readme=$1
src=$2
block=$(awk '
    /<!-- example: examples\/readme.c -->/ { armed = 1; next }
    armed && /^```c$/ { inside = 1; next }
    inside && /^```$/ { exit }
    inside { print }
' "$readme")
if [ -z "$block" ]; then
    echo "FAIL: no example block after <!-- example: examples/readme.c --> in $readme"
    exit 1
fi
if ! diff -u <(printf '%s\n' "$block") "$src"; then
    echo "FAIL: README example and $src differ (diff above)"
    exit 1
fi
echo "README example matches $src"
