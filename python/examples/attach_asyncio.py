#!/usr/bin/env python3
"""An asyncio program on udpmuxd's shared port, server and client at once
(the Python twin of examples/attach-peer.c).

It claims route ROUTE; answers every "TAG REQ n" with "TAG RSP n" (server
role) and sends COUNT requests "TAG ASK n" to PEER from the same shared port,
expecting "ANS TAG n" back (client role). The protocol below is a plain
asyncio.DatagramProtocol: only the line creating the endpoint differs from a
program that binds its own UDP port.

usage: attach_asyncio.py SOCKET ROUTE TAG PEER_HOST:PORT COUNT SECONDS [GO_FILE]
(with GO_FILE, the requests start once that file exists: a test's signal
that the peer is up)
exit: 0 all served and answered, 1 otherwise, 77 not allowed on the route
"""
import asyncio
import errno
import os
import sys

try:
    import udpmux
except ImportError:  # run from the source tree
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import udpmux


class Node(asyncio.DatagramProtocol):
    def __init__(self, tag, count):
        self.tag, self.count = tag, count
        self.served = self.answered = self.wrong = 0
        self.done = asyncio.get_running_loop().create_future()
        self.can_write = asyncio.Event()
        self.can_write.set()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        text = data.decode(errors="replace")
        if text.startswith(f"ANS {self.tag} "):
            self.answered += 1
        elif text.startswith(f"{self.tag} REQ "):
            # addr carries the local address the peer used: the answer
            # leaves from it
            self.transport.sendto(f"{self.tag} RSP {text[len(self.tag) + 5:]}".encode(), addr)
            self.served += 1
        else:
            self.wrong += 1
            print("wrong datagram:", text[:60], file=sys.stderr)
        if self.served >= self.count and self.answered >= self.count and not self.done.done():
            self.done.set_result(None)

    # flow control: stop asking while the transport's queue is full
    def pause_writing(self):
        self.can_write.clear()

    def resume_writing(self):
        self.can_write.set()

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_exception(exc or ConnectionResetError("detached"))


async def main(path, route, tag, peer, count, secs, go=None):
    loop = asyncio.get_running_loop()
    try:
        transport, node = await udpmux.create_datagram_endpoint(
            lambda: Node(tag, count), route, path=path)
    except udpmux.AttachError as e:
        print(f"attach {route}: {e}", file=sys.stderr)
        return 77 if e.errno == errno.EACCES else 1
    print("attached", flush=True)
    host, port = peer.rsplit(":", 1)
    peer_addr = (host.strip("[]"), int(port))

    async def asker():
        while go and not os.path.exists(go):
            await asyncio.sleep(0.05)
        for i in range(count):
            await node.can_write.wait()
            transport.sendto(f"{tag} ASK {i}".encode(), peer_addr)
            await asyncio.sleep(0.002)

    task = asyncio.create_task(asker())
    try:
        await asyncio.wait_for(node.done, secs)
    except (asyncio.TimeoutError, ConnectionError):
        pass
    task.cancel()
    print(f"served={node.served} answered={node.answered} wrong={node.wrong}", flush=True)
    transport.close()
    await asyncio.sleep(0)
    ok = node.served >= count and node.answered >= count and node.wrong == 0
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) not in (7, 8):
        print(__doc__, file=sys.stderr)
        sys.exit(64)
    a = sys.argv
    sys.exit(asyncio.run(main(a[1], a[2], a[3], a[4], int(a[5]), float(a[6]), a[7] if len(a) > 7 else None)))
