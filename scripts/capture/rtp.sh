#!/bin/bash
# Regenerates tests/data/pcap/rtp.pcap and tests/data/pcap/rtcp.pcap:
# GStreamer 1.22 gst-launch-1.0 with rtpbin on both ends: a PCMU (G.711) audio
# sender (audiotestsrc, 100 ms packets: 2 s for rtp.pcap, 7 s for rtcp.pcap) to 127.0.0.1:5004 (RTP) and
# :5005 (RTCP), a receiver sending its RTCP back to the sender's :5007.
# rtp.pcap holds the RTP stream (first 2 s); rtcp.pcap the RTCP on both
# directions (SR + SDES compounds, RR + SDES compounds).
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

cd "$UMX_TMP"
rtp_caps="application/x-rtp,media=audio,clock-rate=8000,encoding-name=PCMU,payload=0"

run_stream()
{
    timeout 8 gst-launch-1.0 -q rtpbin name=rb \
        udpsrc address=127.0.0.1 port=5004 caps="$rtp_caps" ! rb.recv_rtp_sink_0 \
        rb. ! rtppcmudepay ! fakesink \
        udpsrc address=127.0.0.1 port=5005 ! rb.recv_rtcp_sink_0 \
        rb.send_rtcp_src_0 ! udpsink host=127.0.0.1 port=5007 bind-port=5005 sync=false async=false \
        >recv.log 2>&1 &
    local recv=$!
    umx_wait_udp 5004
    timeout 8 gst-launch-1.0 -q rtpbin name=rb \
        audiotestsrc num-buffers=$1 samplesperbuffer=800 is-live=true ! \
        audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay ! rb.send_rtp_sink_0 \
        rb.send_rtp_src_0 ! udpsink host=127.0.0.1 port=5004 bind-port=5006 \
        rb.send_rtcp_src_0 ! udpsink host=127.0.0.1 port=5005 bind-port=5007 sync=false async=false \
        udpsrc address=127.0.0.1 port=5007 ! rb.recv_rtcp_sink_0 >send.log 2>&1 || true
    sleep 1
    kill "$recv" 2>/dev/null || true
    wait "$recv" 2>/dev/null || true
}

umx_capture_start rtp.pcap "udp port 5004"
run_stream 20
umx_capture_stop

umx_capture_start rtcp.pcap "udp port 5005 or udp port 5007"
run_stream 70
umx_capture_stop
