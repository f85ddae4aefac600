# ctl-lib.sh - helpers of the observability tests (ctl-*.sh), sourced after
# lib.sh and it_init: the udpmuxctl wrapper, a traffic generator that counts
# what it sent and got back (so the daemon's numbers can be checked against
# it), and a JSON getter. Python helpers use /usr/bin/python3, stdlib only.

UDPMUXCTL=${UDPMUXCTL:-$UMX_SRC/build-ctl/ctl/udpmuxctl}
[ -x "$UDPMUXCTL" ] || it_fail "no udpmuxctl at $UDPMUXCTL (set UDPMUXCTL)"

# ctl ARGS...: udpmuxctl on this test's control socket, bounded in time.
ctl()
{
    timeout 20 "$UDPMUXCTL" -s "$T/control.sock" "$@"
}

# ctl_rc ARGS...: prints udpmuxctl's exit status (output to $T/ctl-last.*).
ctl_rc()
{
    local rc=0
    timeout 20 "$UDPMUXCTL" "$@" >"$T/ctl-last.out" 2>"$T/ctl-last.err" || rc=$?
    echo "$rc"
}

# jget FILE EXPR: evaluates a Python expression over the JSON in FILE (as d).
jget()
{
    $IT_PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# it_eq_num GOT WANT MSG: numeric equality with a readable failure.
ctl_eq()
{
    [ "$1" -eq "$2" ] 2>/dev/null || it_fail "$3: got '$1', want '$2'"
}

cat >"$T/traffic.py" <<'EOF'
#!/usr/bin/python3
"""Sends numbered datagrams "PREFIX NNNNN" from one source socket and counts
what comes back. Prints one JSON line: sent, sent_bytes, replies,
reply_bytes, tags (the echo backends' tags seen, before the first '|').
Bounded: --count datagrams, or --rate per second for --seconds."""
import argparse, json, select, socket, sys, time

p = argparse.ArgumentParser()
p.add_argument("--to", default="127.0.0.1:4000")
p.add_argument("--bind", default="127.0.0.1:0")
p.add_argument("--prefix", required=True)
p.add_argument("--count", type=int, default=1)
p.add_argument("--rate", type=float, default=0)
p.add_argument("--seconds", type=float, default=0)
p.add_argument("--no-reply", action="store_true")
p.add_argument("--timeout", type=float, default=2.0)
a = p.parse_args()

def addr(t):
    h, _, port = t.rpartition(":")
    return (h, int(port))

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(addr(a.bind))
dst = addr(a.to)
res = {"sent": 0, "sent_bytes": 0, "replies": 0, "reply_bytes": 0, "tags": []}
tags = set()

def take(wait):
    """Waits up to `wait` seconds for a reply, then takes all that are queued."""
    r, _, _ = select.select([s], [], [], wait)
    while r:
        data = s.recv(65535)
        res["replies"] += 1
        res["reply_bytes"] += len(data)
        tags.add(data.split(b"|", 1)[0].decode(errors="replace"))
        r, _, _ = select.select([s], [], [], 0)

if a.rate > 0:
    n = int(a.rate * a.seconds)
    t0 = time.monotonic()
    for i in range(n):
        due = t0 + i / a.rate
        while time.monotonic() < due:
            if not a.no_reply:
                take(0)
            time.sleep(min(0.002, max(0, due - time.monotonic())))
        msg = ("%s %05d" % (a.prefix, i)).encode()
        s.sendto(msg, dst)
        res["sent"] += 1
        res["sent_bytes"] += len(msg)
    if not a.no_reply:
        t_end = time.monotonic() + a.timeout
        while res["replies"] < res["sent"] and time.monotonic() < t_end:
            take(0.1)
else:
    for i in range(a.count):
        msg = ("%s %05d" % (a.prefix, i)).encode()
        s.sendto(msg, dst)
        res["sent"] += 1
        res["sent_bytes"] += len(msg)
        if not a.no_reply:
            take(a.timeout)
res["tags"] = sorted(tags)
print(json.dumps(res))
EOF

# send BIND PREFIX COUNT [traffic.py options]: prints the JSON summary.
send()
{
    local bind=$1 prefix=$2 count=$3
    shift 3
    timeout 60 $IT_PY "$T/traffic.py" --bind "$bind" --prefix "$prefix" --count "$count" "$@"
}
