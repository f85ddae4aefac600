#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-upgrade-kernel.sh - `udpmuxctl upgrade` with a `datapath = kernel`
# route hands the kernel datapath over: a client flow sending every 10 ms
# across the upgrade loses nothing, its conntrack entry is the same one
# (same id, its packet counter only grows and ends at what was sent), the
# table exists throughout, a new flow afterwards is queued and decided by
# the new process (its kernel.queued), a WireGuard client that moves to a
# new port after the upgrade keeps its session (the queue thread's roaming
# keys moved: kernel.roamed in the new process, no new handshake), the old
# pid is gone and a normal
# stop afterwards removes the table and the kernel flows. Before that, a
# successor that takes the queue socket and hangs up after FREEZE: the old
# process takes its queue back (a new flow is queued and decided by it) and
# the flow running across loses nothing. Both daemons run with
# UDPMUXD_SECCOMP=kill (a system call missing from the allow-list kills).
. "$(dirname "$0")/lib.sh"
it_init "$@"
[ -n "${UDPMUXCTL:-}" ] || it_fail "needs udpmuxctl (UDPMUXCTL)"
it_child_ns cli 10.1.0.1 10.1.0.2
it_child_ns be 10.2.0.1 10.2.0.2
sysctl -qw net.ipv4.ip_forward=1
it_bg echo 60 ip netns exec "$(it_ns be)" $IT_UDP echo --listen 10.2.0.2:5001 --tag be \
    --max-seconds 55
for i in $(seq 1 50); do
    ip netns exec "$(it_ns be)" ss -Hlun "sport = :5001" | grep -q . && break
    sleep 0.1
done
conf()
{
    it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 10.1.0.1:$IT_PORT
$1
[route k]
match = prefix 7365713d
forward = 10.2.0.2:5001
datapath = kernel

[route wireguard]
match = wireguard
forward = 10.2.0.2:5820
datapath = kernel
CONF
}
conf ""
export UDPMUXD_SECCOMP=kill
it_daemon "$T/udpmux.conf"
old=$UMXD_PID
S="$T/control.sock"

stat() { timeout 5 "$UDPMUXCTL" -s "$S" stats | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# a WireGuard tunnel (wireguard-go both sides) through the kernel route; the
# queue thread learns the session index from the client's proof datagrams
it_wg_pair_ns be cli 5820 5821 "10.1.0.1:$IT_PORT"
it_wg_wait_handshake wg0
[ "$(it_wg_handshake wg1)" != 0 ] || it_fail "no handshake through the kernel route"
for i in $(seq 1 30); do
    [ "$(stat kernel.keys_learnt)" -ge 1 ] && break
    it_wg_poke
    sleep 0.1
done
[ "$(stat kernel.keys_learnt)" -ge 1 ] || it_fail "no session index learnt"
hs_before=$(it_wg_handshake wg1)
ask() { timeout 10 ip netns exec "$(it_ns cli)" $IT_UDP ask --to "10.1.0.1:$IT_PORT" --tries 2 "$@"; }
# the conntrack entry of the client's port: "id packets" (original direction)
ct_of()
{
    conntrack -L -p udp --orig-port-src "$1" -o id 2>/dev/null | awk 'NR == 1 {
        for (i = 1; i <= NF; i++) {
            if ($i ~ /^packets=/ && !p) p = substr($i, 9)
            if ($i ~ /^id=/) id = substr($i, 4)
        }
        print id, p }'
}
jf()
{
    /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}
# a datagram every 10 ms from one client port for 4 s
stream()
{
    ip netns exec "$(it_ns cli)" $IT_UDP stream --to "10.1.0.1:$IT_PORT" --bind "10.1.0.2:$2" \
        --seconds 4 --rate 100 --drain 1 >"$T/$1.json" &
    spid=$!
    IT_PIDS+=("$spid")
}
# new flows, one datagram each on its own port, ~150 a second for 2 s:
# those that arrive while nobody reads the queue wait in it
burst()
{
    timeout 20 ip netns exec "$(it_ns cli)" $IT_UDP burst --to "10.1.0.1:$IT_PORT" --flows 300 \
        --rate 150 --prefix "seq=$1" --check --timeout 4 >"$T/$1-burst.out" 2>"$T/$1-burst.err" &
    bpid=$!
    IT_PIDS+=("$bpid")
}
# samples the flow's conntrack entry and the table while the stream runs
# (bounded)
watch_kernel()
{
    local port=$1 out=$2 i
    : >"$out"
    for i in $(seq 1 400); do
        kill -0 "$spid" 2>/dev/null || break
        printf '%s %s\n' "$(ct_of "$port" || true)" \
            "$(nft list table ip udpmuxd >/dev/null 2>&1 && echo table || echo NOTABLE)" >>"$out"
        sleep 0.02
    done
}
# every sample: the same entry id, packets never going down, the table there
check_samples()
{
    /usr/bin/python3 - "$1" <<'PY'
import sys
ids, last, n, bad = set(), 0, 0, []
for line in open(sys.argv[1]):
    f = line.split()
    if f[-1] != "table":
        bad.append("no table: " + line.strip())
        continue
    if len(f) < 3:
        continue
    n += 1
    ids.add(f[0])
    if int(f[1]) < last:
        bad.append("packets went down: %d -> %s" % (last, f[1]))
    last = int(f[1])
if len(ids) != 1:
    bad.append("conntrack entry ids: %s" % sorted(ids))
print("ok %d samples, last packets=%d" % (n, last) if not bad else "; ".join(bad[:5]))
PY
}

