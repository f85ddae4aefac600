"""udpmux.aio against a real listening SEQPACKET socket that speaks the
daemon's side of the attach protocol (the daemon itself is exercised by
tests/integration/python-attach.sh)."""

import asyncio
import errno
import os
import socket
import tempfile
import threading
import unittest

import udpmux
from udpmux import _proto


class FakeDaemon:
    """Accepts one attachment on a real AF_UNIX SEQPACKET socket and answers
    HELLO with OK (or ERR errno); then the test drives the accepted end."""

    def __init__(self, reply_errno=0, answer=True):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "attach.sock")
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.lsock.bind(self.path)
        self.lsock.listen(4)
        self.conn = None
        self.hello = None
        self.reply_errno, self.answer = reply_errno, answer
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.conn, _ = self.lsock.accept()
        self.hello = self.conn.recv(512)
        if not self.answer:
            return
        if self.reply_errno:
            self.conn.send(b"E\x01" + self.reply_errno.to_bytes(2, "big") + b"refused")
            self.conn.close()
        else:
            self.conn.send(b"O\x01\x00\x00ok")

    def close(self):
        if self.conn:
            self.conn.close()
        self.lsock.close()
        self.dir.cleanup()


class Recorder(asyncio.DatagramProtocol):
    def __init__(self):
        self.got, self.events = [], []
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, t):
        self.events.append("made")

    def datagram_received(self, data, addr):
        self.got.append((data, addr))

    def error_received(self, exc):
        self.events.append(("error", exc.errno))

    def pause_writing(self):
        self.events.append("pause")

    def resume_writing(self):
        self.events.append("resume")

    def connection_lost(self, exc):
        self.lost.set_result(exc)


class AioTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.d = FakeDaemon()

    async def asyncTearDown(self):
        self.d.close()

    async def attach(self):
        return await udpmux.create_datagram_endpoint(Recorder, "dht", path=self.d.path)

    async def test_hello_and_datagrams_both_ways(self):
        t, p = await self.attach()
        self.assertEqual(self.d.hello, _proto.hello("dht"))
        await asyncio.sleep(0)
        self.assertEqual(p.events, ["made"])
        self.d.conn.send(_proto.encode(b"req", ("192.0.2.1", 999), ("198.51.100.1", 443)))
        for _ in range(100):
            if p.got:
                break
            await asyncio.sleep(0.01)
        data, addr = p.got[0]
        self.assertEqual((data, addr), (b"req", ("192.0.2.1", 999)))
        self.assertEqual(addr.local, ("198.51.100.1", 443))
        # an answer to addr leaves from the local address the peer used
        t.sendto(b"rsp", addr)
        self.assertEqual(_proto.decode(self.d.conn.recv(70000)),
                         (b"rsp", ("192.0.2.1", 999), ("198.51.100.1", 443)))
        # a plain tuple: no local address, IPv6 peer
        t.sendto(b"", ("2001:db8::1", 53))
        self.assertEqual(_proto.decode(self.d.conn.recv(70000)), (b"", ("2001:db8::1", 53), None))
        self.assertEqual(t.get_extra_info("route"), "dht")
        t.close()
        self.assertIsNone(await asyncio.wait_for(p.lost, 2))
        self.assertTrue(t.is_closing())

    async def test_flow_control_pause_resume_and_cap(self):
        t, p = await self.attach()
        self.d.conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        t.set_write_buffer_limits(high=8192, low=1024)
        payload = b"x" * 1000
        sent = 0
        loop = asyncio.get_running_loop()
        # the fake daemon reads nothing: the socket fills, then the queue
        while "pause" not in p.events and sent < 100000:
            t.sendto(payload, ("192.0.2.1", 1))
            sent += 1
        self.assertIn("pause", p.events, "pause_writing() never called")
        self.assertGreater(t.get_write_buffer_size(), 8192)
        t.max_buffer_size = 16384
        for _ in range(40):
            t.sendto(payload, ("192.0.2.1", 1))
        self.assertIn(("error", errno.ENOBUFS), p.events)
        self.assertLessEqual(t.get_write_buffer_size(), 16384)
        # the daemon reads: the queue drains, resume_writing() follows
        self.d.conn.setblocking(False)
        received = 0
        deadline = loop.time() + 5
        while "resume" not in p.events or t.get_write_buffer_size():
            try:
                while True:
                    self.d.conn.recv(70000)
                    received += 1
            except BlockingIOError:
                pass
            await asyncio.sleep(0.005)
            self.assertLess(loop.time(), deadline, "queue never drained")
        try:  # what the socket still holds
            while True:
                self.d.conn.recv(70000)
                received += 1
        except BlockingIOError:
            pass
        # every datagram arrived once, or was dropped and reported
        self.assertEqual(received + t.dropped, sent + 40)
        self.assertLess(p.events.index("pause"), p.events.index("resume"))
        t.abort()
        await asyncio.wait_for(p.lost, 2)

    async def test_daemon_gone(self):
        t, p = await self.attach()
        self.d.conn.close()
        exc = await asyncio.wait_for(p.lost, 2)
        self.assertIsInstance(exc, ConnectionResetError)

    async def test_pause_reading(self):
        t, p = await self.attach()
        await asyncio.sleep(0)
        t.pause_reading()
        self.d.conn.send(_proto.encode(b"a", ("192.0.2.1", 1)))
        await asyncio.sleep(0.05)
        self.assertEqual(p.got, [])
        t.resume_reading()
        for _ in range(100):
            if p.got:
                break
            await asyncio.sleep(0.01)
        self.assertEqual(p.got[0][0], b"a")
        t.close()

    async def test_sendto_needs_address(self):
        t, p = await self.attach()
        with self.assertRaises(ValueError):
            t.sendto(b"x")
        with self.assertRaises(ValueError):
            t.sendto(b"x" * 65536, ("192.0.2.1", 1))
        t.close()


class RefusalTest(unittest.IsolatedAsyncioTestCase):
    async def test_refused(self):
        for code in (errno.EACCES, errno.EBUSY, errno.ENOENT):
            d = FakeDaemon(reply_errno=code)
            try:
                with self.assertRaises(udpmux.AttachError) as cm:
                    await udpmux.create_datagram_endpoint(Recorder, "dht", path=d.path)
                self.assertEqual(cm.exception.errno, code)
            finally:
                d.close()

    async def test_no_daemon(self):
        with self.assertRaises(udpmux.AttachError) as cm:
            await udpmux.create_datagram_endpoint(Recorder, "dht", path="/nonexistent/attach.sock")
        self.assertEqual(cm.exception.errno, errno.ENOENT)

    async def test_silent_daemon_times_out_without_blocking(self):
        d = FakeDaemon(answer=False)
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        tick = asyncio.create_task(ticker())
        try:
            with self.assertRaises(asyncio.TimeoutError):
                await udpmux.create_datagram_endpoint(Recorder, "dht", path=d.path, timeout=0.3)
        finally:
            tick.cancel()
            d.close()
        # the loop kept running while the endpoint waited
        self.assertGreater(ticks, 10)


if __name__ == "__main__":
    unittest.main()
