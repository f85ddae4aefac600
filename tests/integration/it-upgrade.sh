#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-upgrade.sh - `udpmuxctl upgrade` replaces the running udpmuxd (user =
# nobody, two workers) under load: a flow sending numbered datagrams at
# 400/s and a WireGuard tunnel (wireguard-go both sides) carrying a 50/s
# numbered stream lose nothing, answers still leave from the shared port,
# the backends see the same source (the flow's upstream socket moved) and
# the WireGuard server its same endpoint; the new process runs the new
# configuration (a route added). Then: a broken configuration is refused
# with file:line and the old process keeps serving; the daemon's own user
# (which may use the control socket) cannot trigger an upgrade; and a
# plain stop + start in the same setup loses datagrams, so the zero above
# is a measurement, not a given.
# IT_UPSTREAM=shared: the same with `upstream = shared` routes (the flows
# ride the worker's shared socket, which moves once per worker).
. "$(dirname "$0")/lib.sh"
it_init "$@"
[ -n "${UDPMUXCTL:-}" ] || it_fail "needs udpmuxctl (UDPMUXCTL)"
getent passwd nobody >/dev/null || it_fail "no user nobody"

RATE=400
it_echo a 127.0.0.1:5001
it_wait_udp 5001
SHARED=$([ "${IT_UPSTREAM:-}" = shared ] && printf 'upstream = shared\nsource = 127.66.0.0/16' || true)
# conf [EXTRA_ROUTES]: the two routes of both generations, after EXTRA_ROUTES
conf()
{
    IT_CONF_EXTRA="user = nobody
group = nogroup
metrics = 127.0.0.1:9533" it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT
${1:-}
[route stream]
match = prefix 7365713d
forward = 127.0.0.1:5001
idle-timeout = 30s
$SHARED

[route wireguard]
match = wireguard
forward = 127.0.0.1:5820
$SHARED
CONF
}
conf
# systemd's side, without systemd: a stand-in notification socket that
# records who sent what (MAINPID= must come from the old process, the
# watchdog pings then from the new one)
it_bg notify 60 /usr/bin/python3 "$IT_DIR/notify-listen.py" "$T/notify.sock" 55 pids
it_wait_log "$T/notify.log" bound 5
chmod 0666 "$T/notify.sock" # as systemd's: the daemon writes as nobody
export NOTIFY_SOCKET="$T/notify.sock"
WATCHDOG_USEC=400000 it_daemon "$T/udpmux.conf"
S="$T/control.sock"
old=$UMXD_PID

it_wg_pair 5820 5821 "127.0.0.1:$IT_PORT"
it_wg_wait_handshake wg0
[ "$(it_wg_handshake wg0)" != 0 ] || it_fail "no WireGuard handshake through udpmuxd"
ep0=$(wg show wg0 endpoints | awk '{print $2}')
hs0=$(it_wg_handshake wg1)
it_echo wgecho 10.9.0.1:7007 wg
it_wait_udp 7007

jf()
{
    /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}

# streams: what the client sees; started together, the upgrade at ~2 s
streams()
{
    $IT_UDP stream --to "127.0.0.1:$IT_PORT" --seconds 5 --rate "$RATE" --drain 1 \
        >"$T/$1-stream.json" &
    spid=$!
    IT_PIDS+=("$spid")
    ip netns exec "$(it_ns wgc)" $IT_UDP stream --to 10.9.0.1:7007 --seconds 5 --rate 50 \
        --drain 1 >"$T/$1-wg.json" &
    wpid=$!
    IT_PIDS+=("$wpid")
}

# 1. the upgrade, under load, to a configuration with one more route
streams up
sleep 2
conf "
[route gen2]
match = prefix 67656e323d
action = echo
"
t0=$(it_now_ms)
rc=0
timeout 30 "$UDPMUXCTL" upgrade -c "$T/udpmux.conf" -d "$UDPMUXD" >"$T/upgrade.out" \
    2>>"$T/udpmuxd-new.log" || rc=$?