# 1. a successor that takes the queue and the flows, then hangs up after
# FREEZE: the old process takes its queue back, nothing lost
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
t, _, hello = frame()
assert t == 1, t
for i in range(struct.unpack_from("=I", hello, 16)[0]):
    assert frame()[0] == 2          # LISTEN
assert frame()[0] == 8              # STEER
t, nq, _ = frame()
assert t == 9 and nq == 1, (t, nq)  # KDP: the queue socket
import time
s.sendall(struct.pack("=III", 4, 4, 1))  # FREEZE, "installed its table": the old one re-applies its own
while frame()[0] != 6:              # FLOWS... END
    pass
time.sleep(0.3)                     # the queue waits meanwhile
s.close()                           # no DONE: the old one must take it back
EOF
stream quit 6300
sleep 1.2
burst quit
sleep 0.3
timeout 20 /usr/bin/python3 "$T/quitter.py" "$S" 2>"$T/quitter.err" ||
    it_fail "the stand-in successor failed: $(cat "$T/quitter.err")"
it_wait_log "$T/udpmuxd.log" "hand-over to pid [0-9]+ failed; resuming" 5
wait "$spid" || it_fail "stream client failed"
wait "$bpid" || it_fail "burst client failed"
q0=$(stat kernel.queued)
it_eq "$(ask --bind 10.1.0.2:6301 --data seq=back)" "be|from=10.2.0.1:6301|seq=back" \
    "a new flow after the failed hand-over"
it_eq "$(stat kernel.queued)" "$((q0 + 1))" "queued and decided by the old process again"
it_log "across the failed hand-over: $(cat "$T/quit.json")"
it_eq "$(cat "$T/quit-burst.out")" 300 "new flows answered across the failed hand-over"
it_eq "$(cat "$T/quit-burst.err")" "wrong answers: 0" "new flows' answers"
sent=$(jf "$T/quit.json" 'd["sent"]')
it_eq "$(jf "$T/quit.json" 'd["answered"]')" "$sent" "datagrams answered across the failed hand-over"
kill -0 "$old" || it_fail "the old udpmuxd died"

# 2. the upgrade, with the client flow running
stream up 6200
for i in $(seq 1 50); do
    [ -n "$(ct_of 6200)" ] && break
    sleep 0.05
done
read -r id0 p0 <<<"$(ct_of 6200)"
it_log "the flow's conntrack entry: id $id0, packets $p0 (tries $i)"
[ -n "$id0" ] || it_fail "no conntrack entry for the flow"
watch_kernel 6200 "$T/samples.txt" &
wpid=$!
IT_PIDS+=("$wpid")
sleep 1
conf $'\n[route echo]\nmatch = prefix 67656e323d\naction = echo\n'
q_old=$(stat kernel.queued)
burst up
sleep 0.5
rc=0
timeout 30 "$UDPMUXCTL" upgrade -c "$T/udpmux.conf" -d "$UDPMUXD" >"$T/upgrade.out" \
    2>>"$T/udpmuxd-new.log" || rc=$?
it_eq "$rc" 0 "udpmuxctl upgrade exit status ($(cat "$T/upgrade.out"))"
new=$(sed -n 's/^upgrade done: udpmuxd runs as pid \([0-9]*\)$/\1/p' "$T/upgrade.out")
[ -n "$new" ] || it_fail "udpmuxctl upgrade said: $(cat "$T/upgrade.out")"
IT_PIDS+=("$new")
for i in $(seq 1 50); do
    kill -0 "$old" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$old" 2>/dev/null && it_fail "the old udpmuxd (pid $old) is still running"
