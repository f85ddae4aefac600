#!/bin/bash
# Usage: openvpn.sh [plain] [tlsauth] [tlscrypt] [tlscryptv2]   (default: all)
# Regenerates tests/data/pcap/openvpn-{plain,tlsauth,tlscrypt,tlscryptv2}.pcap: two
# OpenVPN 2.6 processes (peer-to-peer TLS mode, --dev null) on 127.0.0.1:1194:
# TLS handshake over the control channel, then a few seconds of data-channel
# pings. Variants: no control-channel protection, --tls-auth (HMAC-SHA1 and,
# on a second port, --auth SHA512), --tls-crypt (keys from
# `openvpn --genkey secret`) and --tls-crypt-v2 (client key wrapped by the
# server key: HARD_RESET_CLIENT_V3, opcode 10). The PKI is a throw-away EC CA made with openssl.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"
variants=("$@")

cd "$UMX_TMP"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=umx-ca -keyout ca.key -out ca.crt 2>/dev/null
for n in server client; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=$n \
        -keyout $n.key -out $n.csr 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyAgreement\nextendedKeyUsage=%s\n' \
        "$([ $n = server ] && echo serverAuth || echo clientAuth)" >$n.ext
    openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile $n.ext -out $n.crt 2>/dev/null
done
openvpn --genkey secret static.key

# run_pair PORT SECONDS EXTRA_SERVER_ARGS -- EXTRA_CLIENT_ARGS
run_pair()
{
    local port=$1 secs=$2 s_args=() c_args=()
    shift 2
    while [ $# -gt 0 ] && [ "$1" != -- ]; do s_args+=("$1"); shift; done
    shift
    c_args=("$@")
    timeout "$secs" openvpn --dev null --proto udp --verb 1 --ping 1 --ca ca.crt --dh none \
        --cert server.crt --key server.key --tls-server --local 127.0.0.1 --lport "$port" \
        "${s_args[@]}" \
        >"srv-$port.log" 2>&1 &
    local spid=$!
    sleep 0.3
    timeout "$secs" openvpn --dev null --proto udp --verb 1 --ping 1 --ca ca.crt \
        --cert client.crt --key client.key --tls-client --remote-cert-tls server \
        --remote 127.0.0.1 "$port" --nobind "${c_args[@]}" >"cli-$port.log" 2>&1 || true
    wait "$spid" || true
    grep -q "Initialization Sequence Completed" "cli-$port.log" ||
        { echo "openvpn on port $port did not connect" >&2; tail -n 5 "cli-$port.log" >&2; }
}

want()
{
    [ ${#variants[@]} = 0 ] && return 0
    local v
    for v in "${variants[@]}"; do [ "$v" = "$1" ] && return 0; done
    return 1
}

if want plain; then
    umx_capture_start openvpn-plain.pcap "udp port 1194"
    run_pair 1194 4 --dev null --
    umx_capture_stop
fi

if want tlsauth; then
    umx_capture_start openvpn-tlsauth.pcap "udp port 1195 or udp port 1196"
    run_pair 1195 4 --tls-auth static.key 0 -- --tls-auth static.key 1
    run_pair 1196 4 --tls-auth static.key 0 --auth SHA512 -- --tls-auth static.key 1 --auth SHA512
    umx_capture_stop
fi

if want tlscrypt; then
    umx_capture_start openvpn-tlscrypt.pcap "udp port 1197"
    run_pair 1197 4 --tls-crypt static.key -- --tls-crypt static.key
    umx_capture_stop
fi

if want tlscryptv2; then
    openvpn --genkey tls-crypt-v2-server v2server.key
    openvpn --tls-crypt-v2 v2server.key --genkey tls-crypt-v2-client v2client.key
    umx_capture_start openvpn-tlscryptv2.pcap "udp port 1198"
    run_pair 1198 4 --tls-crypt-v2 v2server.key -- --tls-crypt-v2 v2client.key
    umx_capture_stop
fi
