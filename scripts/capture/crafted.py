#!/usr/bin/python3
"""Crafted exchanges for protocols with no suitable program in Debian 12.

Usage: crafted.py PROTOCOL PORT

Sends one realistic exchange of PROTOCOL between two UDP sockets on
127.0.0.1 (client on an ephemeral port, "server" on PORT), both directions,
so that tcpdump on lo records it. Every message is built field by field from
the protocol's specification (cited per function); nothing is random except
where the protocol itself is random (nonces, GUIDs, SPIs), and those come from
a fixed-seed PRNG so reruns produce identical payloads.
"""
import random
import socket
import struct
import sys
import time

rng = random.Random(0x75647078)  # fixed seed: reproducible payloads


def rand(n):
    return bytes(rng.getrandbits(8) for _ in range(n))


# --------------------------------------------------------------------------
# ZRTP (RFC 6189 section 5): 0x10 0x00 | seq(2) | magic "ZRTP" | SSRC(4) |
# message (preamble 0x505a, length in 32-bit words, 8-char type) | CRC-32C
# --------------------------------------------------------------------------
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def zrtp_packet(seq, ssrc, msg):
    hdr = struct.pack(">BBHI", 0x10, 0x00, seq, 0x5A525450) + struct.pack(">I", ssrc)
    body = hdr + msg
    # RFC 6189 5.0: CRC-32C over the whole packet, transmitted big-endian
    return body + struct.pack(">I", crc32c(body))


def zrtp_msg(mtype, payload):
    assert len(mtype) == 8 and (len(payload) % 4) == 0
    words = (4 + 8 + len(payload)) // 4
    return struct.pack(">HH", 0x505A, words) + mtype + payload


def zrtp_hello(client_id, zid):
    # 5.2: version, client id(16), H3(32), ZID(12), flags|hc|cc|ac|kc|sc, lists, MAC(8)
    hc, cc, ac, kc, sc = [b"S256"], [b"AES1"], [b"HS32", b"HS80"], [b"DH3k", b"Mult"], [b"B32 "]
    counts = (len(hc) << 16) | (len(cc) << 12) | (len(ac) << 8) | (len(kc) << 4) | len(sc)
    p = b"1.10" + client_id.ljust(16)[:16] + rand(32) + zid + struct.pack(">I", counts)
    p += b"".join(hc + cc + ac + kc + sc) + rand(8)
    return zrtp_msg(b"Hello   ", p)


def exchange_zrtp():
    ssrc_a, ssrc_b = rng.getrandbits(32), rng.getrandbits(32)
    zid_a, zid_b = rand(12), rand(12)
    return [
        ("c", zrtp_packet(1, ssrc_a, zrtp_hello(b"udpmux-zrtp-a", zid_a))),
        ("s", zrtp_packet(1, ssrc_b, zrtp_msg(b"HelloACK", b""))),
        ("s", zrtp_packet(2, ssrc_b, zrtp_hello(b"udpmux-zrtp-b", zid_b))),
        ("c", zrtp_packet(2, ssrc_a, zrtp_msg(b"HelloACK", b""))),
        # 5.4 Commit (DH mode): H2(32) ZID(12) hash cipher auth keyagr SAS hvi(32) MAC(8)
        ("c", zrtp_packet(3, ssrc_a, zrtp_msg(b"Commit  ", rand(32) + zid_a + b"S256AES1HS32DH3kB32 "
                                              + rand(32) + rand(8)))),
        # 5.7 Conf2ACK and 5.9 Error-like short messages: Conf2ACK has no payload
        ("s", zrtp_packet(3, ssrc_b, zrtp_msg(b"Conf2ACK", b""))),
    ]


# --------------------------------------------------------------------------
# RakNet offline messages (RakNet's MessageIdentifiers.h and the public
# protocol descriptions used by Minecraft Bedrock servers):
# ID_UNCONNECTED_PING 0x01, ID_UNCONNECTED_PONG 0x1c,
# ID_OPEN_CONNECTION_REQUEST_1 0x05 / REPLY_1 0x06, REQUEST_2 0x07 / REPLY_2 0x08,
# then a connected frame set (0x84) carrying ID_CONNECTION_REQUEST 0x09.
# --------------------------------------------------------------------------
RAKNET_MAGIC = bytes.fromhex("00ffff00fefefefefdfdfdfd12345678")


def raknet_addr(ip, port):
    return b"\x04" + bytes((~int(x)) & 0xFF for x in ip.split(".")) + struct.pack(">H", port)


def exchange_raknet(cport, sport):
    cguid, sguid = rand(8), rand(8)
    t0 = 123456
    motd = b"MCPE;udpmux test;594;1.20.0;0;10;" + str(int.from_bytes(sguid, "big")).encode() \
        + b";udpmux;Survival;1;19132;19133;"
    mtu = 1400
    req1 = b"\x05" + RAKNET_MAGIC + bytes([11])
    req1 += b"\x00" * (mtu - 28 - len(req1))  # padded to the probed MTU (minus IP+UDP)
    # frame set: 0x84, seq 0 (u24 LE), one reliable-ordered frame:
    # flags 0x60, length in bits (u16 BE), reliable idx (u24 LE), order idx (u24 LE), channel
    inner = b"\x09" + cguid + struct.pack(">Q", t0 + 40) + b"\x00"
    frame = b"\x60" + struct.pack(">H", len(inner) * 8) + b"\x00\x00\x00" + b"\x00\x00\x00\x00" + inner
    return [
        ("c", b"\x01" + struct.pack(">Q", t0) + RAKNET_MAGIC + cguid),
        ("s", b"\x1c" + struct.pack(">Q", t0) + sguid + RAKNET_MAGIC + struct.pack(">H", len(motd)) + motd),
        ("c", req1),
        ("s", b"\x06" + RAKNET_MAGIC + sguid + b"\x00" + struct.pack(">H", mtu)),
        ("c", b"\x07" + RAKNET_MAGIC + raknet_addr("127.0.0.1", sport) + struct.pack(">H", mtu) + cguid),
        ("s", b"\x08" + RAKNET_MAGIC + sguid + raknet_addr("127.0.0.1", cport) + struct.pack(">H", mtu)
         + b"\x00"),
        ("c", b"\x84" + b"\x00\x00\x00" + frame),
        ("s", b"\xc0" + struct.pack(">H", 1) + b"\x01" + b"\x00\x00\x00"),  # ACK of frame set 0
    ]