t1=$(it_now_ms)
it_eq "$rc" 0 "udpmuxctl upgrade exit status ($(cat "$T/upgrade.out"))"
new=$(sed -n 's/^upgrade done: udpmuxd runs as pid \([0-9]*\)$/\1/p' "$T/upgrade.out")
[ -n "$new" ] || it_fail "udpmuxctl upgrade said: $(cat "$T/upgrade.out")"
IT_PIDS+=("$new")
[ "$new" != "$old" ] || it_fail "the pid did not change"
for i in $(seq 1 50); do
    kill -0 "$old" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$old" 2>/dev/null && it_fail "the old udpmuxd (pid $old) is still running"
it_eq "$(stat -c %U "/proc/$new")" nobody "the new daemon's user"
it_log_has notify "^pid=$old MAINPID=$new\$" "the old process hands systemd the main pid:"
it_wait_log "$T/notify.log" "^pid=$new WATCHDOG=1" 3
unset NOTIFY_SOCKET
wait "$spid" || it_fail "stream client failed"
wait "$wpid" || it_fail "WireGuard stream client failed"
it_log "upgrade took $((t1 - t0)) ms (udpmuxctl); stream: $(cat "$T/up-stream.json")"
it_log "WireGuard stream: $(cat "$T/up-wg.json")"
gap=$(sed -n 's/.*nobody read for \([0-9]*\) ms.*/\1/p' "$T/udpmuxd-new.log")
moved=$(sed -n 's/.*upgrade: took over from pid [0-9]*: \([0-9]*\) flows\{0,1\} adopted.*/\1/p' \
    "$T/udpmuxd-new.log")
it_log "switch-over: $moved flows adopted, nobody read for $gap ms"
sent=$(jf "$T/up-stream.json" 'd["sent"]')
[ "$sent" -ge $((RATE * 4)) ] || it_fail "the client sent only $sent datagrams"
it_eq "$(jf "$T/up-stream.json" 'd["nlost"]')" 0 "datagrams lost across the upgrade"
it_eq "$(jf "$T/up-stream.json" 'd["answered"]')" "$sent" "datagrams answered"
it_eq "$(jf "$T/up-stream.json" '",".join(d["srcs"])')" "127.0.0.1:$IT_PORT" \
    "addresses the answers came from"
it_eq "$(jf "$T/up-stream.json" 'len(d["froms"])')" 1 \
    "sources the backend saw (one: the same upstream socket before and after)"
if [ -n "$SHARED" ]; then
    it_contains "$(jf "$T/up-stream.json" '",".join(d["froms"])')" "127.66." \
        "the shared upstream's source address"
fi
it_eq "$(jf "$T/up-wg.json" 'd["nlost"]')" 0 "datagrams lost in the WireGuard tunnel"
wsent=$(jf "$T/up-wg.json" 'd["sent"]')
[ "$wsent" -ge 200 ] || it_fail "the tunnel client sent only $wsent datagrams"
it_eq "$(jf "$T/up-wg.json" 'd["answered"]')" "$wsent" "tunnel datagrams answered"
it_eq "$(wg show wg0 endpoints | awk '{print $2}')" "$ep0" "the WireGuard server's endpoint"
it_eq "$(it_wg_handshake wg1)" "$hs0" "WireGuard handshakes (none new: the session went on)"
# the new configuration is live, control works on the same socket path
it_eq "$(it_ask "127.0.0.1:$IT_PORT" "gen2=1")" "gen2=1" "the route the new configuration added"
st=$(timeout 10 "$UDPMUXCTL" -s "$S" status)
it_contains "$st" "$new" "status from the new process"
# the metrics listener moved too (the new process could not have bound it
# while the old one held it), and the flow kept its history
sleep 0.6
code=$(timeout 10 curl -sS -o "$T/metrics.txt" -w '%{http_code}' "http://127.0.0.1:9533/metrics")
it_eq "$code" 200 "metrics from the new process"
grep -q 'udpmux_route_rx_datagrams_total{route="gen2"} 1' "$T/metrics.txt" ||
    it_fail "metrics: $(grep route_rx_datagrams "$T/metrics.txt")"
