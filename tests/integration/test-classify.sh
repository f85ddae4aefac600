#!/bin/bash
# test-classify.sh - `udpmuxctl classify` end to end.
#
#   1. mixed.pcap (every capture of tests/data/pcap plus edge-cases.pcap:
#      IPv6, IPv4/IPv6 fragments, ICMP, snap-length truncation) must print
#      exactly tests/data/pcap/mixed.expected.
#   2. The same datagrams in the other link types the decoder handles (Linux
#      cooked SLL and SLL2, raw IP, BSD loopback NULL in both byte orders,
#      OpenBSD LOOP), converted on the fly from the Ethernet captures, must
#      classify line for line the same.
#   3. -c CONFIG: route names instead of probe names, first match wins.
#   4. Exit codes: 64 usage, 66 missing input, 65 not a capture / unknown
#      link type / a file cut mid-record.
#
# Environment: UDPMUXCTL (default: build*/ctl/udpmuxctl under the source
# tree), UMX_SRC (default: two levels up from this script). Needs python3.
# Does not need root or the network.
set -u
src=${UMX_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
ctl=${UDPMUXCTL:-}
if [ -z "$ctl" ]; then
    for c in "$src"/build/ctl/udpmuxctl "$src"/build-*/ctl/udpmuxctl; do
        [ -x "$c" ] && { ctl=$c; break; }
    done
fi
if [ -z "$ctl" ] || [ ! -x "$ctl" ]; then
    echo "test-classify: udpmuxctl not found (set UDPMUXCTL)" >&2
    exit 77
fi
data=$src/tests/data/pcap
tmp=$(mktemp -d /tmp/test-classify.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
ko() { fail=$((fail + 1)); echo "not ok - $*"; }

# 1. exact output on the mixed capture
if timeout 60 "$ctl" classify --per-datagram "$data/mixed.pcap" >"$tmp/mixed.out" 2>"$tmp/mixed.err"; then
    if diff -u "$data/mixed.expected" "$tmp/mixed.out" >"$tmp/mixed.diff"; then
        ok "mixed.pcap matches mixed.expected"
    else
        ko "mixed.pcap differs from mixed.expected:"
        head -n 60 "$tmp/mixed.diff"
    fi
else
    ko "classify mixed.pcap exited $? ($(cat "$tmp/mixed.err"))"
fi

# 2. other link types: rewrite the link header of each Ethernet frame
timeout 60 /usr/bin/python3 - "$data" "$tmp" <<'PY'
import struct, sys
data, tmp = sys.argv[1], sys.argv[2]
def frames(path):
    b = open(path, "rb").read()
    magic = b[:4]
    e = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    snap, lt = struct.unpack(e + "II", b[16:24])
    assert lt == 1, path
    off = 24
    while off + 16 <= len(b):
        ts, tu, cl, ln = struct.unpack(e + "IIII", b[off:off + 16])
        yield ts, tu, b[off + 16:off + 16 + cl], ln
        off += 16 + cl
def write(path, lt, conv, src_files):
    with open(path, "wb") as o:
        o.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 262144, lt))
        for f in src_files:
            for ts, tu, pkt, ln in frames(f):
                et = struct.unpack(">H", pkt[12:14])[0]
                ip = pkt[14:]
                hdr = conv(et)
                o.write(struct.pack("<IIII", ts, tu, len(hdr) + len(ip), len(hdr) + ln - 14))
                o.write(hdr + ip)