# --------------------------------------------------------------------------
# TeamSpeak 3 init handshake (as documented by the ReSpeak / TS3Client
# protocol notes): MAC "TS3INIT1", packet id 0x65, [client id 0 client->server],
# flags 0x88 (unencrypted | INIT1), step byte and step data.
# --------------------------------------------------------------------------
def exchange_teamspeak():
    version = struct.pack(">I", 0x5E2B2A6A)  # build timestamp of a 3.5 client
    now = struct.pack(">I", 1700000000)
    crnd = rand(4)
    c_hdr = b"TS3INIT1" + struct.pack(">HH", 0x65, 0) + b"\x88"
    s_hdr = b"TS3INIT1" + struct.pack(">H", 0x65) + b"\x88"
    srv16 = rand(16)
    x, n = rand(64), rand(64)
    return [
        ("c", c_hdr + version + b"\x00" + now + crnd + b"\x00" * 8),
        ("s", s_hdr + b"\x01" + srv16 + crnd[::-1]),
        ("c", c_hdr + version + b"\x02" + srv16 + crnd[::-1]),
        ("s", s_hdr + b"\x03" + x + n + struct.pack(">I", 10000) + rand(100)),
    ]


# --------------------------------------------------------------------------
# IKEv2 IKE_SA_INIT (RFC 7296 sections 3.1-3.4, 3.9, 3.10): request with
# SA/KE/Nonce/NAT-D notifies, a response, and an INFORMATIONAL (encrypted,
# SK payload) pair.
# --------------------------------------------------------------------------
def ike_payload(next_pl, body, critical=0):
    return struct.pack(">BBH", next_pl, critical, 4 + len(body)) + body


def ike_header(spi_i, spi_r, next_pl, xchg, flags, msgid, total):
    return spi_i + spi_r + struct.pack(">BBBBII", next_pl, 0x20, xchg, flags, msgid, total)


def ike_sa_proposal():
    def transform(last, ttype, tid, attrs=b""):
        return struct.pack(">BBHBBH", 0 if last else 3, 0, 8 + len(attrs), ttype, 0, tid) + attrs
    ts = [transform(0, 1, 20, struct.pack(">HH", 0x800E, 256)),  # ENCR_AES_GCM_16, keylen 256
          transform(0, 2, 7),    # PRF_HMAC_SHA2_256
          transform(1, 4, 31)]   # DH group 31 (Curve25519)
    body = b"".join(ts)
    prop = struct.pack(">BBHBBBB", 0, 0, 8 + len(body), 1, 1, 0, len(ts)) + body
    return prop


def ike_sa_init(spi_i, spi_r, resp):
    NOTIFY, NONCE, KE, SA = 41, 40, 34, 33
    nat_src = ike_payload(NOTIFY, struct.pack(">BBH", 0, 0, 16388) + rand(20))
    nat_dst = ike_payload(0, struct.pack(">BBH", 0, 0, 16389) + rand(20))
    nonce = ike_payload(NOTIFY, rand(32))
    ke = ike_payload(NONCE, struct.pack(">HH", 31, 0) + rand(32))
    sa = ike_payload(KE, ike_sa_proposal())
    body = sa + ke + nonce + nat_src + nat_dst
    flags = 0x20 if resp else 0x08
    return ike_header(spi_i, spi_r, SA, 34, flags, 0, 28 + len(body)) + body


def ike_informational(spi_i, spi_r, resp, msgid):
    # SK payload (46): IV(8) + encrypted empty INFORMATIONAL + ICV(16)
    sk = ike_payload(0, rand(8) + rand(16) + rand(16))
    flags = 0x20 if resp else 0x08
    return ike_header(spi_i, spi_r, 46, 37, flags, msgid, 28 + len(sk)) + sk


def exchange_ike():
    spi_i, spi_r = rand(8), rand(8)
    return [
        ("c", ike_sa_init(spi_i, b"\x00" * 8, False)),
        ("s", ike_sa_init(spi_i, spi_r, True)),
        ("c", ike_informational(spi_i, spi_r, False, 1)),
        ("s", ike_informational(spi_i, spi_r, True, 1)),
    ]


def main():
    proto, port = sys.argv[1], int(sys.argv[2])
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", port))
    cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cli.bind(("127.0.0.1", 0))
    cport = cli.getsockname()[1]
    if proto == "zrtp":
        msgs = exchange_zrtp()
    elif proto == "raknet":
        msgs = exchange_raknet(cport, port)
    elif proto == "teamspeak":
        msgs = exchange_teamspeak()
    elif proto == "ike":
        msgs = exchange_ike()
    else:
        sys.exit("unknown protocol " + proto)
    for who, data in msgs:
        if who == "c":
            cli.sendto(data, ("127.0.0.1", port))
        else:
            srv.sendto(data, ("127.0.0.1", cport))
        time.sleep(0.02)
    return 0


if __name__ == "__main__":
    sys.exit(main())