# the kernel steering program's maps moved with the sockets: the new
# process's configuration filters in the kernel (kernel.filtered grows by
# the 16 datagrams no route takes, none reaches a worker) and reads the
# program's counters
kstat() { timeout 10 "$UDPMUXCTL" -s "$S" stats | sed -n "s/^$1=//p"; }
if grep -q "reuseport eBPF program loaded" "$T/udpmuxd.log"; then
    kf0=$(kstat kernel.filtered)
    um0=$(kstat classify.unmatched)
    $IT_PY - "$IT_PORT" <<'PY'
import socket, sys
for i in range(16):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"\x99junk", ("127.0.0.1", int(sys.argv[1])))
    s.close()
PY
    sleep 0.3
    it_eq "$(($(kstat kernel.filtered) - kf0))" 16 "kernel.filtered after the upgrade (the maps moved)"
    it_eq "$(kstat classify.unmatched)" "$um0" "classify.unmatched (junk reached no worker)"
fi
timeout 10 "$UDPMUXCTL" -s "$S" flows -r stream >"$T/flows.txt"
rx=$(awk '$1 == "stream" {print $7}' "$T/flows.txt" | head -n 1)
[ -n "$rx" ] && [ "$rx" -ge "$sent" ] ||
    it_fail "the adopted flow's counters (rx '$rx', $sent sent): $(cat "$T/flows.txt")"

# 2b. a successor that dies after the old one stopped reading: a client of
# our own (root) plays the new process's part up to FREEZE, receives every
# flow, then hangs up instead of DONE. The old process must resume with
# everything it had, and what arrived meanwhile waited in its sockets.
cat >"$T/quitter.py" <<'EOF'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b"upgrade-handoff\n")
def frame():
    hdr, fds, _, _ = socket.recv_fds(s, 8, 256, socket.MSG_WAITALL)
    t, n = struct.unpack("=II", hdr)
    body = b""
    while len(body) < n:
        body += s.recv(n - len(body), socket.MSG_WAITALL)
    for fd in fds:
        socket.close(fd)
    return t, len(fds), body
t, _, hello = frame()              # HELLO: magic, version, pid, workers, listeners...
assert t == 1, t
for i in range(struct.unpack_from("=I", hello, 16)[0]):
    assert frame()[0] == 2         # LISTEN, one per listener
s.sendall(struct.pack("=II", 4, 0))  # FREEZE
flows = 0
while True:
    t, nf, _ = frame()
    if t == 6:                      # END
        break
    flows += nf
print(flows)
s.close()                           # no DONE: the old one must resume
EOF
streams quit
sleep 2
got=$(timeout 20 /usr/bin/python3 "$T/quitter.py" "$S" 2>"$T/quitter.err") ||
    it_fail "the stand-in successor failed: $(cat "$T/quitter.err")"
it_log "the stand-in successor received $got flow sockets, then hung up"
wait "$spid" || it_fail "stream client failed"
wait "$wpid" || it_fail "WireGuard stream client failed"
it_wait_log "$T/udpmuxd-new.log" "hand-over to pid [0-9]+ failed; resuming" 5
kill -0 "$new" || it_fail "the old process died when its successor did"
it_log "after the failed hand-over: $(cat "$T/quit-stream.json")"
it_eq "$(jf "$T/quit-stream.json" 'd["nlost"]')" 0 "datagrams lost across the failed hand-over"
it_eq "$(jf "$T/quit-stream.json" 'len(d["froms"])')" 1 "sources the backend saw"
it_eq "$(jf "$T/quit-wg.json" 'd["nlost"]')" 0 "tunnel datagrams lost across the failed hand-over"