srcs = [data + "/" + n for n in ("dns.pcap", "quic.pcap", "edge-cases.pcap", "ntp.pcap")]
v6 = lambda et: et == 0x86dd
write(tmp + "/sll.pcap", 113, lambda et: struct.pack(">HHH8sH", 0, 772, 6, b"\0" * 8, et), srcs)
write(tmp + "/sll2.pcap", 276, lambda et: struct.pack(">HHIHBB8s", et, 0, 1, 772, 0, 6, b"\0" * 8), srcs)
write(tmp + "/raw.pcap", 101, lambda et: b"", srcs)
write(tmp + "/null-le.pcap", 0, lambda et: struct.pack("<I", 30 if v6(et) else 2), srcs)
write(tmp + "/null-be.pcap", 0, lambda et: struct.pack(">I", 24 if v6(et) else 2), srcs)
write(tmp + "/loop.pcap", 108, lambda et: struct.pack(">I", 24 if v6(et) else 2), srcs)
write(tmp + "/eth.pcap", 1, lambda et: b"\0" * 12 + struct.pack(">H", et), srcs)
PY
if [ -s "$tmp/eth.pcap" ]; then
    timeout 60 "$ctl" classify --per-datagram "$tmp/eth.pcap" >"$tmp/eth.out"
    if grep -q $'\tdns$' "$tmp/eth.out" && grep -q '^# fragments [1-9]' "$tmp/eth.out"; then
        ok "reference (Ethernet) classification of the converted set"
    else
        ko "reference classification looks wrong"
    fi
    for lt in sll sll2 raw null-le null-be loop; do
        if timeout 60 "$ctl" classify --per-datagram "$tmp/$lt.pcap" >"$tmp/$lt.out" 2>"$tmp/$lt.err" &&
            cmp -s "$tmp/eth.out" "$tmp/$lt.out"; then
            ok "link type $lt classifies like Ethernet"
        else
            ko "link type $lt: $(cat "$tmp/$lt.err")"
            diff "$tmp/eth.out" "$tmp/$lt.out" | head -n 10
        fi
    done
else
    ko "could not convert captures to other link types"
fi

# 3. -c CONFIG: route names, first match wins, '-' when none
cat >"$tmp/classify.conf" <<'CONF'
[listen]
address = 127.0.0.1:5300

[route resolver]
match = dns
forward = 127.0.0.1:5301

[route media]
match = stun or turn-channel
forward = 127.0.0.1:3479
CONF
# 'or' is not rule syntax: the loader must refuse this config (exit 64)
timeout 10 "$ctl" classify -c "$tmp/classify.conf" "$data/dns.pcap" >/dev/null 2>&1
rc=$?
[ $rc = 64 ] && ok "-c with an invalid rule exits 64" || ko "-c invalid rule: exit $rc, want 64"
cat >"$tmp/classify.conf" <<'CONF'
[listen]
address = 127.0.0.1:5300

[route queries]
match = dns and bytes 2 00 mask 80
forward = 127.0.0.1:5301

[route anydns]
match = dns
forward = 127.0.0.1:5302

[route stun]
match = stun
forward = 127.0.0.1:3479
CONF
if timeout 10 "$ctl" classify --per-datagram -c "$tmp/classify.conf" "$data/dns.pcap" >"$tmp/c.out" 2>"$tmp/c.err"; then
    # dns.pcap alternates query (odd frames), response (even frames)
    n=$(grep -vc '^#' "$tmp/c.out")
    want=$(for i in $(seq 1 "$n"); do
        [ $((i % 2)) = 1 ] && printf '%s\tqueries\n' "$i" || printf '%s\tanydns\n' "$i"
    done)
    if [ "$n" -ge 2 ] && [ "$(grep -v '^#' "$tmp/c.out")" = "$want" ] &&
        grep -qx "# queries $(((n + 1) / 2))" "$tmp/c.out" &&
        grep -qx "# anydns $((n / 2))" "$tmp/c.out"; then
        ok "-c routes: queries/anydns, first match wins"
    else
        ko "-c routes output:"
        cat "$tmp/c.out"
    fi
else
    ko "-c valid config failed: $(cat "$tmp/c.err")"
