#!/usr/bin/python3
"""Helper for bittorrent.sh: two python3-libtorrent sessions on 127.0.0.1.

Session A (port 6881) seeds a small torrent, session B (port 6891) fetches it
over uTP only (TCP disabled), after learning A from a UDP tracker on
127.0.0.1:6970 (BEP 15). The two sessions also talk DHT (BEP 5) to each
other. The tracker is opentracker, started by bittorrent.sh; with the
argument --own-tracker a minimal BEP 15 responder written here is used
instead (for machines without opentracker). Everything is bounded: at most ~12 s of wall time.
"""
import os
import random
import socket
import struct
import sys
import threading
import time

import libtorrent as lt

WORK = sys.argv[1]
OWN_TRACKER = "--own-tracker" in sys.argv[2:]
TRACKER = ("127.0.0.1", 6970)
PROTO_ID = 0x41727101980


def tracker(stop, seeder_port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(TRACKER)
    s.settimeout(0.2)
    conn_id = random.getrandbits(64)
    end = time.monotonic() + 15
    while not stop.is_set() and time.monotonic() < end:
        try:
            data, peer = s.recvfrom(2048)
        except socket.timeout:
            continue
        if len(data) < 16:
            continue
        cid, action, tid = struct.unpack(">QII", data[:16])
        if action == 0 and cid == PROTO_ID:
            s.sendto(struct.pack(">IIQ", 0, tid, conn_id), peer)
        elif action == 1 and cid == conn_id and len(data) >= 98:
            peers = b""
            if peer[1] != seeder_port:
                peers = socket.inet_aton("127.0.0.1") + struct.pack(">H", seeder_port)
            s.sendto(struct.pack(">IIIII", 1, tid, 60, 0, 1) + peers, peer)
        elif action == 2 and cid == conn_id:
            s.sendto(struct.pack(">IIIII", 2, tid, 1, 0, 0), peer)
    s.close()


def session(port, nodes):
    pack = {
        "listen_interfaces": "127.0.0.1:%d" % port,
        "enable_outgoing_tcp": False,
        "enable_incoming_tcp": False,
        "enable_outgoing_utp": True,
        "enable_incoming_utp": True,
        "enable_dht": True,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "dht_bootstrap_nodes": nodes,
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_enforce_node_id": False,
        "allow_multiple_connections_per_ip": True,
        "announce_to_all_trackers": True,
        "alert_mask": 0,
    }
    return lt.session(pack)


def make_torrent():
    os.makedirs(WORK + "/a", exist_ok=True)
    os.makedirs(WORK + "/b", exist_ok=True)
    with open(WORK + "/a/payload.bin", "wb") as f:
        f.write(bytes((i * 7) & 0xFF for i in range(48 * 1024)))
    fs = lt.file_storage()
    lt.add_files(fs, WORK + "/a/payload.bin")
    ct = lt.create_torrent(fs, 16 * 1024)
    ct.add_tracker("udp://%s:%d/announce" % TRACKER)
    lt.set_piece_hashes(ct, WORK + "/a")
    return lt.torrent_info(ct.generate())


def main():
    ti = make_torrent()
    if "--print-infohash" in sys.argv[2:]:
        # deterministic (fixed payload, piece size and name): for the
        # tracker's whitelist
        # libtorrent 2 makes hybrid v1/v2 torrents and announces both the v1
        # hash and the v2 hash truncated to 20 bytes
        ih = ti.info_hashes()
        print(str(ih.v1))
        if ih.has_v2():
            print(str(ih.v2)[:40])
        return 0
    stop = threading.Event()
    if OWN_TRACKER:
        th = threading.Thread(target=tracker, args=(stop, 6881), daemon=True)
        th.start()
    time.sleep(0.2)

    a = session(6881, "127.0.0.1:6891")
    b = session(6891, "127.0.0.1:6881")
    ha = a.add_torrent({"ti": ti, "save_path": WORK + "/a", "flags": lt.torrent_flags.seed_mode})
    time.sleep(1.0)
    hb = b.add_torrent({"ti": ti, "save_path": WORK + "/b"})
    b.add_dht_node(("127.0.0.1", 6881))
    a.add_dht_node(("127.0.0.1", 6891))
    end = time.monotonic() + 8
    while time.monotonic() < end:
        if hb.status().is_seeding:
            break
        time.sleep(0.2)
    ok = hb.status().is_seeding
    # a little more DHT chatter (pings, get_peers) before shutting down
    b.dht_get_peers(ti.info_hash())
    time.sleep(1.0)
    stop.set()
    del ha, hb, a, b
    print("download complete" if ok else "download INCOMPLETE", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
