#!/usr/bin/env bash
# checksrc.sh - source rules a formatter cannot check (house rules, R12):
#
#  1. banned functions in *.c / *.h: sprintf vsprintf strcpy strcat strncpy
#     gets atoi alloca. A use that is fine anyway carries a suppression on
#     the same line that names the reason:  atoi(s); /* checksrc: digits only */
#     Suppressions are counted and listed so they stay visible.
#  2. file names are printable ASCII.
#  3. no build output is committed: object files, archives, shared objects,
#     ELF executables, build directories, ninja/meson state.
#
# Checks the files git knows (tracked, plus new files that are not ignored).
# Exit 0 when clean, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
mapfile -d '' files < <(git ls-files -z -co --exclude-standard)

# 1. banned functions -------------------------------------------------------
banned='(^|[^A-Za-z0-9_])(sprintf|vsprintf|strcpy|strcat|strncpy|gets|atoi|alloca)[[:space:]]*\('
nsup=0
sources=()
for f in "${files[@]}"; do
    case "$f" in
    *.c | *.h) [ -f "$f" ] && sources+=("$f") ;;
    esac
done
if [ ${#sources[@]} -gt 0 ]; then
    while IFS= read -r hit; do
        if [[ "$hit" == *"/* checksrc: "* ]]; then
            nsup=$((nsup + 1))
            echo "checksrc: suppressed: $hit"
        else
            echo "checksrc: banned function: $hit"
            fail=1
        fi
    done < <(grep -nHE "$banned" "${sources[@]}" || true)
fi

# 2. ASCII file names --------------------------------------------------------
for f in "${files[@]}"; do
    if LC_ALL=C grep -q '[^ -~]' <<<"$f"; then
        printf 'checksrc: non-ASCII file name: %q\n' "$f"
        fail=1
    fi
done

# 3. no build output -----------------------------------------------------------
for f in "${files[@]}"; do
    case "$f" in
    build/* | build-*/* | */meson-private/* | */meson-logs/* | meson-private/* | meson-logs/* | \
        *.o | *.a | *.so | *.so.* | *.obj | *.gcda | *.gcno | build.ninja | */build.ninja | \
        .ninja_log | */.ninja_log | .ninja_deps | */.ninja_deps | compile_commands.json)
        echo "checksrc: build output committed: $f"
        fail=1
        continue
        ;;
    esac
    if [ -f "$f" ] && [ "$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')" = "7f454c46" ]; then
        echo "checksrc: ELF binary committed: $f"
        fail=1
    fi
done

echo "checksrc: ${#files[@]} files, ${#sources[@]} C sources, $nsup suppression(s)"
if [ $fail -ne 0 ]; then
    echo "checksrc: FAILED"
    exit 1
fi
echo "checksrc: OK"
