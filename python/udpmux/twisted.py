"""Twisted adapter: a DatagramProtocol on a udpmuxd attach route.

``listenAttached(route, protocol)`` takes the place of
``reactor.listenUDP(port, protocol)``. The protocol is an unchanged
:class:`twisted.internet.protocol.DatagramProtocol`; its transport is an
:class:`AttachedPort` (``IListeningPort`` and ``IUDPTransport``), so
``self.transport.write(data, addr)`` and ``datagramReceived(data, addr)``
work as on a UDP port. The difference: the port is udpmuxd's shared public
port, so the same program can answer peers on that port *and* send its own
requests from it, next to every other service behind udpmuxd — what a plain
second bind of the port refuses ("Address already in use", or on Windows
"only one usage of each socket address").

``attach()`` does the same without waiting for the daemon's answer on the
reactor thread: it returns a Deferred that fires with the listening port.
"""

from __future__ import annotations

import collections
import errno
import socket
from typing import Deque, Optional, Tuple

from twisted.internet import defer, error, interfaces
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.python import failure, log
from zope.interface import implementer

from ._addr import PeerAddress
from ._proto import MAX_MSG, AttachError, check_reply, decode, encode, hello

__all__ = ["AttachedPort", "attach", "listenAttached"]

DEFAULT_PATH = "/run/udpmux/attach.sock"
_READ_BATCH = 64


def listenAttached(
    route: str,
    protocol,
    path: str = DEFAULT_PATH,
    reactor=None,
    timeout: float = 5.0,
    publicAddress: Optional[Tuple[str, int]] = None,
    maxQueue: int = 4 * 1024 * 1024,
) -> "AttachedPort":
    """Attach ``protocol`` to ``route`` and start it, like ``listenUDP``.

    Connecting to the local daemon's socket and its one-message answer are
    waited for (at most ``timeout`` seconds), as ``listenUDP`` waits for
    ``bind()``; a refusal raises :class:`twisted.internet.error.CannotListenError`
    whose ``socketError`` is the :class:`udpmux.AttachError` (errno EACCES,
    EBUSY, ENOENT). ``publicAddress`` is what ``getHost()`` reports (the
    daemon's public address, when the program wants to know it)."""
    if reactor is None:
        from twisted.internet import reactor  # type: ignore[no-redef]
    p = AttachedPort(route, protocol, path, reactor, publicAddress, maxQueue)
    p.startListening(timeout)
    return p


def attach(
    route: str,
    protocol,
    path: str = DEFAULT_PATH,
    reactor=None,
    timeout: float = 5.0,
    publicAddress: Optional[Tuple[str, int]] = None,
    maxQueue: int = 4 * 1024 * 1024,
) -> defer.Deferred:
    """Like :func:`listenAttached`, without blocking the reactor: the
    Deferred fires with the :class:`AttachedPort` once the daemon accepted
    the claim, or fails with :class:`udpmux.AttachError`."""
    if reactor is None:
        from twisted.internet import reactor  # type: ignore[no-redef]
    p = AttachedPort(route, protocol, path, reactor, publicAddress, maxQueue)
    return p.startListeningAsync(timeout)


