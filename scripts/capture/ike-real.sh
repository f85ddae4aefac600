#!/bin/bash
# Regenerates tests/data/pcap/ike-strongswan.pcap: two strongSwan 5.9.8
# charon daemons (IKEv2, PSK, aes256gcm16-prfsha256-x25519) on a veth pair
# 10.77.0.1 <-> 10.77.0.2: IKE_SA_INIT, IKE_AUTH (encrypted), and
# INFORMATIONAL exchanges (the CHILD_SA needs kernel XFRM/ESP support; where
# the kernel lacks it the IKE_SA is still established and the failed CHILD_SA
# is deleted with INFORMATIONAL messages, which is what the stored capture
# shows), then the delete when the initiator terminates.
# Needs strongswan-charon, strongswan-swanctl, libstrongswan-standard-plugins.
#
# Usage: ike-real.sh [v2|v1|natt]  (default v2)
#   v2    -> ike-strongswan.pcap       IKEv2 on port 500
#   v1    -> ike-strongswan-v1.pcap    IKEv1 Main Mode + Quick Mode (PSK)
#   natt  -> ike-strongswan-natt.pcap  IKEv2 with forced UDP encapsulation
#            (encap = yes): IKE_SA_INIT on 500, then port 4500 with the
#            4-byte non-ESP marker (RFC 3948) The responder runs in
# the script's netns, the initiator in a child netns; each charon gets a
# private mount namespace (its own /run for the vici socket and pid file,
# its own /etc/swanctl). Captured on the responder's veth end.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

mode=${1:-v2}
case $mode in
v2) out=ike-strongswan.pcap ike_version=2 encap=no ;;
v1) out=ike-strongswan-v1.pcap ike_version=1 encap=no ;;
natt) out=ike-strongswan-natt.pcap ike_version=2 encap=yes ;;
*) echo "usage: $0 [v2|v1|natt]" >&2; exit 64 ;;
esac
# IKEv1 has no AEAD for the IKE SA itself
proposals=aes256gcm16-prfsha256-x25519 esp=aes256gcm16
if [ "$mode" = v1 ]; then
    proposals=aes256-sha256-modp2048 esp=aes256-sha256
fi
cd "$UMX_TMP"
chmod 755 "$UMX_TMP"
peer_conf()
{
    # $1 role dir, $2 local addr, $3 remote addr, $4 local id, $5 remote id
    mkdir -p "$1/swanctl/conf.d"
    cat >"$1/swanctl/swanctl.conf" <<CONF
connections {
    umx {
        version = $ike_version
        encap = $encap
        keyingtries = 1
        local_addrs = $2
        remote_addrs = $3
        proposals = $proposals
        local { auth = psk
                id = $4 }
        remote { auth = psk
                 id = $5 }
        children {
            umx { local_ts = $2/32
                  remote_ts = $3/32
                  mode = transport
                  esp_proposals = $esp }
        }
    }
}
secrets {
    ike-umx { id-1 = $4
              id-2 = $5
              secret = "udpmux-test-psk-0123456789" }
}
CONF
    cat >"$1/run.sh" <<'RUN'
set -u
dir=$1 role=$2
mount --make-rprivate /
mount -t tmpfs tmpfs /run
mount --bind "$dir/swanctl" /etc/swanctl
# wait (bounded) for our veth end
for _ in $(seq 1 50); do ip link show ike0 >/dev/null 2>&1 && break; sleep 0.1; done
timeout 20 /usr/lib/ipsec/charon >"$dir/charon.log" 2>&1 &
for _ in $(seq 1 50); do [ -S /run/charon.vici ] && break; sleep 0.1; done
timeout 5 swanctl --load-all >"$dir/load.log" 2>&1
if [ "$role" = initiator ]; then
    sleep 1
    timeout 10 swanctl --initiate --child umx >"$dir/initiate.log" 2>&1 ||
        echo "swanctl --initiate: CHILD_SA not established (IKE_SA may still be)" >&2
    sleep 1
    timeout 10 swanctl --terminate --ike umx >"$dir/terminate.log" 2>&1 || true
    sleep 0.5
else
    sleep 6
fi
kill %1 2>/dev/null
wait
RUN
}
peer_conf r 10.77.0.1 10.77.0.2 responder.example.test initiator.example.test
peer_conf i 10.77.0.2 10.77.0.1 initiator.example.test responder.example.test

ip link add ike0 type veth peer name ike1
ip addr add 10.77.0.1/24 dev ike0
ip link set ike0 up
# shellcheck disable=SC2034 # UMX_PCAP_OUT/UMX_TCPDUMP_PID are read by umx_capture_stop
umx_capture_start_if()
{
    UMX_PCAP_OUT=$UMX_PCAP_DIR/$1
    timeout -k 2 60 tcpdump -i ike0 -n -s 0 -U --immediate-mode -Z root -w "$UMX_TMP/cap.pcap" \
        "$2" 2>"$UMX_TMP/tcpdump.log" &
    UMX_TCPDUMP_PID=$!
    for _ in $(seq 1 50); do
        grep -q "listening on" "$UMX_TMP/tcpdump.log" 2>/dev/null && break
        sleep 0.1
    done
}
umx_capture_start_if "$out" "udp port 500 or udp port 4500"
timeout 30 unshare -m bash r/run.sh "$UMX_TMP/r" responder &
resp=$!
unshare -n -m bash i/run.sh "$UMX_TMP/i" initiator & # bounded by its own timeouts
init=$!
sleep 0.3
ip link set ike1 netns "$init"
nsenter -t "$init" -n ip link set ike1 name ike0
nsenter -t "$init" -n ip addr add 10.77.0.2/24 dev ike0
nsenter -t "$init" -n ip link set ike0 up
nsenter -t "$init" -n ip link set lo up
wait "$init" || true
wait "$resp" || true
grep -h "established\|failed" i/initiate.log >&2 || cat i/charon.log >&2
umx_capture_stop
