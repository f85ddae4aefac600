#!/usr/bin/env python3
"""Writes the hand-built sample datagrams (protocols for which no program was
available on the build machine, and published test vectors) into
tests/data/samples/<probe>/. Every field is built from the protocol's
specification; see the comment by each sample. Re-run to regenerate:
    python3 tests/data/samples/gen-handbuilt.py
Random-looking fields use a fixed seed so the output is stable."""
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
rnd = random.Random(20261125)


def rb(n):
    return bytes(rnd.getrandbits(8) for _ in range(n))


def put(probe, name, data):
    d = os.path.join(HERE, probe)
    os.makedirs(d, exist_ok=True)
    h = data.hex()
    with open(os.path.join(d, name + '.hex'), 'w') as f:
        for i in range(0, len(h), 64):
            f.write(h[i:i + 64] + '\n')


def hx(s):
    return bytes.fromhex(''.join(s.split()))


# ---- published vectors (RFC 5769, BEP 5, research notes section 5) ----
put('stun', 'rfc5769-request', hx('''000100582112a442b7e7a701bc34d686fa87dfae
80220010 5354554e207465737420636c69656e74 00240004 6e0001ff
80290008 932ff9b151263b36 00060009 6576746a3a68367659 202020
00080014 9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2 80280004 e57a3bcf'''))
put('stun', 'rfc5769-response-v4', hx('0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220002000080001a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06be7d780280004c07d4c96'))
put('stun', 'ndpi-binding-request', hx('000100002112a44253486b6846386f6477677956'))
put('dns', 'ndpi-aaaa-query', hx('bc1f 0100 0001 0000 0000 0000 03777777 076578616d706c65 03636f6d 00 001c 0001'))
put('dns', 'ndpi-root-ns-nsid', hx('9151 0120 0001 0000 0000 0001 00 0002 0001 00 0029 1000 00000000 0010 0003 0000 000a 0008 ebe62a6cefbf86ae'))
put('dns', 'ndpi-mdns-ptr-query', hx('0000 0000 0001 0000 0000 0000 105f73706f746966792d636f6e6e656374 045f746370 056c6f63616c 00 000c 0001'))
put('ntp', 'ndpi-ntpv4-client', hx('230207eb00000450000003ab83bc03dfd94f51c33165b860d944575530336fd0d944575531b4e978d94f51f42d26e2f4'))
put('ntp', 'sntp-v3-client', hx('1b') + bytes(47))
put('snmp', 'ndpi-v1-getnext', hx('3029 020100 04067075626c6963 a11c 02044b781a6e 020100 020100 300e300c06082b06010201010500 0500'))
put('tftp', 'ndpi-rrq-octet', hx('0001 726663313335302e747874 00 6f63746574 00'))
put('tftp', 'rrq-options', b'\x00\x01boot/pxelinux.0\x00octet\x00blksize\x001468\x00tsize\x000\x00')
put('tftp', 'oack', b'\x00\x06blksize\x001468\x00tsize\x004096\x00')
put('coap', 'ndpi-con-get-separate', hx('42 01 e91b 0790 b8 7365706172617465 10 d1 23 11'))
put('coap', 'rfc7252-get-well-known-core', hx('40 01 1234 bb 2e77656c6c2d6b6e6f776e 04 636f7265'))
# ACK 2.05 Content, token 2 bytes, Content-Format text/plain (option 12), payload
put('coap', 'ack-205-content', hx('62 45 1234 0790 c1 00 ff') + b'hello coap')
put('coap', 'con-ping-empty', hx('40 00 abcd'))
put('coap', 'non-post-payload', hx('51 02 4321 99 b4') + b'temp' + hx('ff') + b'21.5')
put('bittorrent-dht', 'bep5-ping-query', b'd1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe')
put('bittorrent-dht', 'bep5-ping-response', b'd1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re')
put('bittorrent-dht', 'bep5-error', b'd1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee')
put('bittorrent-dht', 'get-peers-query',
    b'd1:ad2:id20:' + rb(20) + b'9:info_hash20:' + rb(20) + b'e1:q9:get_peers1:t2:' + rb(2) + b'1:v4:LT\x01\x011:y1:qe')
put('bittorrent-dht', 'get-peers-response',
    b'd2:ip6:' + rb(6) + b'1:rd2:id20:' + rb(20) + b'5:nodes52:' + rb(52) + b'5:token8:' + rb(8) + b'e1:t2:' + rb(2) + b'1:y1:re')
