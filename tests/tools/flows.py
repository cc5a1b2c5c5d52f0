"""Fixed client flows for integration tests: which real server answers each source port.

Runs inside the client's namespace. For each source port of ``--ports FIRST-LAST`` it binds
``--source:port``, connects to ``--address:--port``, sends one keep-alive GET / (realserver.py
answers with its name) and closes with a reset (SO_LINGER 0: no TIME_WAIT, so the same
four-tuple can be used again at once). Prints one JSON object, source port -> server name
("" when the flow got no answer: ``errors`` says why). Standard library only.

    python tests/tools/flows.py --source 198.18.0.10 --address 198.18.0.101 --port 8080 \
        --ports 41000-41039
"""

from __future__ import annotations

import argparse
import json
import socket
import struct


def served(source: str, port: int, address: str, dport: int, timeout: float) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.settimeout(timeout)
        s.bind((source, port))
        s.connect((address, dport))
        s.sendall(f"GET / HTTP/1.1\r\nHost: {address}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("closed before the answer's head")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = s.recv(4096)
            if not chunk:
                break
            body += chunk
        return body.decode().strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--ports", required=True, help="FIRST-LAST source ports")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()
    first, last = (int(part) for part in args.ports.split("-"))
    servers: dict[str, str] = {}
    errors: dict[str, str] = {}
    for port in range(first, last + 1):
        try:
            servers[str(port)] = served(args.source, port, args.address, args.port, args.timeout)
        except OSError as exc:
            servers[str(port)] = ""
            errors[str(port)] = str(exc) or type(exc).__name__
    print(json.dumps({"servers": servers, "errors": errors}))


if __name__ == "__main__":
    main()
