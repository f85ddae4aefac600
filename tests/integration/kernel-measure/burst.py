import socket, sys, time
to = (sys.argv[1], int(sys.argv[2])); bind = sys.argv[3]; n = int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((bind, 0)); s.settimeout(2)
for i in range(n):
    s.sendto(b"seq=%d" % i, to)
got = []
try:
    while len(got) < n:
        d, _ = s.recvfrom(2048); got.append(int(d.decode().rsplit("seq=", 1)[1]))
except socket.timeout:
    pass
inv = [i for i in range(1, len(got)) if got[i] < got[i-1]]
print("answered %d of %d, first answer seq=%d, inversions at %s" % (len(got), n, got[0], [(got[i-1], got[i]) for i in inv][:5]))
