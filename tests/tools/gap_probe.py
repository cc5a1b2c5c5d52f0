"""Measures a service's gap during a failover: a new connection every few milliseconds.

Runs inside the client namespace (standard library only). Every ``--every`` seconds (10 ms by
default) it opens a NEW TCP connection to the URL's host and port in a thread of its own,
sends one HTTP/1.0 GET and reads the answer; it stops when ``--stop-file`` exists (or after
``--duration``) and prints ONE JSON object::

    {"attempts": 812, "answered": 790, "failed": 22,
     "gap": 0.71,                 # the longest time between two consecutive answers (s)
     "gap_from": 3.12, "gap_to": 3.83,   # when (s since start) it began and ended
     "servers": {"rs1": 400, "rs2": 390}}

An answer counts when it is an HTTP 200 with an ``X-Server`` header (tests/tools/realserver.py);
its time is when the answer arrived. A connection lost during the failover may still be
answered later (a SYN retransmitted after 1 s): the gap is measured between answers, so it is
the time clients could get no answer at all, whatever the retries. ``--progress-file`` holds
the number of answers so far, so a test can wait for traffic instead of sleeping.
``--retries N`` retries a failed request up to N times on a new connection, as a browser retries
an idempotent request whose connection was reset: ``failed`` then counts the requests that
failed every time, ``retried`` those that needed a retry.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import threading
import time
from urllib.parse import urlsplit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--every", type=float, default=0.01)
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--stop-file")
    parser.add_argument("--progress-file")
    parser.add_argument("--retries", type=int, default=0)
    args = parser.parse_args()
    parts = urlsplit(args.url)
    host, port, path = parts.hostname or "", parts.port or 80, parts.path or "/"
    request = f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode()
    lock = threading.Lock()
    answers: list[float] = []
    servers: dict[str, int] = {}
    failed = 0
    retried = 0
    start = time.monotonic()

    def attempt() -> None:
        nonlocal failed, retried
        server, tries = once(), 0
        while server is None and tries < args.retries:
            tries += 1
            server = once()
        now = time.monotonic() - start
        with lock:
            if server is None:
                failed += 1
            else:
                answers.append(now)
                servers[server] = servers.get(server, 0) + 1
                retried += tries > 0

    def once() -> str | None:
        server = None
        try:
            with socket.create_connection((host, port), timeout=args.timeout) as conn:
                conn.sendall(request)
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
            head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")
            if head and " 200 " in head[0] + " ":
                for line in head[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "x-server":
                        server = value.strip()
        except OSError:
            server = None
        return server

    threads: list[threading.Thread] = []
    attempts = 0
    next_at = time.monotonic()
    while time.monotonic() - start < args.duration:
        if args.stop_file and os.path.exists(args.stop_file):
            break
        thread = threading.Thread(target=attempt, daemon=True)
        thread.start()
        threads.append(thread)
        attempts += 1
        if args.progress_file and attempts % 10 == 0:
            with lock:
                count = len(answers)
            tmp = args.progress_file + ".tmp"
            with open(tmp, "w") as file:
                file.write(str(count))
            os.replace(tmp, args.progress_file)
        threads = [t for t in threads if t.is_alive()]
        next_at += args.every
        time.sleep(max(0.0, next_at - time.monotonic()))
    for thread in threads:
        thread.join(args.timeout + 1)
    ordered = sorted(answers)
    gap, gap_from, gap_to = 0.0, 0.0, 0.0
    for before, after in itertools.pairwise(ordered):
        if after - before > gap:
            gap, gap_from, gap_to = after - before, before, after
    print(
        json.dumps(
            {
                "attempts": attempts,
                "answered": len(ordered),
                "failed": failed,
                "retried": retried,
                "gap": round(gap, 4),
                "gap_from": round(gap_from, 4),
                "gap_to": round(gap_to, 4),
                "servers": servers,
            }
        )
    )


if __name__ == "__main__":
    main()
