import os
import re
import unittest

import udpmux
from udpmux import PeerAddress, _proto


class ProtoTest(unittest.TestCase):
    def test_roundtrip(self):
        for peer, local in [
            (("192.0.2.1", 53), None),
            (("192.0.2.1", 53), ("198.51.100.2", 443)),
            (("2001:db8::1", 0), ("2001:db8::2", 65535)),
            (("::ffff:192.0.2.9", 7), None),
        ]:
            msg = _proto.encode(b"payload", peer, local)
            data, p, l = _proto.decode(msg)
            self.assertEqual(data, b"payload")
            self.assertEqual(p[1], peer[1])
            self.assertEqual(l, local)
        # a v4-mapped address is sent as IPv4
        self.assertEqual(_proto.decode(_proto.encode(b"", ("::ffff:192.0.2.9", 7)))[1], ("192.0.2.9", 7))

    def test_layout(self):
        # docs/internals/attach.md: 'D' flags peer_port local_port 0 peer(16) local(16)
        msg = _proto.encode(b"ab", ("192.0.2.1", 0x1234), ("192.0.2.2", 0x0102))
        self.assertEqual(len(msg), 42)
        self.assertEqual(msg[:8], b"D\x02\x12\x34\x01\x02\x00\x00")
        self.assertEqual(msg[8:12], bytes([192, 0, 2, 1]))
        self.assertEqual(msg[24:28], bytes([192, 0, 2, 2]))

    def test_mixed_family_local_is_left_out(self):
        _, _, local = _proto.decode(_proto.encode(b"", ("192.0.2.1", 1), ("2001:db8::1", 2)))
        self.assertIsNone(local)

    def test_bad_input(self):
        with self.assertRaises(ValueError):
            _proto.decode(b"D" * 10)
        with self.assertRaises(ValueError):
            _proto.decode(b"X" + b"\0" * 40)
        with self.assertRaises(ValueError):
            _proto.encode(b"", ("192.0.2.1", 70000))
        with self.assertRaises(ValueError):
            _proto.encode(b"", ("not-an-ip", 1))
        with self.assertRaises(ValueError):
            _proto.hello("")
        with self.assertRaises(ValueError):
            _proto.hello("x" * 256)

    def test_peer_address_is_a_tuple(self):
        a = PeerAddress("192.0.2.1", 5, ("198.51.100.1", 443))
        host, port = a
        self.assertEqual((host, port), ("192.0.2.1", 5))
        self.assertEqual(a, ("192.0.2.1", 5))
        self.assertEqual({("192.0.2.1", 5): 1}[a], 1)
        self.assertEqual(a.local, ("198.51.100.1", 443))

    def test_version_matches_the_project(self):
        want = os.environ.get("UMX_VERSION")
        if not want:
            self.skipTest("UMX_VERSION not set (meson test sets it)")
        self.assertEqual(udpmux.__version__, want)
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with open(os.path.join(here, "pyproject.toml")) as f:
            self.assertRegex(f.read(), r'(?m)^version = "%s"$' % re.escape(want))
        # the Debian packages carry the same version (debian/changelog)
        changelog = os.path.join(os.path.dirname(here), "debian", "changelog")
        if os.path.exists(changelog):
            with open(changelog) as f:
                self.assertRegex(f.readline(), r"^udpmux \(%s(-[^)]*)?\) " % re.escape(want))


if __name__ == "__main__":
    unittest.main()