# 2. a broken configuration: refused with file:line, the old one serves on
cp "$T/udpmux.conf" "$T/good.conf"
printf '\n[route broken]\nmatch = prefix 00\nforward = 127.0.0.1:5001\nbogus-key = 1\n' \
    >>"$T/udpmux.conf"
bad=$(grep -n '^bogus-key' "$T/udpmux.conf" | cut -d: -f1)
rc=0
timeout 30 "$UDPMUXCTL" upgrade -c "$T/udpmux.conf" -d "$UDPMUXD" >"$T/bad.out" \
    2>"$T/bad.err" || rc=$?
[ "$rc" != 0 ] || it_fail "an upgrade to a broken configuration succeeded"
it_contains "$(cat "$T/bad.err")" "udpmux.conf:$bad:" "the refusal names file:line"
it_log "broken config refused: $(head -n 1 "$T/bad.err")"
kill -0 "$new" || it_fail "the running udpmuxd died"
it_contains "$(it_ask "127.0.0.1:$IT_PORT" "seq=broken")" "a|" "the running udpmuxd after the refusal"
cp "$T/good.conf" "$T/udpmux.conf"

# 3. the daemon's own user may use the control socket, but not take it over
cp "$UDPMUXCTL" "$T/udpmuxctl"
cp "$UDPMUXD" "$T/udpmuxd"
rc=0
timeout 10 setpriv --reuid=nobody --regid=nogroup --clear-groups "$T/udpmuxctl" -s "$S" status \
    >/dev/null 2>&1 || rc=$?
it_eq "$rc" 0 "the daemon's user reaches the control socket"
rc=0
timeout 30 setpriv --reuid=nobody --regid=nogroup --clear-groups "$T/udpmuxctl" upgrade \
    -c "$T/udpmux.conf" -d "$T/udpmuxd" >"$T/evil.out" 2>"$T/evil.err" || rc=$?
[ "$rc" != 0 ] || it_fail "uid nobody triggered an upgrade: $(cat "$T/evil.out")"
it_wait_log "$T/udpmuxd-new.log" "upgrade: refused for uid 65534" 5
# ... nor with a client of its own: asking for the hand-over yields no
# descriptor (no listener, no flow socket) to anyone but root
cat >"$T/evil.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(3)
s.connect(sys.argv[1])
s.sendall(b"upgrade-handoff\n")
n = 0
try:
    while True:
        msg, fds, _, _ = socket.recv_fds(s, 65536, 256)
        n += len(fds)
        if not msg:
            break
except (socket.timeout, ConnectionResetError):
    pass
print(n)
EOF
got=$(timeout 10 setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/python3 \
    "$T/evil.py" "$S")
it_eq "$got" 0 "descriptors handed to uid nobody"
kill -0 "$new" || it_fail "the running udpmuxd died"
st=$(timeout 10 "$UDPMUXCTL" -s "$S" status)
it_contains "$st" "$new" "the same process serves after the attempt"
it_contains "$(it_ask "127.0.0.1:$IT_PORT" "seq=evil")" "a|" "serving after the attempt"

# 4. the same load across a plain stop + start: datagrams are lost (and the
# backend sees a new source), which is what the upgrade avoids
streams restart
sleep 2
kill "$new"
for i in $(seq 1 50); do
    kill -0 "$new" 2>/dev/null || break
    sleep 0.05
done
it_daemon "$T/udpmux.conf" udpmuxd-restart
wait "$spid" || true
wait "$wpid" || true
it_log "plain restart: stream: $(cat "$T/restart-stream.json")"
it_log "plain restart: WireGuard stream: $(cat "$T/restart-wg.json")"
rl=$(jf "$T/restart-stream.json" 'd["nlost"]')
[ "$rl" -gt 0 ] || it_fail "a plain restart lost nothing: this test could not see a loss"
it_log "plain restart lost $rl datagrams, gap $(jf "$T/restart-stream.json" 'd["maxgap_ms"]') ms"
it_pass
