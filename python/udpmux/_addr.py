"""PeerAddress: what datagram_received() gets as addr."""

from __future__ import annotations

from typing import Optional, Tuple


class PeerAddress(tuple):
    """A peer's (host, port), carrying the local address the datagram was
    sent to as ``.local``.

    For everything else it is a plain 2-tuple (unpacking, ``==``, hashing,
    dict keys), so programs written for UDP sockets work unchanged; passing it
    back to ``sendto()``/``write()`` answers from the address the peer used,
    which matters on a multi-homed host."""

    local: Optional[Tuple[str, int]]

    def __new__(cls, host: str, port: int, local: Optional[Tuple[str, int]] = None):
        self = super().__new__(cls, (host, port))
        self.local = local
        return self

    def __getnewargs__(self):
        return (self[0], self[1], self.local)

    def __repr__(self) -> str:
        return f"PeerAddress({self[0]!r}, {self[1]!r}, local={self.local!r})"
