#!/bin/bash
# Regenerates tests/data/pcap/zrtp-linphone.pcap: a real ZRTP key agreement
# between two linphonec (linphone-cli 5.1, liblinphone/mediastreamer with
# bzrtp 5.1) instances on 127.0.0.1: a calls b (SIP on 5070/5071, not
# captured), b auto-answers, media encryption "zrtp" mandatory. Captured: the
# media ports 7078-7081: ICE connectivity checks (STUN Binding with the
# classic-looking 20-byte requests and responses), ZRTP Hello, HelloACK,
# Commit, DHPart1/2, Confirm1/2, Conf2ACK, then SRTP (a played WAV file) and
# SRTCP on the separate RTCP ports.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

cd "$UMX_TMP"
for who in a b; do
    mkdir -p "$who/.local/share/linphone" "$who/.config"
    cat >"$who/rc" <<CONF
[sip]
media_encryption=zrtp
media_encryption_mandatory=1
[rtp]
audio_rtp_port=$([ $who = a ] && echo 7078 || echo 7080)
[sound]
echocancellation=0
[video]
enabled=0
CONF
done
# 1.5 s of a 440 Hz tone, 8 kHz mono 16-bit, to play into the call
timeout 10 /usr/bin/python3 - <<'PY'
import math, struct, wave
w = wave.open("tone.wav", "wb")
w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000)))
                       for i in range(12000)))
w.close()
PY

umx_capture_start zrtp-linphone.pcap "udp portrange 7078-7081"
(echo "soundcard use files"; echo "ports sip 5071"; sleep 9; echo quit) |
    HOME=$UMX_TMP/b timeout 12 linphonec -c "$UMX_TMP/b/rc" -a -d 0 >b.log 2>&1 &
b=$!
sleep 1.5
(echo "soundcard use files"; echo "ports sip 5070"; sleep 0.5
    echo "call sip:b@127.0.0.1:5071"; sleep 3; echo "play $UMX_TMP/tone.wav"; sleep 2
    echo terminate; sleep 1; echo quit) |
    HOME=$UMX_TMP/a timeout 12 linphonec -c "$UMX_TMP/a/rc" -d 0 >a.log 2>&1 || true
wait "$b" || true
umx_capture_stop
grep -q "Conf2ACK\|established\|Connected" a.log b.log || grep -m3 -i "call" a.log >&2 || true
