"""A UDP echo for L4 tests: `python udp_echo.py ADDRESS PORT NAME` answers every datagram with
`NAME <client address>` and prints "ready" once bound."""

import socket
import sys

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    data, peer = sock.recvfrom(2048)
    sock.sendto(sys.argv[3].encode() + b" " + peer[0].encode(), peer)
