"""A blocking attachment, for scripts and threads (asyncio programs use
:mod:`udpmux.aio`, Twisted programs :mod:`udpmux.twisted`)."""

from __future__ import annotations

import socket
from typing import Optional, Tuple

from ._addr import PeerAddress
from ._proto import MAX_MSG, AttachError, check_reply, decode, encode, hello

__all__ = ["Attachment"]


class Attachment:
    """Claim ``route`` on the udpmuxd whose attach socket is ``path``::

        with Attachment("dht") as att:
            data, peer = att.recvfrom()
            att.sendto(b"answer", peer)      # from the address peer used

    ``fileno()`` makes it usable with :mod:`selectors`."""

    def __init__(self, route: str, path: str = "/run/udpmux/attach.sock", timeout: float = 5.0):
        self.route = route
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(path)
            except (FileNotFoundError, ConnectionRefusedError) as e:
                raise AttachError(e.errno, f"{path}: {e.strerror} (is udpmuxd running with attach = {path}?)") from None
            self.sock.sendall(hello(route))
            check_reply(self.sock.recv(512))
            self.sock.settimeout(None)
        except BaseException:
            self.sock.close()
            raise

    def fileno(self) -> int:
        return self.sock.fileno()

    def recvfrom(self) -> Tuple[bytes, PeerAddress]:
        """The next datagram and its peer (with ``.local``)."""
        msg = self.sock.recv(MAX_MSG)
        if not msg:
            raise ConnectionResetError("udpmuxd closed the attachment")
        data, peer, local = decode(msg)
        return data, PeerAddress(peer[0], peer[1], local)

    def sendto(self, data, addr, local: Optional[Tuple[str, int]] = None) -> None:
        if local is None:
            local = getattr(addr, "local", None)
        self.sock.send(encode(data, addr, local))

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Attachment":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
