#!/usr/bin/python3
"""Helper for webrtc.sh: two aiortc RTCPeerConnections in one process.

The offer/answer is exchanged in-process (no signalling server); ICE uses
host candidates only (no STUN/TURN servers). The caller sends an audio
track (aiortc's silence generator, Opus) and both sides open a data channel
and exchange a few messages, so the single 5-tuple carries ICE STUN checks,
a DTLS 1.2 handshake, SRTP and SRTCP (rtcp-mux) and DTLS application data
(SCTP). Bounded: gives up after ~8 s.
"""
import asyncio
import sys

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack


async def run():
    cfg = RTCConfiguration(iceServers=[])
    a, b = RTCPeerConnection(cfg), RTCPeerConnection(cfg)
    done = asyncio.Event()
    got = []

    a.addTrack(AudioStreamTrack())
    ch = a.createDataChannel("udpmux")

    @b.on("datachannel")
    def on_dc(channel):
        @channel.on("message")
        def on_message(msg):
            got.append(msg)
            channel.send("pong " + msg)

    @ch.on("message")
    def on_pong(msg):
        if msg.startswith("pong 3"):
            done.set()

    @ch.on("open")
    def on_open():
        async def ping():
            for i in range(1, 4):
                ch.send(str(i))
                await asyncio.sleep(0.3)
        asyncio.ensure_future(ping())

    @b.on("track")
    def on_track(track):
        async def drain():
            try:
                for _ in range(100):
                    await track.recv()
            except Exception:
                pass
        asyncio.ensure_future(drain())

    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    try:
        await asyncio.wait_for(done.wait(), 8)
        ok = True
    except asyncio.TimeoutError:
        ok = False
    await asyncio.sleep(1.0)  # some more media and RTCP
    await a.close()
    await b.close()
    print("webrtc: data channel %s, got %r" % ("ok" if ok else "FAILED", got), file=sys.stderr)
    return 0 if ok else 1


sys.exit(asyncio.run(run()))