@implementer(
    interfaces.IListeningPort,
    interfaces.IUDPTransport,
    interfaces.IReadDescriptor,
    interfaces.IWriteDescriptor,
    interfaces.ISystemHandle,
)
class AttachedPort:
    """The transport of a DatagramProtocol attached to a udpmuxd route."""

    def __init__(self, route, protocol, path, reactor, publicAddress=None, maxQueue=4 * 1024 * 1024):
        self.route = route
        self.protocol = protocol
        self.path = path
        self.reactor = reactor
        self.maxQueue = maxQueue
        self._public = publicAddress
        self.socket: Optional[socket.socket] = None
        self.connected = False
        self._queue: Deque[bytes] = collections.deque()
        self._queued = 0
        self._connectedAddr: Optional[Tuple[str, int]] = None
        self._handshake: Optional[defer.Deferred] = None
        self._timeoutCall = None
        self.dropped = 0

    def __repr__(self) -> str:
        return f"<udpmux AttachedPort route={self.route!r} on {self.path}>"

    # -- starting -------------------------------------------------------------
    def _newSocket(self) -> socket.socket:
        return socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)

    def _refused(self, exc: OSError) -> error.CannotListenError:
        return error.CannotListenError(self.path, self.route, exc)

    def startListening(self, timeout: float = 5.0) -> None:
        s = self._newSocket()
        try:
            s.settimeout(timeout)
            try:
                s.connect(self.path)
            except (FileNotFoundError, ConnectionRefusedError) as e:
                raise AttachError(e.errno, f"{self.path}: {e.strerror}") from None
            s.sendall(hello(self.route))
            check_reply(s.recv(512))
        except OSError as exc:
            s.close()
            raise self._refused(exc) from exc
        s.setblocking(False)
        self.socket = s
        self._started()

    def startListeningAsync(self, timeout: float = 5.0) -> defer.Deferred:
        s = self._newSocket()
        s.setblocking(False)
        d: defer.Deferred = defer.Deferred()
        try:
            # a local SEQPACKET connect completes at once or fails at once
            # (EAGAIN only when the daemon's backlog is full)
            s.connect(self.path)
            s.send(hello(self.route))
        except (FileNotFoundError, ConnectionRefusedError) as e:
            s.close()
            return defer.fail(AttachError(e.errno, f"{self.path}: {e.strerror}"))
        except OSError as e:
            s.close()
            return defer.fail(e)
        self.socket = s
        self._handshake = d
        self._timeoutCall = self.reactor.callLater(timeout, self._handshakeTimeout)
        self.reactor.addReader(self)
        return d

    def _handshakeTimeout(self) -> None:
        self._timeoutCall = None
        self._failHandshake(AttachError(errno.ETIMEDOUT, "udpmuxd did not answer the claim"))

    def _failHandshake(self, exc: BaseException) -> None:
        d, self._handshake = self._handshake, None
        self.reactor.removeReader(self)
        if self._timeoutCall is not None and self._timeoutCall.active():
            self._timeoutCall.cancel()
        self._timeoutCall = None
        if self.socket is not None:
            self.socket.close()
            self.socket = None
        if d is not None:
            d.errback(failure.Failure(exc))

    def _started(self) -> None:
        self.connected = True
        log.msg(f"udpmux: {self.protocol.__class__.__name__} attached to route {self.route!r}")
        self.protocol.makeConnection(self)
        if self.connected:
            self.reactor.addReader(self)

    # -- IListeningPort ---------------------------------------------------------
    def stopListening(self) -> defer.Deferred:
        """Detach (queued datagrams are sent first when the socket takes them
        at once, the rest are dropped) and stop the protocol."""
        if self.socket is not None and self._queue:
            self.doWrite()
        self._teardown()
        return defer.succeed(None)

    loseConnection = stopListening

    def getHost(self):
        host, port = self._public or ("0.0.0.0", 0)
        return (IPv6Address if ":" in host else IPv4Address)("UDP", host, port)

    # -- IUDPTransport -----------------------------------------------------------
    def write(self, datagram: bytes, addr=None) -> None:
        """Send ``datagram`` to ``addr`` from udpmuxd's shared port. Never
        blocks: a full socket queues it (up to maxQueue bytes, then drops it,
        as a full UDP socket buffer would)."""
        if addr is None:
            addr = self._connectedAddr
            if addr is None:
                raise ValueError("write() needs an address (or connect() first)")
        elif self._connectedAddr is not None and tuple(addr) != self._connectedAddr:
            raise ValueError("write() to another address on a connected transport")
        if self.socket is None or not self.connected:
            return
        msg = encode(datagram, addr, getattr(addr, "local", None))
        if not self._queue:
            try:
                self.socket.send(msg)
                return
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                if exc.errno in (errno.EPIPE, errno.ECONNRESET):
                    self.reactor.callLater(0, self.connectionLost, failure.Failure(exc))
                    return
                raise
        if self._queued + len(msg) > self.maxQueue:
            self.dropped += 1
            return
        if not self._queue:
            self.reactor.addWriter(self)
        self._queue.append(msg)
        self._queued += len(msg)

    def writeSequence(self, seq, addr=None) -> None:
        self.write(b"".join(seq), addr)

    def connect(self, host: str, port: int) -> None:
        """Talk to one peer only: write() without an address goes there and
        datagrams from other peers are not delivered (as on a UDP port)."""
        if self._connectedAddr is not None:
            raise RuntimeError("already connected, reconnecting is not supported")
        self._connectedAddr = (host, port)

    def setBroadcastAllowed(self, enabled: bool) -> None:
        if enabled:
            raise NotImplementedError("udpmuxd does not send broadcasts for attached programs")

    def getBroadcastAllowed(self) -> bool:
        return False

    # -- ISystemHandle -------------------------------------------------------------
    def getHandle(self):
        return self.socket

    # -- reactor descriptor ---------------------------------------------------------
    def fileno(self) -> int:
        return self.socket.fileno() if self.socket is not None else -1

    def logPrefix(self) -> str:
        return f"udpmux-attach({self.route})"

    def doRead(self):
        if self._handshake is not None:
            try:
                reply = self.socket.recv(512)
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as exc:
                self._failHandshake(exc)
                return None
            try:
                check_reply(reply)
            except AttachError as exc:
                self._failHandshake(exc)
                return None
            d, self._handshake = self._handshake, None
            if self._timeoutCall is not None and self._timeoutCall.active():
                self._timeoutCall.cancel()
            self._timeoutCall = None
            self.reactor.removeReader(self)
            self._started()
            d.callback(self)
            return None
        for _ in range(_READ_BATCH):
            if self.socket is None:
                return None
            try:
                msg = self.socket.recv(MAX_MSG)
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as exc:
                return failure.Failure(exc)
            if not msg:
                return error.ConnectionLost("udpmuxd closed the attachment")
            try:
                data, peer, local = decode(msg)
            except ValueError as exc:
                log.msg(f"udpmux: bad message from udpmuxd: {exc}")
                continue
            if self._connectedAddr is not None and peer != self._connectedAddr:
                continue
            self.protocol.datagramReceived(data, PeerAddress(peer[0], peer[1], local))
        return None

    def doWrite(self):
        while self._queue and self.socket is not None:
            msg = self._queue[0]
            try:
                self.socket.send(msg)
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as exc:
                if exc.errno in (errno.EPIPE, errno.ECONNRESET):
                    return failure.Failure(exc)
                log.msg(f"udpmux: datagram dropped: {exc}")
            self._queue.popleft()
            self._queued -= len(msg)
        if self.socket is not None:
            self.reactor.removeWriter(self)
        return None

    def connectionLost(self, reason) -> None:
        """The daemon went away (stopped, restarted) or the socket failed."""
        if self._handshake is not None:
            self._failHandshake(reason.value if isinstance(reason, failure.Failure) else reason)
            return
        if self.connected:
            log.msg(f"udpmux: route {self.route!r} detached: {getattr(reason, 'value', reason)}")
        self._teardown()

    def _teardown(self) -> None:
        if self.socket is None:
            return
        self.reactor.removeReader(self)
        self.reactor.removeWriter(self)
        self._queue.clear()
        self._queued = 0
        self.socket.close()
        self.socket = None
        if self.connected:
            self.connected = False
            self.protocol.doStop()
