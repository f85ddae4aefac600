"""The attach wire format (docs/internals/attach.md): AF_UNIX SOCK_SEQPACKET,
one message per datagram, integers big-endian.

HELLO  'H' ver(1)=1 namelen(2) name            program -> daemon, first
OK     'O' ver(1) 0(2) text                    daemon -> program
ERR    'E' ver(1) errno(2) text, then close    daemon -> program
DATA   'D' flags(1) peer_port(2) local_port(2) 0(2) peer(16) local(16) payload
"""

from __future__ import annotations

import errno
import ipaddress
import struct
from typing import Optional, Tuple

VERSION = 1
HDR = 40
MAX_PAYLOAD = 65535
MAX_MSG = HDR + MAX_PAYLOAD
F_V6 = 1
F_LOCAL = 2

_DATA = struct.Struct("!cBHHH16s16s")
_SHORT = struct.Struct("!cBH")

#: (host, port) as asyncio and Twisted use them
Address = Tuple[str, int]


class AttachError(OSError):
    """The daemon refused the attachment; errno says why (EACCES: not allowed
    on this route, EBUSY: an exclusive route already held, ENOENT: no such
    route or no daemon, EPROTO: not a udpmuxd attach socket)."""


def _pack_addr(addr) -> Tuple[bool, bytes, int]:
    host, port = addr[0], int(addr[1])
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range: {port}")
    ip = ipaddress.ip_address(host)
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.version == 6, ip.packed.ljust(16, b"\0"), port


def encode(payload, peer, local=None) -> bytes:
    """One DATA message carrying payload to peer (host, port[, ...]), sent
    from local (host, port) when given (the address a request arrived on)."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"datagram of {len(payload)} bytes (max {MAX_PAYLOAD})")
    v6, praw, pport = _pack_addr(peer)
    flags = F_V6 if v6 else 0
    lraw, lport = b"\0" * 16, 0
    if local is not None and local[0]:
        lv6, lraw2, lport2 = _pack_addr(local)
        if lv6 == v6:
            lraw, lport = lraw2, lport2
            flags |= F_LOCAL
    return _DATA.pack(b"D", flags, pport, lport, 0, praw, lraw) + bytes(payload)


def decode(msg) -> Tuple[bytes, Address, Optional[Address]]:
    """(payload, peer, local or None) of a DATA message."""
    if len(msg) < HDR or msg[0:1] != b"D":
        raise ValueError("not a DATA message")
    _, flags, pport, lport, _, praw, lraw = _DATA.unpack_from(msg)
    if flags & F_V6:
        peer = (str(ipaddress.IPv6Address(praw)), pport)
        local = (str(ipaddress.IPv6Address(lraw)), lport) if flags & F_LOCAL else None
    else:
        peer = (str(ipaddress.IPv4Address(praw[:4])), pport)
        local = (str(ipaddress.IPv4Address(lraw[:4])), lport) if flags & F_LOCAL else None
    return bytes(msg[HDR:]), peer, local


def hello(route: str) -> bytes:
    """The first message: claim route."""
    name = route.encode()
    if not 0 < len(name) < 256:
        raise ValueError("a route name is 1 to 255 bytes")
    return _SHORT.pack(b"H", VERSION, len(name)) + name


def check_reply(msg: bytes) -> str:
    """The daemon's answer to HELLO: the OK text, or AttachError."""
    if len(msg) < 4:
        raise AttachError(errno.EPROTO, "short or no reply from udpmuxd (is this an attach socket?)")
    kind, _, code = _SHORT.unpack_from(msg)
    text = msg[4:].decode(errors="replace")
    if kind == b"E":
        raise AttachError(code or errno.EPROTO, text or "refused by udpmuxd")
    if kind != b"O":
        raise AttachError(errno.EPROTO, "unexpected reply from udpmuxd")
    return text
