#!/bin/bash
# Regenerates tests/data/pcap/sip.pcap: SIPp (Debian sip-tester) built-in
# scenarios over UDP on 127.0.0.1: a uac calling a uas (INVITE, 100 Trying,
# 180 Ringing, 200 OK, ACK, BYE, 200 OK), then sipsak sending OPTIONS to a
# second uas that answers it with 200 OK.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

cd "$UMX_TMP"
cat >options-uas.xml <<'XML'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="answer one OPTIONS">
  <recv request="OPTIONS" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Allow: INVITE, ACK, BYE, CANCEL, OPTIONS
      Accept: application/sdp
      Content-Length: 0

    ]]>
  </send>
</scenario>
XML

umx_capture_start sip.pcap "udp port 5060 or udp port 5061 or udp port 5062"
timeout 15 sipp -sn uas -i 127.0.0.1 -p 5060 -m 1 -nostdin >uas.log 2>&1 &
uas=$!
sleep 0.5
timeout 10 sipp -sn uac -i 127.0.0.1 -p 5061 -m 1 -nostdin 127.0.0.1:5060 >uac.log 2>&1 ||
    echo "sipp uac failed" >&2
timeout 15 sipp -sf options-uas.xml -i 127.0.0.1 -p 5062 -m 1 -nostdin >opt.log 2>&1 &
opt_uas=$!
sleep 0.5
timeout 5 sipsak -s sip:umx@127.0.0.1:5062 -l 5063 -H 127.0.0.1 >sipsak.log 2>&1 ||
    echo "sipsak OPTIONS failed" >&2
wait "$uas" "$opt_uas" || true
umx_capture_stop
