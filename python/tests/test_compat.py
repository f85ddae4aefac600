"""python/udpmux_attach.py, the former single-file client, on the package."""

import os
import sys
import unittest

from test_aio import FakeDaemon

from udpmux import _proto

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import udpmux_attach  # noqa: E402


class CompatTest(unittest.TestCase):
    def test_old_blocking_api(self):
        d = FakeDaemon()
        self.addCleanup(d.close)
        with udpmux_attach.Attachment(d.path, "dht") as att:  # (path, route)
            d.thread.join(2)
            self.assertEqual(d.hello, _proto.hello("dht"))
            d.conn.send(_proto.encode(b"q", ("192.0.2.1", 9), ("198.51.100.1", 443)))
            data, peer, local = att.recv()
            self.assertEqual((data, peer, local), (b"q", ("192.0.2.1", 9), ("198.51.100.1", 443)))
            att.send(b"a", peer, local)
            self.assertEqual(_proto.decode(d.conn.recv(70000)), (b"a", peer, local))


if __name__ == "__main__":
    unittest.main()
