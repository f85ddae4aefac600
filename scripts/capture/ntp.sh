#!/bin/bash
# Regenerates tests/data/pcap/ntp.pcap: chronyd serving NTP on 127.0.0.1:123
# (local reference clock, stratum 8) to: chronyd -Q (NTPv4 client, one
# burst), chronyd -Q with a symmetric MD5 key (48 + 20 byte MAC) and ntpdig
# (SNTP client, NTPsec).
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

cd "$UMX_TMP"
printf '1 MD5 HEX:3132333435363738393031323334353637383930\n' >keys
cat >server.conf <<CONF
port 123
bindaddress 127.0.0.1
allow 127.0.0.0/8
local stratum 8
keyfile $UMX_TMP/keys
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
pidfile $UMX_TMP/client.pid
CONF
    timeout 15 chronyd -Q -x -U -f client.conf >>client.log 2>&1 || echo "chronyd -Q failed" >&2
}
run_client "server 127.0.0.1 iburst maxsamples 2 minpoll -6 maxpoll -6"
run_client "server 127.0.0.1 iburst key 1 maxsamples 2 minpoll -6 maxpoll -6"
timeout 5 ntpdig -t 2 127.0.0.1 >ntpdig.log 2>&1 || echo "ntpdig failed" >&2
umx_capture_stop
