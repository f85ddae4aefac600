#!/usr/bin/env bash
# it-replay.sh - #13: `udpmuxctl classify -c CONFIG` runs the daemon's own
# decision engine, so replaying a capture of real traffic gives the routes
# udpmuxd gave it. Mixed traffic (dig queries, STUN binding requests, a QUIC
# Initial, junk; then junk from the DNS and QUIC clients' own ports, which
# belongs to their flows; replies) goes through udpmuxd while tcpdump
# captures the shared port; per route, the datagrams udpmuxd counted equal
# the datagrams the replay gives that route, and every replayed reply
# belongs to the route of its request.
. "$(dirname "$0")/lib.sh"
it_init "$@"
command -v tcpdump >/dev/null || it_fail "tcpdump not installed (scripts/deps.sh)"
command -v dig >/dev/null || it_fail "dig not installed (scripts/deps.sh)"

it_echo dnsbe 127.0.0.1:5001
it_echo quicbe 127.0.0.1:5002
it_echo restbe 127.0.0.1:5003
it_wait_udp 5001
it_wait_udp 5002
it_wait_udp 5003
IT_CONF_EXTRA="new-flow-rate = 0" it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route dns]
match = dns
forward = 127.0.0.1:5001

[route stun]
match = stun
action = stun

[route quic]
match = quic
forward = 127.0.0.1:5002

[route rest]
match = any
forward = 127.0.0.1:5003
CONF
it_daemon "$T/udpmux.conf"
ip link set lo up
it_bg cap 60 tcpdump -i lo -n -U -s 0 -w "$T/cap.pcap" udp port "$IT_PORT"
sleep 1

quic=$(tr -d ' \n' <"$UMX_SRC/tests/data/samples/quic/rfc9001-a2-client-initial.hex")
/usr/bin/python3 - "$IT_PORT" "$quic" >"$T/traffic.log" 2>&1 <<'EOP' || it_fail "traffic: $(tail -n 3 "$T/traffic.log")"
import os, select, socket, struct, sys
port, quic = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
mux = ("127.0.0.1", port)
def sock():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s
def ask(s, data, wait=1.0):
    s.sendto(data, mux)
    r, _, _ = select.select([s], [], [], wait)
    return s.recv(65535) if r else None
def dnsq(qid, name):
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack("!HH", 1, 1)
def stun():
    return struct.pack("!HHI", 1, 0, 0x2112A442) + os.urandom(12)
n = 0
for i in range(6):
    d = sock()
    ask(d, dnsq(0x8000 + i * 777, "www.example.test"))   # IDs >= 0x8000
    ask(d, b"junk from the dns client %d" % i)            # its flow: dns
    s = sock()
    ask(s, stun())
    q = sock()
    ask(q, quic)
    ask(q, b"\x41" + os.urandom(40))                      # its flow: quic
    j = sock()
    ask(j, b"hello %d" % i)
    n += 6
print("sent", n)
EOP
for _ in 1 2 3; do dig +short +tries=1 +time=1 -p "$IT_PORT" @127.0.0.1 example.test >/dev/null 2>&1 || true; done
sleep 1
it_stop cap
timeout 5 "$UDPMUXCTL" -s "$T/control.sock" -j routes >"$T/routes.json"
timeout 30 "$UDPMUXCTL" classify -c "$T/udpmux.conf" "$T/cap.pcap" >"$T/replay.out" ||
    it_fail "classify failed"
/usr/bin/python3 - "$T/routes.json" "$T/replay.out" <<'EOP' || it_fail "the replay disagrees with the daemon"
import json, sys
routes = json.load(open(sys.argv[1]))
daemon = {}
for r in routes.get("routes", []):
    daemon[r["name"]] = int(r.get("rx.datagrams", r.get("rx_datagrams", 0)))
replay, replies, bad = {}, 0, 0
for line in open(sys.argv[2]):
    if line.startswith("#"):
        continue
    f = line.rstrip("\n").split("\t")
    if len(f) < 3:
        continue
    if f[2] == "reply":
        replies += 1
        continue
    replay[f[1]] = replay.get(f[1], 0) + 1
print("daemon:", daemon)
print("replay:", replay, "replies:", replies)
ok = True
for name in ("dns", "stun", "quic", "rest"):
    if daemon.get(name, 0) != replay.get(name, 0):
        print("route %s: daemon %d, replay %d" % (name, daemon.get(name, 0), replay.get(name, 0)))
        ok = False
if sum(replay.values()) < 30 or replies < 20:
    print("too little traffic in the capture")
    ok = False
sys.exit(0 if ok else 1)
EOP
cat "$T/replay.out" | head -n 60 >&2
it_pass