put('utp', 'ndpi-syn', hx('41 00 5302 10eeb2f0 00000000 00000000 e7f5 0000'))
put('utp', 'ndpi-state-ext2', hx('21 02 5302 06ff3f5f 7fffffff 0000f000 49c7 e7f5 00 08 0000000000000000'))
put('utp', 'data', hx('01 00 5303 10eec0f0 00001234 00100000 e7f6 49c7') + b'\x00\x00\x00\x05\x02' + rb(40))
put('utp', 'state-sack', hx('21 01 5302 06ff4f5f 00000a00 0000f000 49c8 e7f6 00 04 05000000'))
put('utp', 'fin', hx('11 00 5303 10eed0f0 00000800 00100000 e7f8 49c9'))
put('bittorrent-tracker', 'connect-request', hx('0000041727101980 00000000') + rb(4))
put('bittorrent-tracker', 'connect-response', hx('00000000') + rb(4) + rb(8))
ann = rb(8) + hx('00000001') + rb(4) + rb(20) + rb(20) + struct.pack('>QQQIIIiH', 0, 1 << 20, 0, 2, 0, 0x1234, -1, 6881)
assert len(ann) == 98
put('bittorrent-tracker', 'announce-request', ann)
put('bittorrent-tracker', 'announce-request-bep41', ann + hx('02 0c') + b'/announce?x=' + hx('00'))
put('bittorrent-tracker', 'announce-response', hx('00000001') + rb(4) + struct.pack('>III', 1800, 3, 12) + rb(12))
put('bittorrent-tracker', 'scrape-request', rb(8) + hx('00000002') + rb(4) + rb(40))
put('bittorrent-tracker', 'scrape-response', hx('00000002') + rb(4) + struct.pack('>III', 12, 100, 4))
put('bittorrent-tracker', 'error', hx('00000003') + rb(4) + b'unknown info_hash')

# ---- ZRTP (RFC 6189 section 5) ----
def crc32c(data):
    c = 0xffffffff
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ (0x82f63b78 if c & 1 else 0)
    return c ^ 0xffffffff


