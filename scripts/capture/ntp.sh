#!/bin/bash
# Regenerates tests/data/pcap/ntp.pcap: chronyd serving NTP on 127.0.0.1:123
# (local reference clock, stratum 8) to: chronyd -Q (NTPv4 client, one
# burst), chronyd -Q with a symmetric MD5 key (48 + 20 byte MAC), ntpdig
# (SNTP client, NTPsec), and chronyd -Q with NTS (RFC 8915: NTS-KE over TCP
# port 4460, not captured, then NTPv4 with extension fields: unique
# identifier, cookies, cookie placeholders, authenticator). The NTS server
# name resolves through a private /etc/hosts in a private mount namespace.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
if [ -z "${UMX_IN_MNTNS:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "$0: needs root" >&2; exit 1; }
    UMX_IN_MNTNS=1 exec timeout -k 5 180 unshare -m -- bash "$0" "$@"
fi
mount --make-rprivate /
umx_enter_netns "$@"

cd "$UMX_TMP"
chmod 755 "$UMX_TMP" # chronyd drops root to _chrony
printf '127.0.0.1 localhost ntp.example.test\n' >hosts
mount --bind hosts /etc/hosts
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=ntp.example.test -addext subjectAltName=DNS:ntp.example.test \
    -keyout nts.key -out nts.crt 2>/dev/null
chmod 644 nts.key
printf '1 MD5 HEX:3132333435363738393031323334353637383930\n' >keys
cat >server.conf <<CONF
port 123
bindaddress 127.0.0.1
allow 127.0.0.0/8
local stratum 8
keyfile $UMX_TMP/keys
ntsserverkey $UMX_TMP/nts.key
ntsservercert $UMX_TMP/nts.crt
ntsport 4460
cmdport 0
pidfile $UMX_TMP/server.pid
driftfile $UMX_TMP/drift
CONF

umx_capture_start ntp.pcap "udp port 123"
timeout 30 chronyd -d -x -U -f server.conf >server.log 2>&1 &
umx_wait_udp 123
sleep 0.5
run_client()
{
    cat >client.conf <<CONF
$1
port 0
cmdport 0
keyfile $UMX_TMP/keys
ntstrustedcerts $UMX_TMP/nts.crt
pidfile $UMX_TMP/client.pid
CONF
    timeout 15 chronyd -Q -x -U -f client.conf >>client.log 2>&1 || echo "chronyd -Q failed" >&2
}
run_client "server 127.0.0.1 iburst maxsamples 2 minpoll -6 maxpoll -6"
run_client "server 127.0.0.1 iburst key 1 maxsamples 2 minpoll -6 maxpoll -6"
timeout 5 ntpdig -t 2 127.0.0.1 >ntpdig.log 2>&1 || echo "ntpdig failed" >&2
run_client "server ntp.example.test iburst nts ntsport 4460 maxsamples 2 minpoll -6 maxpoll -6"
umx_capture_stop
