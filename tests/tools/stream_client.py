"""One long-lived TCP connection carrying data, for failover tests: HTTP/1.1 keep-alive requests
on a single connection, one every ``--interval`` seconds, until ``--stop-file`` exists.

Prints "ready" once the first answer came (and writes the count of answers to
``--progress-file`` after each), then at the end one JSON line: the requests
answered, the servers that answered (``X-Server``), the longest wait between two answers
(seconds), and the error that ended the connection (null if the stop file did). A connection
is never opened twice: an error ends the run. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path


def request(conn: socket.socket, reader: socket.SocketIO, host: str) -> str:
    conn.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    server = ""
    length = 0
    file = reader
    while True:
        line = file.readline()
        if not line:
            raise ConnectionError("the connection was closed")
        text = line.decode().strip()
        if not text:
            break
        name, _, value = text.partition(":")
        if name.lower() == "x-server":
            server = value.strip()
        if name.lower() == "content-length":
            length = int(value)
    body = b""
    while len(body) < length:
        chunk = file.read(length - len(body))
        if not chunk:
            raise ConnectionError("the connection was closed mid-body")
        body += chunk
    return server


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--progress-file", required=True)
    args = parser.parse_args()
    stop = Path(args.stop_file)
    progress = Path(args.progress_file)
    answered = 0
    servers: set[str] = set()
    longest = 0.0
    error = None
    conn = socket.create_connection((args.address, args.port), timeout=10)
    reader = conn.makefile("rb")
    last = time.monotonic()
    try:
        while not stop.exists():
            servers.add(request(conn, reader, args.address))  # type: ignore[arg-type]
            now = time.monotonic()
            if answered:
                longest = max(longest, now - last)
            else:
                print("ready", flush=True)
            last = now
            answered += 1
            progress.write_text(str(answered))
            time.sleep(args.interval)
    except (OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    print(json.dumps({"answered": answered, "servers": sorted(servers), "longest_s": longest,
                      "error": error}), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
