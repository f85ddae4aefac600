"""udpmux_attach - the former single-file client, kept so that scripts written
for it keep working. New code: the udpmux package (python/udpmux, `pip install
./python`): udpmux.create_datagram_endpoint() for asyncio,
udpmux.twisted.listenAttached() for Twisted, udpmux.Attachment for blocking
use. This module only adapts the old names and signatures to it.

    att = Attachment("/run/udpmux/attach.sock", "dht")   # (path, route)
    data, peer, local = att.recv()
    att.send(b"answer", peer, local)
"""

import asyncio
import socket

from udpmux._proto import (  # noqa: F401  (re-exported)
    HDR,
    MAX_MSG,
    VERSION,
    AttachError,
    check_reply,
    decode,
    encode,
    hello,
)

__all__ = ["Attachment", "AsyncAttachment", "AttachError", "encode", "decode"]


class Attachment:
    """Blocking attachment with the old (path, route) signature."""

    def __init__(self, path, route, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(path)
            self.sock.send(hello(route))
            check_reply(self.sock.recv(512))
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
    """The old asyncio wrapper: await recv(), send() never blocks."""

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
            sock.send(hello(route))
            check_reply(await asyncio.wait_for(loop.sock_recv(sock, 512), 5))
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
