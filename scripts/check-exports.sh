#!/usr/bin/env bash
# check-exports.sh LIB.so HEADER - the shared library exports exactly the
# functions the public header declares with UDPMUX_API: nothing that is not
# udpmux_*, no udpmux_* the header does not declare (an internal helper
# that escaped -fvisibility=hidden), and every declared function (the
# attach client included: lib/attach/ is always built).
set -euo pipefail
lib=$1
header=$2
mapfile -t syms < <(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRW]$/ {print $3}' | sort -u)
# Declarations: the name is the last identifier before the first '(' after
# UDPMUX_API, even when the declaration spans lines.
mapfile -t decls < <(grep -v '^#' "$header" | tr '\n' ' ' | grep -oE 'UDPMUX_API [^(;]*\(' |
    grep -oE '[A-Za-z_][A-Za-z0-9_]*[[:space:]]*\($' | tr -d '( ' | sort -u)
napi=$(grep -v '^#' "$header" | grep -o 'UDPMUX_API' | wc -l)
declare -A have=() declared=()
fail=0
if [ "${#decls[@]}" -eq 0 ] || [ "${#decls[@]}" -ne "$napi" ]; then
    echo "FAIL: $(basename "$header"): $napi UDPMUX_API declarations but ${#decls[@]} names read"
    fail=1
fi
for d in "${decls[@]}"; do
    declared[$d]=1
done
for s in "${syms[@]}"; do
    have[$s]=1
    case "$s" in
    _init | _fini | __bss_start | _edata | _end) ;;
    udpmux_*)
        if [ -z "${declared[$s]:-}" ]; then
            echo "FAIL: $lib exports $s, which $(basename "$header") does not declare"
            fail=1
        fi
        ;;
    *)
        echo "FAIL: $lib exports $s (not udpmux_*)"
        fail=1
        ;;
    esac
done
for fn in "${decls[@]}"; do
    if [ -z "${have[$fn]:-}" ]; then
        echo "FAIL: $fn is declared in $(basename "$header") but not exported"
        fail=1
    fi
done
echo "${#syms[@]} exported symbols, ${#decls[@]} declared"
[ $fail -eq 0 ] && echo "exports: OK"
exit $fail
