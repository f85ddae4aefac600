#!/bin/bash
# Regenerates tests/data/pcap/mixed.pcap and tests/data/pcap/mixed.expected.
#
# mixed.pcap concatenates (mergecap -a, in MANIFEST order) every capture
# listed in tests/data/pcap/MANIFEST, then edge-cases.pcap (IPv6, fragments,
# ICMP, snap-length truncation). mixed.expected is the output of
# `udpmuxctl classify mixed.pcap`, which tests/integration/test-classify.sh
# compares byte for byte. Before writing it, every frame the MANIFEST pins
# to a probe (SEL=probe, not ~probe or !probe) is checked against that
# output, so the expected file cannot silently drift from the manifest.
#
# Usage: scripts/capture/mixed.sh [UDPMUXCTL]   (default build-pcap/ctl/udpmuxctl)
# Needs mergecap (tshark/wireshark-common) and python3; not root.
# UMX_PCAP_DIR overrides the directory (default tests/data/pcap).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
ctl=${1:-$repo/build-pcap/ctl/udpmuxctl}
dir=${UMX_PCAP_DIR:-$repo/tests/data/pcap}
files=$(grep -vE '^\s*(#|$)' "$dir/MANIFEST" | sed 's/ | .*//')
list=()
for f in $files; do list+=("$dir/$f"); done
list+=("$dir/edge-cases.pcap")
timeout 60 mergecap -a -F pcap -w "$dir/mixed.pcap" "${list[@]}"
timeout 60 "$ctl" classify "$dir/mixed.pcap" >"$dir/mixed.expected.new"
# cross-check against the MANIFEST's strict expectations
timeout 60 /usr/bin/python3 - "$dir" <<'PY'
import subprocess, sys
d = sys.argv[1]
out = {}
for line in open(d + "/mixed.expected.new"):
    if line.startswith("#"):
        continue
    fr, probe = line.rstrip("\n").split("\t")
    out[int(fr)] = probe
base, bad = 0, 0
for line in open(d + "/MANIFEST"):
    s = line.strip()
    if not s or s.startswith("#"):
        continue
    fields = s.split(" | ")
    name, expect = fields[0], fields[2].split()
    n = int(subprocess.run(["capinfos", "-c", "-M", "-T", d + "/" + name], check=True,
                           capture_output=True, text=True).stdout.split("\n")[1].split("\t")[1])
    want = {}
    for tok in expect:
        sel, what = tok.split("=", 1)
        frames = range(1, n + 1) if sel == "all" else []
        if sel != "all":
            frames = []
            for part in sel.split(","):
                lo, _, hi = part.partition("-")
                frames += range(int(lo), int(hi or lo) + 1)
        for f in frames:
            want[f] = what
    for f, what in want.items():
        if what[0] in "~!":
            continue
        got = out.get(base + f)
        if got != what:
            print("%s frame %d (mixed %d): MANIFEST says %s, classify says %s"
                  % (name, f, base + f, what, got), file=sys.stderr)
            bad += 1
    base += n
sys.exit(1 if bad else 0)
PY
mv "$dir/mixed.expected.new" "$dir/mixed.expected"
echo "mixed.pcap: $(capinfos -c -M "$dir/mixed.pcap" | grep "Number of packets" | tr -s " \t" " ")"
