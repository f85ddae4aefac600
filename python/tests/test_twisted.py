"""udpmux.twisted on a real reactor against the fake daemon of test_aio."""

import errno
import unittest

try:
    from twisted.internet import defer, error, interfaces
    from twisted.internet.protocol import DatagramProtocol
    from twisted.trial import unittest as trial  # noqa: F401
    from zope.interface.verify import verifyObject
except ImportError:  # pragma: no cover
    DatagramProtocol = None

from test_aio import FakeDaemon

from udpmux import _proto


@unittest.skipIf(DatagramProtocol is None, "python3-twisted missing")
class TwistedTest(unittest.TestCase):
    def run_reactor(self, fn, secs=3):
        from twisted.internet import reactor

        out = {}

        def go():
            d = defer.maybeDeferred(fn, reactor, out)
            d.addErrback(lambda f: out.setdefault("failure", f))
            d.addBoth(lambda _: reactor.stop())

        reactor.callWhenRunning(go)
        reactor.callLater(secs, reactor.stop)
        reactor.run(installSignalHandlers=False)
        if "failure" in out:
            out["failure"].raiseException()
        return out

    def test_listen_write_receive_and_interfaces(self):
        import udpmux.twisted as ut

        d = FakeDaemon()
        self.addCleanup(d.close)

        class P(DatagramProtocol):
            got = []

            def datagramReceived(self, data, addr):
                self.got.append((data, addr))
                self.transport.write(b"rsp", addr)

        @defer.inlineCallbacks
        def body(reactor, out):
            proto = P()
            port = ut.listenAttached("tw", proto, path=d.path, reactor=reactor)
            verifyObject(interfaces.IListeningPort, port)
            verifyObject(interfaces.IUDPTransport, port)
            self.assertIs(proto.transport, port)
            d.conn.send(_proto.encode(b"req", ("192.0.2.1", 7), ("198.51.100.1", 443)))
            for _ in range(100):
                if proto.got:
                    break
                yield _sleep(reactor, 0.01)
            out["got"] = proto.got
            out["answer"] = _proto.decode(d.conn.recv(70000))
            yield port.stopListening()
            out["stopped"] = proto.transport is None

        out = self.run_reactor(body)
        self.assertEqual(out["got"], [(b"req", ("192.0.2.1", 7))])
        self.assertEqual(out["answer"], (b"rsp", ("192.0.2.1", 7), ("198.51.100.1", 443)))
        self.assertTrue(out["stopped"])

    def test_refusal_is_cannot_listen(self):
        import udpmux.twisted as ut

        d = FakeDaemon(reply_errno=errno.EBUSY)
        self.addCleanup(d.close)
        with self.assertRaises(error.CannotListenError) as cm:
            ut.listenAttached("tw", DatagramProtocol(), path=d.path)
        self.assertEqual(cm.exception.socketError.errno, errno.EBUSY)


def _sleep(reactor, secs):
    d = defer.Deferred()
    reactor.callLater(secs, d.callback, None)
    return d


if __name__ == "__main__":
    unittest.main()
