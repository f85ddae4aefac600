#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-steer.sh - the reuseport eBPF program on udpmuxd's own group (#14,
# "the kernel side of the port"), two workers:
#  1. a datagram from a peer with no flow whose first byte no route can take
#     is dropped in the kernel and counted (kernel.filtered), never reaching
#     a worker (classify.unmatched stays 0);
#  2. a peer that has a flow keeps reaching it whatever its datagrams start
#     with: a STUN request opens the flow, then 20 datagrams starting with
#     0x99 (a byte no route takes) are all echoed back;
#  3. a WireGuard peer (wireguard-go) that moves to new source ports keeps
#     its session, and every datagram from its new addresses reaches the
#     worker that owns its flow straight from the kernel (roaming hint, then
#     the peer map): roam.relayed stays 0 and kernel.steered_roaming counts.
# On a build without the program (or the old code) 1 fails (no kernel.*
# counters; the workers count every datagram as unmatched) and 3 relays
# through the mailbox as soon as a new port hashes to the other worker.
. "$(dirname "$0")/lib.sh"
it_init "$@"
. "$(dirname "$0")/ctl-lib.sh"

it_echo media 127.0.0.1:5001
it_wait_udp 5001
IT_WORKERS=2 IT_CONF_EXTRA=$'new-flow-rate = 0\nresponse-rate = 0' it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route wireguard]
match = wireguard
forward = 127.0.0.1:5820

[route media]
match = stun
forward = 127.0.0.1:5001
CONF
it_daemon "$T/udpmux.conf"
it_log_has udpmuxd "reuseport eBPF program loaded" "the program loaded"

st() { ctl -j stats >"$T/stats.json" || it_fail "udpmuxctl stats"; jget "$T/stats.json" "d['stats']['$1']"; }

# 1. no flow, first byte 0x99: dropped in the kernel, from 64 source ports
$IT_PY - "$IT_PORT" <<'PY'
import socket, sys
for i in range(64):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"\x99" + b"junk" * 10, ("127.0.0.1", int(sys.argv[1])))
    s.close()
PY
sleep 0.3
ctl_eq "$(st kernel.filtered)" 64 "kernel.filtered (no route takes 0x99)"
ctl_eq "$(st classify.unmatched)" 0 "classify.unmatched (nothing reached a worker)"

# 2. a flow opened by a STUN request carries any first byte
got=$($IT_PY - "$IT_PORT" <<'PY'
import os, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
dst = ("127.0.0.1", int(sys.argv[1]))
# binding request: type 1, length 0, magic cookie, transaction id
s.sendto(struct.pack("!HHI", 1, 0, 0x2112A442) + os.urandom(12), dst)
s.recvfrom(2048)
n = 0
for i in range(20):
    s.sendto(b"\x99media-%d" % i, dst)
    try:
        data, _ = s.recvfrom(2048)
        n += data.endswith(b"\x99media-%d" % i)
    except socket.timeout:
        pass
print(n)
PY
)
it_eq "$got" 20 "0x99 datagrams of a peer with a flow echoed"

# 3. WireGuard roaming across source ports, two workers
it_wg_pair 5820 5821 "127.0.0.1:$IT_PORT"
it_wg_wait_handshake wg0
[ "$(it_wg_handshake wg1)" != 0 ] || it_fail "no handshake"
sleep 1.2
hs_before=$(it_wg_handshake wg1)
for port in 5822 5823 5824 5825 5826 5827 5828 5829; do
    wg set wg1 listen-port $port
    read -r rx0 _ <<<"$(it_wg_transfer wg1)"
    # what comes back through the tunnel is wg0's ICMP port unreachable,
    # which the kernel rate-limits per destination (burst 6, then 1/s):
    # poke until something arrives instead of a fixed number of times
    rx1=$rx0
    for _ in $(seq 1 25); do
        it_wg_poke
        sleep 0.2
        read -r rx1 _ <<<"$(it_wg_transfer wg1)"
        [ "$rx1" -gt "$rx0" ] && break
    done
    [ "$rx1" -gt "$rx0" ] || it_fail "no data reached wg1 at port $port"
done
it_eq "$(it_wg_handshake wg1)" "$hs_before" "latest handshake (no new one needed)"
roamed=$(st flows.roamed)
[ "$roamed" -ge 8 ] || it_fail "flows.roamed: got $roamed, want >= 8 (one per move)"
it_log "flows.roamed $roamed, kernel.steered_roaming $(st kernel.steered_roaming), kernel.steered_peer $(st kernel.steered_peer), roam.relayed $(st roam.relayed)"
ctl_eq "$(st roam.relayed)" 0 "roam.relayed (datagrams through another worker's mailbox)"
[ "$(st kernel.steered_roaming)" -ge 1 ] || it_fail "kernel.steered_roaming: no roaming hint used"
ctl_eq "$(st kernel.refused)" 0 "kernel.refused"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