def zrtp(seq, ssrc, mtype, body):
    msg_len = 12 + len(body)          # preamble+length (4) + type (8) + body
    assert msg_len % 4 == 0
    msg = hx('505a') + struct.pack('>H', msg_len // 4) + mtype + body
    pkt = hx('1000') + struct.pack('>H', seq) + b'ZRTP' + struct.pack('>I', ssrc) + msg
    return pkt + struct.pack('>I', crc32c(pkt))

hello = b'1.10' + b'udpmux-test-cli ' + rb(32) + rb(12) + hx('00011111') + b'S256AES1HS32DH3kB32 ' + rb(8)
put('zrtp', 'hello', zrtp(1, 0x12345678, b'Hello   ', hello))
put('zrtp', 'helloack', zrtp(2, 0x9abcdef0, b'HelloACK', b''))
put('zrtp', 'commit', zrtp(3, 0x12345678, b'Commit  ', rb(32) + rb(12) + b'S256AES1HS32DH3kB32 ' + rb(32) + rb(8)))

# ---- IKE (RFC 7296 / RFC 2408) ----
def gen(next_p, body, crit=0):
    return struct.pack('>BBH', next_p, crit, 4 + len(body)) + body


def ikev2_hdr(spi_i, spi_r, next_p, exch, flags, msgid, body):
    return spi_i + spi_r + struct.pack('>BBBBII', next_p, 0x20, exch, flags, msgid, 28 + len(body)) + body


def transform(last, ttype, tid, attrs=b''):
    return struct.pack('>BBHBBH', 0 if last else 3, 0, 8 + len(attrs), ttype, 0, tid) + attrs

trans = transform(0, 1, 12, hx('800e0100')) + transform(0, 3, 12) + transform(0, 2, 5) + transform(1, 4, 14)
prop = struct.pack('>BBHBBBB', 0, 0, 8 + len(trans), 1, 1, 0, 4) + trans
sa = gen(34, prop)
ke = gen(40, struct.pack('>HH', 14, 0) + rb(256))
nonce = gen(41, rb(32))
notify = gen(0, struct.pack('>BBH', 0, 0, 16388) + rb(20))   # NAT_DETECTION_SOURCE_IP
spi_i = rb(8)
spi_r = rb(8)
put('ike', 'ikev2-sa-init-request', ikev2_hdr(spi_i, bytes(8), 33, 34, 0x08, 0, sa + ke + nonce + notify))
put('ike', 'ikev2-sa-init-response', ikev2_hdr(spi_i, spi_r, 33, 34, 0x20, 0, sa + ke + nonce + notify))
sk = gen(35, rb(16) + rb(160) + rb(16))     # IV, ciphertext, ICV; first inner payload IDi (35)
auth = ikev2_hdr(spi_i, spi_r, 46, 35, 0x08, 1, sk)
put('ike', 'ikev2-auth-request', auth)
put('ike', 'ikev2-auth-natt-4500', bytes(4) + auth)
put('ike', 'natt-keepalive', hx('ff'))
# IKEv1 Main Mode, first message: SA (with proposal and transform inside) + VID
v1_tr = struct.pack('>BBHBBH', 0, 0, 8 + 16, 1, 1, 0) + hx('800b0001 800c7080 80010007 800e0080')
v1_prop = struct.pack('>BBHBBBB', 0, 0, 8 + len(v1_tr), 1, 1, 0, 1) + v1_tr
v1_sa = gen(13, struct.pack('>II', 1, 1) + v1_prop)
v1_vid = gen(0, hx('4a131c81070358455c5728f20e95452f'))
v1_body = v1_sa + v1_vid
put('ike', 'ikev1-main-mode-sa', rb(8) + bytes(8) + struct.pack('>BBBBII', 1, 0x10, 2, 0, 0, 28 + len(v1_body)) + v1_body)

# ---- RakNet offline messages ----
MAGIC = hx('00ffff00fefefefefdfdfdfd12345678')
guid_c, guid_s = rb(8), rb(8)
put('raknet', 'unconnected-ping', hx('01') + struct.pack('>Q', 123456) + MAGIC + guid_c)
motd = b'MCPE;Dedicated Server;594;1.20.80;0;10;' + b'13253860892328930865;Bedrock level;Survival;1;19132;19133;'
put('raknet', 'unconnected-pong', hx('1c') + struct.pack('>Q', 123456) + guid_s + MAGIC + struct.pack('>H', len(motd)) + motd)
put('raknet', 'open-connection-request-1', hx('05') + MAGIC + hx('0b') + bytes(1464 - 18 - 28))
put('raknet', 'open-connection-reply-1', hx('06') + MAGIC + guid_s + hx('00') + struct.pack('>H', 1400))
addr = hx('04') + bytes(255 - b for b in (127, 0, 0, 1)) + struct.pack('>H', 19132)
put('raknet', 'open-connection-request-2', hx('07') + MAGIC + addr + struct.pack('>H', 1400) + guid_c)
put('raknet', 'open-connection-reply-2', hx('08') + MAGIC + guid_s + addr + struct.pack('>H', 1400) + hx('00'))

# ---- SSDP (UPnP Device Architecture 2.0, section 1) ----
put('ssdp', 'm-search', b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 2\r\nST: ssdp:all\r\nUSER-AGENT: Linux/6.1 UPnP/2.0 udpmux-test/0.1\r\n\r\n')
put('ssdp', 'notify-alive', b'NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\nLOCATION: http://192.0.2.10:49152/desc.xml\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\nSERVER: Linux/6.1 UPnP/2.0 test/1.0\r\nUSN: uuid:2fac1234-31f8-11b4-a222-08002b34c003::upnp:rootdevice\r\n\r\n')
put('ssdp', 'search-response', b'HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nDATE: Wed, 25 Nov 2026 10:00:00 GMT\r\nEXT:\r\nLOCATION: http://192.0.2.10:49152/desc.xml\r\nSERVER: Linux/6.1 UPnP/2.0 test/1.0\r\nST: upnp:rootdevice\r\nUSN: uuid:2fac1234-31f8-11b4-a222-08002b34c003::upnp:rootdevice\r\n\r\n')

# ---- TeamSpeak 3 init1 handshake (community protocol notes) ----
a0 = rb(4)
a1 = rb(16)
put('teamspeak', 'init-step0-client', b'TS3INIT1' + hx('0065 0000 88') + hx('063bece9') + hx('00') + struct.pack('>I', 1764064800) + a0 + bytes(8))
put('teamspeak', 'init-step1-server', b'TS3INIT1' + hx('0065 88') + hx('01') + a1 + a0[::-1])
put('teamspeak', 'init-step2-client', b'TS3INIT1' + hx('0065 0000 88') + hx('063bece9') + hx('02') + a1 + a0[::-1])
put('teamspeak', 'init-step3-server', b'TS3INIT1' + hx('0065 88') + hx('03') + rb(64) + rb(64) + struct.pack('>I', 10000) + rb(100))

# ---- OpenVPN vectors quoted in the research notes (nDPI captures) ----
put('openvpn', 'ndpi-reset-client-v2', hx('38 334857703d96db39 00 00000000'))
put('openvpn', 'ndpi-reset-server-v2', hx('40 d31c3a6964602fa0 01 00000000 334857703d96db39 00000000'))
put('openvpn', 'ndpi-reset-client-v2-tlsauth-sha1', hx('38 b02ccff1b5f0174f c091666e3b124bada39173317b939722d1fe63be 00000001 57a1c15f 00 00000000'))

# SRTCP holding a lone BYE (aiortc sends it on close): clear header + SSRC,
# E|index, 10-byte tag (layout as in the cross-match capture webrtc.pcap)
put('rtcp', 'srtcp-lone-bye', hx('81cb0001 aaaf0de2 80000002 af8c10bd5e77a0193c42'))

# ---- negatives that look close to something ----
put('negative', 'stun-classic-rfc3489', hx('000100089429ef88294dd52632c72931cb8dbb4c0003000400000000'))
put('negative', 'quic-short-header-rfc9001-a5', hx('4cfe4189655e5cd55c41f69080575d7999c25a5bfb'))
put('negative', 'teredo-auth', hx('0001 00 00 b11b3fea46a9afe9 00 6000000000083aff') + bytes(33))
put('negative', 'tailscale-disco', hx('5453f09f92ac') + rb(86))
put('negative', 'http-get', b'GET / HTTP/1.1\r\nHost: example.org\r\n\r\n')
put('negative', 'sip-keepalive-crlf', b'\r\n\r\n')
put('negative', 'zeros-48', bytes(48))
put('negative', 'ones-64', b'\xff' * 64)
for i in range(8):
    put('negative', 'random-%d' % i, rb(rnd.choice([1, 7, 20, 33, 48, 92, 148, 300, 1200])))
