#!/usr/bin/env bash
# test-report.sh - bench/report.py on a result directory with every path:
# the report and the plot go to the result directory only (docs/ untouched
# unless --docs is given, which bench/run passes only with --update-docs),
# the reading guide is there, every path has its own label and its own
# colour in the plot, and both panels get their column headers.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(dirname "$HERE")
T=$(mktemp -d /tmp/umx-bench-report.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

paths="direct-gso mux1 mux2 muxs muxa muxp muxb muxk nginx socat"
{
    n=0
    for p in $paths; do
        n=$((n + 1))
        for size in 64 1200; do
            printf '%s\tmax_pps\t%s\t1\t1\t%s\n' "$p" "$size" $((100000 * n))
            printf '%s\tmax_gen_pps\t%s\t1\t1\t%s\n' "$p" "$size" 2000000
            [ "$p" = direct-gso ] || printf '%s\tnorm_pps\t%s\t1\t1\t%s\n' "$p" "$size" $((50000 * n))
        done
        printf '%s\trtt_p50\t64\t1\t1\t%s\n' "$p" $((20 + n))
        printf '%s\trtt_p99\t64\t1\t1\t%s\n' "$p" $((40 + n))
        printf '%s\tsys_cpu_ns\t64\t1\t1\t%s\n' "$p" $((1000 + 100 * n))
    done
    # the kernel datapath's own CPU share at max rate (1 %: meets < 2 %)
    printf 'muxk\tproxy_cpu_share\t64\t1\t1\t0.0100\n'
    printf 'mux1\tproxy_cpu_share\t64\t1\t1\t0.9900\n'
} >"$T/raw.tsv"
printf 'date=test\nnproc=2\ncpu=test\nkernel=test\ncommand=bench/run\nquick=1 reps=1\nbusy_poll_us=1000\n' \
    >"$T/meta.txt"
before=$(cd "$TOP" && sha256sum docs/benchmarks.md docs/bench-pps.png 2>/dev/null || true)
python3 "$HERE/report.py" "$T" >"$T/stdout.md" || fail "report.py failed"
after=$(cd "$TOP" && sha256sum docs/benchmarks.md docs/bench-pps.png 2>/dev/null || true)
[ "$before" = "$after" ] || fail "report.py without --docs changed docs/"
[ -s "$T/summary.md" ] || fail "no summary.md in the result directory"
grep -q "How to read these tables" "$T/summary.md" || fail "no reading guide"
# system-wide CPU beside the proxy's own, as an addition over direct-gso
grep -q "system CPU per packet" "$T/summary.md" || fail "no system-wide CPU column"
grep -q "| 1800 ns (+700) |" "$T/summary.md" || fail "muxk's system CPU not shown against direct-gso"
grep -q "Targets for the kernel datapath" "$T/summary.md" || fail "no kernel datapath targets"
grep -q "own CPU < 2 % of a CPU while the flow runs flat out | 1.00 % | \*\*meets\*\*" "$T/summary.md" ||
    fail "muxk CPU share target not judged"
grep -q '^DOCS=0$' "$HERE/run" || fail "bench/run writes docs/ by default"
grep -q '^REPS=3 SECS=3 SIZE=64 BUILD="" DOCS=0$' "$HERE/attach-run" ||
    fail "bench/attach-run writes docs/ by default"
# every path: its own label in the table, its own colour in the plot
python3 - "$HERE/report.py" "$T/summary.md" $paths <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("report", sys.argv[1])
rep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rep)
text = open(sys.argv[2]).read()
paths = sys.argv[3:]
labels = [rep.NAMES[p] for p in paths]
colours = [rep.COLOURS[p] for p in paths]
assert len(set(labels)) == len(paths), "two paths share a label"
assert len(set(colours)) == len(paths), "two paths share a colour"
for l in labels:
    assert "\n| %s" % l in text, "no table row for " + l
PY
[ "$(grep -c '^size ' "$T/pps.dat")" = 2 ] || fail "the plot data lacks a header in each panel's block"
if command -v gnuplot >/dev/null; then
    [ -s "$T/bench-pps.png" ] || fail "no plot"
