#!/usr/bin/env python3
"""asyncio program sharing udpmuxd's port through an attach route, as server
and client at once (the Python twin of examples/attach-peer.c).

usage: attach_asyncio.py SOCKET ROUTE TAG PEER_HOST:PORT COUNT SECONDS
"""
import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import udpmux_attach  # noqa: E402


async def main(path, route, tag, peer, count, secs):
    try:
        att = await udpmux_attach.AsyncAttachment.connect(path, route)
    except udpmux_attach.AttachError as e:
        print(f"attach {route}: {e}", file=sys.stderr)
        return 77 if e.errno == 13 else 1
    print("attached", flush=True)
    served = answered = wrong = 0
    host, port = peer.rsplit(":", 1)
    peer_addr = (host.strip("[]"), int(port))

    async def asker():
        for i in range(count):
            att.send(f"{tag} ASK {i}".encode(), peer_addr)
            await asyncio.sleep(0.002)

    task = asyncio.create_task(asker())
    loop = asyncio.get_running_loop()
    end = loop.time() + secs
    while loop.time() < end and (served < count or answered < count):
        try:
            data, src, local = await asyncio.wait_for(att.recv(), max(0.01, end - loop.time()))
        except asyncio.TimeoutError:
            break
        text = data.decode(errors="replace")
        if text.startswith(f"ANS {tag}"):
            answered += 1
        elif text.startswith(f"{tag} REQ "):
            att.send(f"{tag} RSP {text[len(tag) + 5:]}".encode(), src, local)
            served += 1
        else:
            wrong += 1
            print("wrong datagram:", text[:60], file=sys.stderr)
    task.cancel()
    print(f"served={served} answered={answered} wrong={wrong}", flush=True)
    att.close()
    return 0 if served >= count and answered >= count and wrong == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) != 7:
        print(__doc__, file=sys.stderr)
        sys.exit(64)
    a = sys.argv
    sys.exit(asyncio.run(main(a[1], a[2], a[3], a[4], int(a[5]), float(a[6]))))
