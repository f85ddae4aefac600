"""asyncio endpoint on a udpmuxd attach route.

``create_datagram_endpoint()`` is shaped like
:meth:`asyncio.loop.create_datagram_endpoint`: it returns ``(transport,
protocol)``, the protocol is an ordinary :class:`asyncio.DatagramProtocol`
and the transport an :class:`asyncio.DatagramTransport`. Instead of binding a
UDP port, the program claims a route of a running udpmuxd; it then receives
the datagrams that route matches on the daemon's shared port and sends from
that port to any peer. Answers to what it sends come back to it even when
they match no route.

Nothing here blocks the event loop: connecting and the handshake are awaited,
``sendto()`` never blocks (a full socket queues the datagram and, past the
high-water mark, calls ``protocol.pause_writing()``; ``resume_writing()``
follows when the queue has drained below the low-water mark).
"""

from __future__ import annotations

import asyncio
import collections
import errno
import socket
from typing import Callable, Deque, Optional, Tuple, TypeVar

from ._addr import PeerAddress
from ._proto import MAX_MSG, AttachError, check_reply, decode, encode, hello

__all__ = ["create_datagram_endpoint", "AttachedTransport", "DEFAULT_PATH"]

#: where udpmuxd's attach socket is unless `attach =` says otherwise
DEFAULT_PATH = "/run/udpmux/attach.sock"

_P = TypeVar("_P", bound=asyncio.BaseProtocol)

# messages read per wake-up before giving the loop back to other callbacks
_READ_BATCH = 64


async def create_datagram_endpoint(
    protocol_factory: Callable[[], _P],
    route: str,
    *,
    path: str = DEFAULT_PATH,
    timeout: float = 5.0,
    loop: Optional[asyncio.AbstractEventLoop] = None,
) -> Tuple["AttachedTransport", _P]:
    """Claim ``route`` on the udpmuxd whose attach socket is ``path``.

    Raises :class:`udpmux.AttachError` when the daemon refuses (errno
    EACCES, EBUSY, ENOENT) or is not there, and :class:`asyncio.TimeoutError`
    when it does not answer within ``timeout`` seconds."""
    loop = loop or asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    sock.setblocking(False)
    try:
        try:
            await asyncio.wait_for(loop.sock_connect(sock, path), timeout)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise AttachError(
                e.errno or errno.ENOENT, f"{path}: {e.strerror} (is udpmuxd running with attach = {path}?)"
            ) from None
        await loop.sock_sendall(sock, hello(route))
        check_reply(await asyncio.wait_for(loop.sock_recv(sock, 512), timeout))
    except BaseException:
        sock.close()
        raise
    protocol = protocol_factory()
    transport = AttachedTransport(loop, sock, protocol, route, path)
    return transport, protocol