wait "$spid" || it_fail "stream client failed"
wait "$bpid" || it_fail "burst client failed"
wait "$wpid" || true
it_log "upgrade: $(grep -h 'took over\|nobody read' "$T/udpmuxd-new.log" | tail -n 2)"
it_log "stream across the upgrade: $(cat "$T/up.json")"
sent=$(jf "$T/up.json" 'd["sent"]')
[ "$sent" -ge 350 ] || it_fail "the client sent only $sent datagrams"
it_eq "$(jf "$T/up.json" 'd["answered"]')" "$sent" "datagrams answered across the upgrade"
it_eq "$(jf "$T/up.json" 'd["nlost"]')" 0 "datagrams lost across the upgrade"
it_eq "$(jf "$T/up.json" '",".join(d["froms"])')" "10.2.0.1:6200" "the backend saw one source"
samples=$(check_samples "$T/samples.txt")
it_log "conntrack/table samples: $samples"
it_contains "$samples" "ok " "the flow's entry and the table throughout the upgrade"
read -r id1 p1 <<<"$(ct_of 6200)"
it_eq "$id1" "$id0" "the flow's conntrack entry id"
it_eq "$p1" "$sent" "packets the one entry carried (never reset: all of them)"
[ "$p0" -ge 1 ] || it_fail "packets before the upgrade: $p0"
it_log "new process: $(timeout 5 "$UDPMUXCTL" -s "$S" stats | tr ' ' '\n' | grep '^kernel\.' | tr '\n' ' ')"
it_log "queues: $(tr '\n' ';' </proc/net/netfilter/nfnetlink_queue); burst: $(cat "$T/up-burst.err")"
# queue_total: datagrams waiting for a verdict (none may be left behind)
it_eq "$(awk '$1 == 4747 || $1 == 4748 {n += $3} END {print n + 0}' /proc/net/netfilter/nfnetlink_queue)" \
    0 "datagrams left in the queues without a verdict"
it_eq "$(cat "$T/up-burst.out")" 300 "new flows answered across the upgrade"
it_eq "$(cat "$T/up-burst.err")" "wrong answers: 0" "new flows' answers"
# the new process decided the burst's flows that came after the old one
# stopped reading (and nothing of the running flow: it was not queued again)
qn=$(stat kernel.queued)
it_log "new flows queued: $q_old by the old process before the burst, $qn by the new one"
[ "$qn" -ge 1 ] && [ "$qn" -lt 300 ] || it_fail "kernel.queued of the new process: $qn"
it_eq "$(ask --bind 10.1.0.2:6201 --data seq=new)" "be|from=10.2.0.1:6201|seq=new" \
    "a new flow after the upgrade"
it_eq "$(stat kernel.queued)" $((qn + 1)) "the new flow was queued and decided by the new process"
it_eq "$(stat kernel.to_kernel)" $((qn + 1)) "and given to the kernel"
it_eq "$(ask --bind 10.1.0.2:6202 --data gen2=1)" "gen2=1" "the route the new configuration added"
grep -q '^Seccomp:[[:space:]]*2' "/proc/$new/status" || it_fail "no seccomp filter in the new process"
for st in /proc/"$new"/task/*/status; do
    it_eq "$(awk '/^CapEff|^CapPrm/ {printf "%s ", $2}' "$st")" "0000000000001000 0000000000001000 " \
        "new process, thread $(basename "$(dirname "$st")"): only CAP_NET_ADMIN"
done
# the new configuration puts route echo first: the running kernel flow's
# mark still names route k (the slots came with the hand-over)
timeout 5 "$UDPMUXCTL" -s "$S" -j flows -r k -p 10.1.0.2:6200 >"$T/flows.json"
grep -q '"datapath":"kernel"' "$T/flows.json" && grep -q '6200' "$T/flows.json" ||
    it_fail "route k's kernel flow in the new process: $(cat "$T/flows.json")"
it_log_lacks udpmuxd "seccomp: refused"
it_log_lacks udpmuxd-new "seccomp: refused"

# the queue thread's flows moved: the WireGuard client moves to a new port
# and the new process finds its session by the index the old one learnt
it_log "moving wg1 from port 5821 to 5822"
it_wg_move 5822
it_eq "$(stat kernel.roamed)" 1 "the new process found the roamed peer's session (learnt before the upgrade)"
it_eq "$(it_wg_handshake wg1)" "$hs_before" "no new handshake"
it_contains "$(conntrack -L -p udp --orig-port-src 5822 2>/dev/null)" \
    "src=10.2.0.2 dst=10.2.0.1 sport=5820" "a kernel flow from the new port to the backend"

# 3. a normal stop removes the table and the kernel flows
kill -TERM "$new"
for i in $(seq 1 50); do
    kill -0 "$new" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$new" 2>/dev/null && it_fail "the new udpmuxd did not stop"
nft list table ip udpmuxd >/dev/null 2>&1 && it_fail "the table survived a normal stop"
[ -z "$(ct_of 6200)" ] || it_fail "the kernel flow survived a normal stop: $(ct_of 6200)"
it_pass