fi
# the kernel datapath's pps target: the median of paired per-repetition
# ratios (a drift between repetitions cancels out), and no verdict when the
# direct path itself moved by more than a quarter (machine noise)
mkdir "$T/q"
cp "$T/meta.txt" "$T/q/"
printf 'direct-gso\tmax_pps\t64\t1\t%s\t%s\n' 1 1000000 2 1500000 3 1100000 >"$T/q/raw.tsv"
printf 'muxk\tmax_pps\t64\t1\t%s\t%s\n' 1 950000 2 1380000 3 1000000 >>"$T/q/raw.tsv"
python3 "$HERE/report.py" "$T/q" >/dev/null 2>&1 || fail "report.py failed (paired)"
grep -q '| 0.920× (paired; ratio of medians 0.909×)' "$T/q/summary.md" ||
    fail "muxk's pps target not judged on paired ratios: $(grep '0.9× direct' "$T/q/summary.md")"
grep -q 'unreliable\*\*: direct-gso varied 1.50× across repetitions' "$T/q/summary.md" ||
    fail "a run whose direct path varied 1.5x was judged"
sed -i 's/1500000$/1050000/; s/1380000$/960000/' "$T/q/raw.tsv"
python3 "$HERE/report.py" "$T/q" >/dev/null 2>&1 || fail "report.py failed (paired, quiet)"
grep -q '0.9× direct-gso max pps.*| \*\*meets\*\* |' "$T/q/summary.md" ||
    fail "a quiet run's paired ratio was not judged"
# with a direct run just before each muxk run, those pairs decide
printf 'muxk\tadj_direct_pps\t64\t1\t%s\t%s\n' 1 1000000 2 1000000 3 1000000 >>"$T/q/raw.tsv"
sed -i 's/1050000$/1700000/' "$T/q/raw.tsv"
python3 "$HERE/report.py" "$T/q" >/dev/null 2>&1 || fail "report.py failed (adjacent)"
grep -q '| 0.960× (each against a direct run just before it' "$T/q/summary.md" ||
    fail "muxk's pps target not judged on the adjacent direct runs"
grep -q '0.9× direct-gso max pps.*| \*\*meets\*\* |' "$T/q/summary.md" ||
    fail "adjacent pairs were not judged despite a noisy direct-gso"
# bench/run's own pairs (adj_pps beside adj_direct_pps) decide once there,
# and the verdict says how many and how far they spread; a median of pairs
# below 0.9x misses even where the repetitions' runs would meet
printf 'muxk\tadj_pps\t64\t1\t%s\t%s\n' 1.1 880000 1.2 950000 2.1 930000 2.2 850000 >>"$T/q/raw.tsv"
printf 'muxk\tadj_direct_pps\t64\t1\t%s\t%s\n' 4 1000000 >>"$T/q/raw.tsv"
echo adj_pairs=2 >>"$T/q/meta.txt"
python3 "$HERE/report.py" "$T/q" >/dev/null 2>&1 || fail "report.py failed (pairs)"
grep -q '| 0.905× (median of 4 pairs with a direct run, order alternating; middle half 0.880–0.930' "$T/q/summary.md" ||
    fail "muxk's pps target not judged on bench/run's pairs: $(grep '0.9× direct' "$T/q/summary.md")"
# each order's own median (the direct run first in a repetition's odd pairs)
grep -q 'direct run first 0.905×, second 0.900×' "$T/q/summary.md" ||
    fail "the pairs' order medians are missing: $(grep '0.9× direct' "$T/q/summary.md")"
sed -i 's/\t2.1\t930000$/\t2.1\t890000/' "$T/q/raw.tsv"
python3 "$HERE/report.py" "$T/q" >/dev/null 2>&1 || fail "report.py failed (pairs, low)"
grep -q '| 0.885× (median of 4 pairs.*| \*\*misses\*\* |' "$T/q/summary.md" ||
    fail "a median of pairs below 0.9x was not a miss: $(grep '0.9× direct' "$T/q/summary.md")"
echo PASS
