"""udpmux_attach - attach a Python program to a route of a running udpmuxd.

Standard library only. The program then receives the route's datagrams
(with the peer address and the local address they arrived on) and sends
datagrams to any peer from the daemon's shared port; a peer's answers to what
the program sent come back to it even if they would not match the route.

Protocol: docs/internals/attach.md (AF_UNIX SOCK_SEQPACKET, one message per
datagram).

Blocking use::

    att = Attachment("/run/udpmux/attach.sock", "dht")
    data, peer, local = att.recv()
    att.send(b"answer", peer, local)

asyncio use::

    att = await AsyncAttachment.connect(path, "dht")
    data, peer, local = await att.recv()
    att.send(b"...", ("192.0.2.1", 6881))
"""

import asyncio
import errno
import ipaddress
import os
import socket
import struct

VERSION = 1
HDR = 40
MAX_MSG = HDR + 65535
F_V6 = 1
F_LOCAL = 2

__all__ = ["Attachment", "AsyncAttachment", "AttachError", "encode", "decode"]


class AttachError(OSError):
    """The daemon refused the attachment (errno tells why: EACCES, EBUSY, ENOENT)."""


def _pack_addr(addr):
    host, port = addr[0], addr[1]
    ip = ipaddress.ip_address(host)
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    raw = ip.packed
    return ip.version == 6, raw.ljust(16, b"\0"), port


def encode(payload, peer, local=None):
    """One DATA message for payload to peer (host, port[, ...]) from local."""
    v6, praw, pport = _pack_addr(peer)
    flags = F_V6 if v6 else 0
    lraw, lport = b"\0" * 16, 0
    if local is not None and local[0]:
        lv6, lraw, lport = _pack_addr(local)
        if lv6 != v6:
            lraw, lport = b"\0" * 16, 0
        else:
            flags |= F_LOCAL
    hdr = struct.pack("!cBHHH16s16s", b"D", flags, pport, lport, 0, praw, lraw)
    return hdr + bytes(payload)


def decode(msg):
    """Returns (payload, peer, local or None) of a DATA message."""
    if len(msg) < HDR or msg[0:1] != b"D":
        raise ValueError("not a DATA message")
    _, flags, pport, lport, _, praw, lraw = struct.unpack("!cBHHH16s16s", msg[:HDR])
    if flags & F_V6:
        peer = (str(ipaddress.IPv6Address(praw)), pport)
        local = (str(ipaddress.IPv6Address(lraw)), lport) if flags & F_LOCAL else None
    else:
        peer = (str(ipaddress.IPv4Address(praw[:4])), pport)
        local = (str(ipaddress.IPv4Address(lraw[:4])), lport) if flags & F_LOCAL else None
    return bytes(msg[HDR:]), peer, local


def _hello(sock, route):
    name = route.encode()
    if not 0 < len(name) < 256:
        raise ValueError("bad route name")
    sock.send(struct.pack("!cBH", b"H", VERSION, len(name)) + name)


def _check_reply(msg):
    if len(msg) < 4:
        raise AttachError(errno.EPROTO, "short reply from udpmuxd")
    kind, _, code = struct.unpack("!cBH", msg[:4])
    if kind == b"E":
        raise AttachError(code or errno.EPROTO, msg[4:].decode(errors="replace"))
    if kind != b"O":
        raise AttachError(errno.EPROTO, "unexpected reply from udpmuxd")


class Attachment:
    """A blocking attachment (socket is available as .sock for selectors)."""

    def __init__(self, path, route, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(path)
            _hello(self.sock, route)
            _check_reply(self.sock.recv(512))
            self.sock.settimeout(None)
        except BaseException:
            self.sock.close()
            raise

    def fileno(self):
        return self.sock.fileno()

    def recv(self):
        msg = self.sock.recv(MAX_MSG)
        if not msg:
            raise ConnectionResetError("udpmuxd closed the attachment")
        return decode(msg)

    def send(self, payload, peer, local=None):
        self.sock.send(encode(payload, peer, local))

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class AsyncAttachment:
    """An asyncio attachment: await recv(), send() never blocks the loop
    (SEQPACKET sends are atomic; a full socket raises BlockingIOError)."""

    def __init__(self, sock):
        self.sock = sock
        self.loop = asyncio.get_running_loop()

    @classmethod
    async def connect(cls, path, route):
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, path)
            _hello(sock, route)
            _check_reply(await asyncio.wait_for(loop.sock_recv(sock, 512), 5))
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    async def recv(self):
        msg = await self.loop.sock_recv(self.sock, MAX_MSG)
        if not msg:
            raise ConnectionResetError("udpmuxd closed the attachment")
        return decode(msg)

    def send(self, payload, peer, local=None):
        self.sock.send(encode(payload, peer, local))

    def close(self):
        self.sock.close()


if __name__ == "__main__":  # pragma: no cover - tiny manual check
    import sys

    if len(sys.argv) != 3:
        print("usage: udpmux_attach.py SOCKET ROUTE  (prints what arrives)", file=sys.stderr)
        sys.exit(64)
    with Attachment(sys.argv[1], sys.argv[2]) as a:
        while True:
            data, peer, local = a.recv()
            print(peer, local, data[:64], flush=True)
    os._exit(0)
