#!/usr/bin/env python3
"""A Twisted program on udpmuxd's shared port, server and client at once.

The protocol is an unchanged twisted DatagramProtocol: it answers "TAG REQ n"
with "TAG RSP n" and sends its own requests "TAG ASK n" to PEER from the same
port. Bound with reactor.listenUDP(P, ...) next to another service on P it
would fail ("Address already in use"); attached to a udpmuxd route it shares
P with every other service. The only changed line is the listen call.

usage: attach_twisted.py SOCKET ROUTE TAG PEER_HOST:PORT COUNT SECONDS [GO_FILE]
(with GO_FILE, the requests start once that file exists: a test's signal
that the peer is up)
exit: 0 all served and answered, 1 otherwise, 77 not allowed on the route
"""
import errno
import os
import sys

from twisted.internet import error, reactor, task
from twisted.internet.protocol import DatagramProtocol

try:
    import udpmux.twisted as udpmux_twisted
except ImportError:  # run from the source tree
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import udpmux.twisted as udpmux_twisted


class Node(DatagramProtocol):
    def __init__(self, tag, peer, count, go=None):
        self.tag, self.peer, self.count, self.go = tag, peer, count, go
        self.served = self.answered = self.wrong = 0
        self.asked = 0

    def startProtocol(self):
        self.loop = task.LoopingCall(self.ask)
        self.loop.start(0.002)

    def ask(self):
        if self.go and not os.path.exists(self.go):
            return
        if self.asked >= self.count:
            self.loop.stop()
            return
        self.transport.write(f"{self.tag} ASK {self.asked}".encode(), self.peer)
        self.asked += 1

    def datagramReceived(self, data, addr):
        text = data.decode(errors="replace")
        if text.startswith(f"ANS {self.tag} "):
            self.answered += 1
        elif text.startswith(f"{self.tag} REQ "):
            self.transport.write(f"{self.tag} RSP {text[len(self.tag) + 5:]}".encode(), addr)
            self.served += 1
        else:
            self.wrong += 1
            print("wrong datagram:", text[:60], file=sys.stderr)
        if self.served >= self.count and self.answered >= self.count and reactor.running:
            reactor.stop()


def main(path, route, tag, peer, count, secs, go=None):
    host, port = peer.rsplit(":", 1)
    node = Node(tag, (host.strip("[]"), int(port)), count, go)
    try:
        # instead of: reactor.listenUDP(PORT, node)
        port_ = udpmux_twisted.listenAttached(route, node, path=path)
    except error.CannotListenError as e:
        print(f"attach {route}: {e.socketError}", file=sys.stderr)
        return 77 if getattr(e.socketError, "errno", None) == errno.EACCES else 1
    print("attached", flush=True)
    reactor.callLater(secs, reactor.stop)
    reactor.run()
    print(f"served={node.served} answered={node.answered} wrong={node.wrong}", flush=True)
    port_.stopListening()
    ok = node.served >= count and node.answered >= count and node.wrong == 0
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) not in (7, 8):
        print(__doc__, file=sys.stderr)
        sys.exit(64)
    a = sys.argv
    sys.exit(main(a[1], a[2], a[3], a[4], int(a[5]), float(a[6]), a[7] if len(a) > 7 else None))
