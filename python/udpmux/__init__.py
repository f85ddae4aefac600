"""udpmux: attach Python programs to a route of a running udpmuxd.

A program attached to a route shares udpmuxd's public UDP port with every
other service behind it: it receives the datagrams its route matches and sends
from that port to any peer, acting as server and client on one port without
SO_REUSEADDR/SO_REUSEPORT.

- asyncio: :func:`udpmux.aio.create_datagram_endpoint` (like
  ``loop.create_datagram_endpoint``; also exported here)
- Twisted: :func:`udpmux.twisted.listenAttached` (like ``reactor.listenUDP``)
- blocking: :class:`udpmux.sync.Attachment`

The route must be configured in udpmux.conf with ``action = attach`` (and
``allow =`` naming the program's user or group). Protocol:
docs/internals/attach.md.
"""

from ._addr import PeerAddress
from ._proto import AttachError, decode, encode
from .aio import DEFAULT_PATH, AttachedTransport, create_datagram_endpoint
from .sync import Attachment

__version__ = "0.1.0"

__all__ = [
    "AttachError",
    "AttachedTransport",
    "Attachment",
    "DEFAULT_PATH",
    "PeerAddress",
    "create_datagram_endpoint",
    "decode",
    "encode",
    "__version__",
]