fi
# the engine (default): a response belongs to the flow of its query, so
# every frame is route `queries`, the responses marked `reply`
if timeout 10 "$ctl" classify -c "$tmp/classify.conf" "$data/dns.pcap" >"$tmp/e.out" 2>"$tmp/e.err" &&
    [ "$(grep -v '^#' "$tmp/e.out" | awk -F'\t' 'NR % 2 == 0 && ($2 != "queries" || $3 != "reply")' | wc -l)" = 0 ] &&
    [ "$(grep -v '^#' "$tmp/e.out" | awk -F'\t' 'NR % 2 == 1 && $2 != "queries"' | wc -l)" = 0 ] &&
    grep -qx "# queries $n" "$tmp/e.out"; then
    ok "engine: responses belong to their query's flow"
else
    ko "engine mode output:"
    head -20 "$tmp/e.out" "$tmp/e.err"
fi
# --hex: one datagram (a DNS query for example.com)
if [ "$(timeout 10 "$ctl" classify -c "$tmp/classify.conf" --hex \
    '1234 0100 0001 0000 0000 0000 07 6578616d706c65 03 636f6d 00 0001 0001' | head -1)" = \
    "$(printf '1\tqueries\tprobe')" ]; then
    ok "--hex classifies one datagram"
else
    ko "--hex"
fi
# standard input
if timeout 10 "$ctl" classify --per-datagram - <"$data/dns.pcap" | grep -q $'\tdns$'; then
    ok "capture from standard input"
else
    ko "capture from standard input"
fi
if timeout 10 "$ctl" classify --per-datagram -c "$tmp/classify.conf" "$data/ntp.pcap" >"$tmp/c2.out" 2>&1 &&
    [ "$(grep -c $'\t-$' "$tmp/c2.out")" = "$(grep -vc '^#' "$tmp/c2.out")" ]; then
    ok "-c: datagrams no route matches print '-'"
else
    ko "-c unmatched: $(head -3 "$tmp/c2.out")"
fi
timeout 10 "$ctl" classify -c "$tmp/nonexistent.conf" "$data/dns.pcap" >/dev/null 2>&1
rc=$?
[ $rc = 66 ] && ok "-c missing config exits 66" || ko "-c missing config: exit $rc, want 66"

# 4. exit codes
timeout 10 "$ctl" classify >/dev/null 2>&1
rc=$?
[ $rc = 64 ] && ok "no file: exit 64" || ko "no file: exit $rc, want 64"
timeout 10 "$ctl" classify -x "$data/dns.pcap" >/dev/null 2>&1
rc=$?
[ $rc = 64 ] && ok "unknown option: exit 64" || ko "unknown option: exit $rc, want 64"
timeout 10 "$ctl" classify "$data/dns.pcap" extra >/dev/null 2>&1
rc=$?
[ $rc = 64 ] && ok "two files: exit 64" || ko "two files: exit $rc, want 64"
timeout 10 "$ctl" classify "$tmp/missing.pcap" >/dev/null 2>&1
rc=$?
[ $rc = 66 ] && ok "missing file: exit 66" || ko "missing file: exit $rc, want 66"
timeout 10 "$ctl" classify "$data/MANIFEST" >/dev/null 2>&1
rc=$?
[ $rc = 65 ] && ok "not a capture: exit 65" || ko "not a capture: exit $rc, want 65"
head -c $(($(stat -c %s "$data/dns.pcap") - 20)) "$data/dns.pcap" >"$tmp/cut.pcap"
timeout 10 "$ctl" classify "$tmp/cut.pcap" >"$tmp/cut.out" 2>/dev/null
rc=$?
[ $rc = 65 ] && ok "file cut mid-record: exit 65" || ko "file cut mid-record: exit $rc, want 65"
/usr/bin/python3 -c '
import struct, sys
sys.stdout.buffer.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 147))' >"$tmp/user0.pcap"
timeout 10 "$ctl" classify "$tmp/user0.pcap" >/dev/null 2>&1
rc=$?
[ $rc = 65 ] && ok "unsupported link type: exit 65" || ko "unsupported link type: exit $rc, want 65"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