class AttachedTransport(asyncio.DatagramTransport):
    """The transport of an attached route (see the module's text).

    ``sendto(data, addr)`` sends ``data`` to ``addr`` from the shared port; when
    ``addr`` is the :class:`udpmux.PeerAddress` a datagram came from, the answer
    leaves from the local address that peer used (or pass ``local=``).

    ``get_extra_info()`` knows ``'socket'`` (the AF_UNIX socket), ``'route'``,
    ``'attach_path'`` and ``'peername'`` (None).
    """

    #: a program that ignores pause_writing() cannot grow the queue past this:
    #: further datagrams are dropped (UDP semantics) and reported with
    #: protocol.error_received(OSError(ENOBUFS))
    max_buffer_size = 4 * 1024 * 1024

    def __init__(self, loop, sock, protocol, route, path):
        super().__init__({"socket": sock, "route": route, "attach_path": path, "peername": None})
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._buffer: Deque[bytes] = collections.deque()
        self._buffer_size = 0
        self._high = 64 * 1024
        self._low = 16 * 1024
        self._writing_paused = False
        self._reading_paused = False
        self._closing = False
        self._lost = False
        self._sends_after_close = 0
        self.dropped = 0
        self._loop.call_soon(self._protocol.connection_made, self)
        self._loop.call_soon(self._add_reader)

    # -- asyncio.BaseTransport ------------------------------------------------
    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Detach after the queued datagrams are sent."""
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._fd)
        if not self._buffer:
            self._loop.call_soon(self._call_connection_lost, None)

    def abort(self) -> None:
        """Detach now; queued datagrams are dropped."""
        self._force_close(None)

    def set_protocol(self, protocol) -> None:
        self._protocol = protocol

    def get_protocol(self):
        return self._protocol

    # -- reading --------------------------------------------------------------
    def is_reading(self) -> bool:
        return not self._reading_paused and not self._closing

    def pause_reading(self) -> None:
        """Stop delivering datagrams; the daemon queues them in the socket (and
        counts what does not fit there as dropped)."""
        if self._closing or self._reading_paused:
            return
        self._reading_paused = True
        self._loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        if self._closing or not self._reading_paused:
            return
        self._reading_paused = False
        self._add_reader()

    def _add_reader(self) -> None:
        if not self._closing and not self._reading_paused:
            self._loop.add_reader(self._fd, self._read_ready)

    def _read_ready(self) -> None:
        for _ in range(_READ_BATCH):
            if self._closing:
                return
            try:
                msg = self._sock.recv(MAX_MSG)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._force_close(exc)
                return
            if not msg:
                self._force_close(ConnectionResetError(errno.ECONNRESET, "udpmuxd closed the attachment"))
                return
            try:
                data, peer, local = decode(msg)
            except ValueError as exc:
                self._protocol.error_received(OSError(errno.EPROTO, f"bad message from udpmuxd: {exc}"))
                continue
            self._protocol.datagram_received(data, PeerAddress(peer[0], peer[1], local))

    # -- writing --------------------------------------------------------------
    def sendto(self, data, addr=None, *, local: Optional[Tuple[str, int]] = None) -> None:
        """Send one datagram to ``addr`` (host, port). Never blocks."""
        if addr is None:
            raise ValueError("an attached transport needs a destination address")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes-like, not {type(data).__name__}")
        if self._closing:
            self._sends_after_close += 1
            if self._sends_after_close == 5:
                self._loop.call_exception_handler(
                    {"message": "udpmux: sendto() on a closed attached transport", "transport": self}
                )
            return
        if local is None:
            local = getattr(addr, "local", None)
        msg = encode(data, addr, local)
        if not self._buffer:
            try:
                self._sock.send(msg)
                return
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                self._send_error(exc)
                return
        if self._buffer_size + len(msg) > self.max_buffer_size:
            self.dropped += 1
            self._protocol.error_received(OSError(errno.ENOBUFS, "udpmux: send queue full, datagram dropped"))
            return
        if not self._buffer:
            self._loop.add_writer(self._fd, self._write_ready)
        self._buffer.append(msg)
        self._buffer_size += len(msg)
        self._maybe_pause()

    def _send_error(self, exc: OSError) -> None:
        if exc.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
            self._force_close(exc)
        else:
            self._protocol.error_received(exc)

    def _write_ready(self) -> None:
        while self._buffer:
            msg = self._buffer[0]
            try:
                self._sock.send(msg)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._buffer.popleft()
                self._buffer_size -= len(msg)
                self._send_error(exc)
                if self._lost:
                    return
                continue
            self._buffer.popleft()
            self._buffer_size -= len(msg)
        self._maybe_resume()
        if not self._buffer:
            self._loop.remove_writer(self._fd)
            if self._closing:
                self._call_connection_lost(None)

    def get_write_buffer_size(self) -> int:
        return self._buffer_size

    def get_write_buffer_limits(self) -> Tuple[int, int]:
        return (self._low, self._high)

    def set_write_buffer_limits(self, high: Optional[int] = None, low: Optional[int] = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._maybe_pause()

    def _maybe_pause(self) -> None:
        if not self._writing_paused and self._buffer_size > self._high:
            self._writing_paused = True
            try:
                self._protocol.pause_writing()
            except Exception as exc:  # same policy as asyncio's transports
                self._loop.call_exception_handler(
                    {"message": "protocol.pause_writing() failed", "exception": exc, "transport": self}
                )

    def _maybe_resume(self) -> None:
        if self._writing_paused and self._buffer_size <= self._low:
            self._writing_paused = False
            try:
                self._protocol.resume_writing()
            except Exception as exc:
                self._loop.call_exception_handler(
                    {"message": "protocol.resume_writing() failed", "exception": exc, "transport": self}
                )

    # -- the end --------------------------------------------------------------
    def _force_close(self, exc: Optional[BaseException]) -> None:
        if self._lost:
            return
        if self._buffer:
            self._buffer.clear()
            self._buffer_size = 0
            self._loop.remove_writer(self._fd)
        if not self._closing:
            self._closing = True
            self._loop.remove_reader(self._fd)
        self._loop.call_soon(self._call_connection_lost, exc)
        self._lost = True

    def _call_connection_lost(self, exc: Optional[BaseException]) -> None:
        if self._sock is None:
            return
        self._lost = True
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._sock.close()
            self._sock = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        state = "closing" if self._closing else "open"
        return f"<AttachedTransport route={self._extra['route']!r} {state} queued={self._buffer_size}>"

