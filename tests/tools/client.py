"""A traffic client for integration tests: sends requests, prints ONE JSON object.

Runs inside the client namespace (`ip netns exec <client> python tests/tools/client.py ...`),
standard library only (http.client, socket, threads), so any python can run it.

HTTP:  --url http://198.18.0.100/ --requests 400 [--concurrency 4] [--keepalive]
       [--source 198.18.0.21 --source 198.18.0.22] [--header "Host: x"] [--cookies]
TCP:   --tcp 198.18.0.100:25 --requests 50   (sends a line, the answer's first word names
       the server: realserver.py --mode tcp-echo)
Load:  --duration 30 [--stop-file PATH] [--rate 100]  (stops at whichever limit comes first)
       [--progress-file PATH]  (the number of requests answered so far, rewritten as it grows,
       so a test can wait for traffic instead of sleeping)

Output (always, also when every request failed)::

    {"mode": "http", "requests": 400, "ok": 400, "failures": 0,
     "counts": {"rs1": 134, "rs2": 133, "rs3": 133},   # successful answers per X-Server
     "statuses": {"200": 400},
     "per_source": {"198.18.0.21": {"counts": {...}, "failures": 0}},   # with --source
     "seen_clients": {"198.18.0.10": 400},      # X-Client-Address: the peer the server saw
     "seen_forwarded_for": {"198.18.0.10": 400},    # X-Seen-Forwarded-For
     "errors": [{"t": 0.12, "source": null, "error": "ConnectionRefusedError: ..."}],  # 10
     "error_kinds": {"ConnectionRefusedError": 1}, "stale_retries": 0,
     "elapsed": 0.8, "rate": 500.0, "latency_ms": {"p50": .., "p90": .., "p99": .., "max": ..}}

Every failure counts: refused, reset, timeout, empty or broken response, any non-2xx status.
One exception, as RFC 9112 section 9.3.1 allows a client: with --keepalive, a request on a
*reused* connection that the server had already closed (reset or no byte of answer) is
retried once on a new connection and counted in `stale_retries`, not in `failures`;
--no-retry-stale counts it as a failure instead.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import ssl
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

MAX_ERRORS_SHOWN = 10


class StaleConnection(Exception):
    """A reused keep-alive connection was closed by the server before it answered."""


@dataclass
class Outcome:
    """One request's result: `server` on success, else `error`."""

    server: str | None = None
    status: int | None = None
    error: str | None = None
    seen_client: str | None = None
    seen_forwarded_for: str | None = None


@dataclass
class Results:
    """Everything counted so far, shared by the worker threads under `lock`."""

    sources: list[str]
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = field(default_factory=time.monotonic)
    issued: int = 0
    ok: int = 0
    failures: int = 0
    stale_retries: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    seen_clients: Counter[str] = field(default_factory=Counter)
    seen_forwarded_for: Counter[str] = field(default_factory=Counter)
    error_kinds: Counter[str] = field(default_factory=Counter)
    errors: list[dict[str, Any]] = field(default_factory=list)
    per_source: dict[str, dict[str, Any]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    def record(self, source: str | None, outcome: Outcome, latency: float) -> None:
        with self.lock:
            self.latencies.append(latency)
            if outcome.status is not None:
                self.statuses[str(outcome.status)] += 1
            if outcome.seen_client:
                self.seen_clients[outcome.seen_client] += 1
            if outcome.seen_forwarded_for:
                self.seen_forwarded_for[outcome.seen_forwarded_for] += 1
            per_source = None
            if source is not None:
                per_source = self.per_source.setdefault(
                    source, {"counts": Counter(), "failures": 0}
                )
            if outcome.error is None and outcome.server is not None:
                self.ok += 1
                self.counts[outcome.server] += 1
                if per_source is not None:
                    per_source["counts"][outcome.server] += 1
                return
            self.failures += 1
            error = outcome.error or "no answer"
            self.error_kinds[error.split(":", 1)[0]] += 1
            if per_source is not None:
                per_source["failures"] += 1
            if len(self.errors) < MAX_ERRORS_SHOWN:
                elapsed = round(time.monotonic() - self.started, 3)
                self.errors.append({"t": elapsed, "source": source, "error": error})

    def report(self, mode: str, target: str) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 3) if lat else None

        return {
            "mode": mode,
            "target": target,
            "requests": self.ok + self.failures,
            "ok": self.ok,
            "failures": self.failures,
            "counts": dict(sorted(self.counts.items())),
            "statuses": dict(self.statuses),
            "per_source": {
                source: {"counts": dict(sorted(v["counts"].items())), "failures": v["failures"]}
                for source, v in sorted(self.per_source.items())
            },
            "seen_clients": dict(self.seen_clients),
            "seen_forwarded_for": dict(self.seen_forwarded_for),
            "errors": self.errors,
            "error_kinds": dict(self.error_kinds),
            "stale_retries": self.stale_retries,
            "elapsed": round(elapsed, 3),
            "rate": round((self.ok + self.failures) / elapsed, 1) if elapsed > 0 else None,
            "latency_ms": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": pct(1)},
        }


def describe(exc: BaseException) -> str:
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"


class Scheduler:
    """Hands out request numbers until a limit is hit; paces them with --rate."""

    def __init__(self, args: argparse.Namespace, results: Results) -> None:
        self.args = args
        self.results = results
        self.lock = threading.Lock()
        self.deadline = (
            results.started + args.duration if args.duration is not None else float("inf")
        )
        self.limit = args.requests
        if self.limit is None and args.duration is None and args.stop_file is None:
            self.limit = 1

    def next(self) -> int | None:
        with self.lock:
            number = self.results.issued
            if self.limit is not None and number >= self.limit:
                return None
            self.results.issued += 1
            slot = self.results.started + number / self.args.rate if self.args.rate else 0.0
        now = time.monotonic()
        if slot > now:
            time.sleep(slot - now)
            now = time.monotonic()
        if now >= self.deadline:
            return None
        if self.args.stop_file and os.path.exists(self.args.stop_file):
            return None
        return number


class HttpWorker:
    """One thread's HTTP connections (one per source address) and cookie jar."""

    def __init__(self, args: argparse.Namespace, results: Results) -> None:
        self.args = args
        self.results = results
        url = urlsplit(args.url)
        self.https = url.scheme == "https"
        self.host = url.hostname or ""
        self.port = url.port or (443 if self.https else 80)
        self.path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self.headers: dict[str, str] = {}
        for header in args.header:
            name, _, value = header.partition(":")
            self.headers[name.strip()] = value.strip()
        if not args.keepalive:
            self.headers["Connection"] = "close"
        self.cookies: dict[str, str] = {}
        self.connections: dict[str | None, http.client.HTTPConnection] = {}
        self.tls = None
        if self.https:
            self.tls = ssl.create_default_context(cafile=args.cacert)
            if args.insecure:
                self.tls.check_hostname = False
                self.tls.verify_mode = ssl.CERT_NONE

    def connect(self, source: str | None) -> http.client.HTTPConnection:
        source_address = (source, 0) if source else None
        if self.https:
            return http.client.HTTPSConnection(
                self.host,
                self.port,
                timeout=self.args.timeout,
                source_address=source_address,
                context=self.tls,
            )
        return http.client.HTTPConnection(
            self.host, self.port, timeout=self.args.timeout, source_address=source_address
        )

    def request(self, source: str | None) -> Outcome:
        try:
            return self.attempt(source)
        except StaleConnection:
            if self.args.no_retry_stale:
                return Outcome(error="StaleConnection: reused connection closed by server")
            with self.results.lock:
                self.results.stale_retries += 1
        try:
            return self.attempt(source)
        except StaleConnection as exc:  # cannot happen on a new connection; be explicit
            return Outcome(error=describe(exc))

    def attempt(self, source: str | None) -> Outcome:
        conn = self.connections.pop(source, None)
        reused = conn is not None
        if conn is None:
            conn = self.connect(source)
        headers = dict(self.headers)
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        answered = False
        try:
            conn.request(self.args.method, self.path, headers=headers)
            response = conn.getresponse()
            answered = True
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            stale = isinstance(
                exc, ConnectionResetError | BrokenPipeError | http.client.RemoteDisconnected
            )
            if reused and not answered and stale:
                raise StaleConnection(describe(exc)) from exc
            return Outcome(error=describe(exc))
        if self.args.cookies:
            for set_cookie in response.headers.get_all("Set-Cookie") or []:
                name, _, value = set_cookie.split(";", 1)[0].partition("=")
                self.cookies[name.strip()] = value.strip()
        if self.args.keepalive and not response.will_close:
            self.connections[source] = conn
        else:
            conn.close()
        outcome = Outcome(
            server=response.getheader("X-Server", "<none>"),
            status=response.status,
            seen_client=response.getheader("X-Client-Address"),
            seen_forwarded_for=response.getheader("X-Seen-Forwarded-For"),
        )
        if not 200 <= response.status < 300:
            outcome.error = f"HTTP {response.status} {response.reason} from {outcome.server}"
        return outcome

    def close(self) -> None:
        for conn in self.connections.values():
            conn.close()


class TcpWorker:
    """One thread's TCP connections: send a line, the first word of the answer names a server."""

    def __init__(self, args: argparse.Namespace, results: Results) -> None:
        self.args = args
        self.results = results
        host, _, port = args.tcp.rpartition(":")
        self.address = (host, int(port))
        self.connections: dict[str | None, tuple[socket.socket, Any]] = {}
        self.sent = 0

    def request(self, source: str | None) -> Outcome:
        try:
            return self.attempt(source)
        except StaleConnection:
            if self.args.no_retry_stale:
                return Outcome(error="StaleConnection: reused connection closed by server")
            with self.results.lock:
                self.results.stale_retries += 1
        try:
            return self.attempt(source)
        except StaleConnection as exc:
            return Outcome(error=describe(exc))

    def attempt(self, source: str | None) -> Outcome:
        held = self.connections.pop(source, None)
        reused = held is not None
        try:
            if held is None:
                sock = socket.create_connection(
                    self.address,
                    timeout=self.args.timeout,
                    source_address=(source, 0) if source else None,
                )
                held = (sock, sock.makefile("rb"))
            sock, reader = held
            self.sent += 1
            sock.sendall(f"{self.args.line} {self.sent}\n".encode())
            answer = reader.readline()
        except OSError as exc:
            if held is not None:
                held[1].close()
                held[0].close()
            if reused and isinstance(exc, ConnectionResetError | BrokenPipeError):
                raise StaleConnection(describe(exc)) from exc
            return Outcome(error=describe(exc))
        if not answer:
            held[1].close()
            held[0].close()
            if reused:
                raise StaleConnection("EOF on a reused connection")
            return Outcome(error="EmptyAnswer: connection closed without an answer")
        if self.args.keepalive:
            self.connections[source] = held
        else:
            held[1].close()
            held[0].close()
        words = answer.decode("latin-1").split()
        server = words[0] if words else "<empty>"
        seen = words[1].rpartition(":")[0] if len(words) > 1 else None
        return Outcome(server=server, seen_client=seen)

    def close(self) -> None:
        for sock, reader in self.connections.values():
            reader.close()
            sock.close()


def report_progress(path: str, results: Results, done: threading.Event) -> None:
    """Rewrite ``path`` with the number of answered requests whenever it grows (atomically:
    a reader never sees a partial number), and once more at the end."""
    reported = -1
    while True:
        finished = done.wait(0.02)
        answered = results.ok + results.failures
        if answered != reported:
            partial = f"{path}.partial"
            with open(partial, "w") as out:
                out.write(f"{answered}\n")
            os.replace(partial, path)
            reported = answered
        if finished:
            return


def work(args: argparse.Namespace, results: Results, scheduler: Scheduler) -> None:
    worker = TcpWorker(args, results) if args.tcp else HttpWorker(args, results)
    sources: list[str | None] = list(results.sources) or [None]
    try:
        while (number := scheduler.next()) is not None:
            source = sources[number % len(sources)]
            began = time.monotonic()
            try:
                outcome = worker.request(source)
            except Exception as exc:  # a bug here must show up as a failure, not a hang
                outcome = Outcome(error=describe(exc))
            results.record(source, outcome, time.monotonic() - began)
    finally:
        worker.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="http:// or https:// URL")
    target.add_argument("--tcp", metavar="HOST:PORT", help="line protocol (tcp-echo servers)")
    parser.add_argument("--requests", type=int, help="number of requests (default 1)")
    parser.add_argument("--duration", type=float, help="run for this many seconds")
    parser.add_argument("--stop-file", help="stop as soon as this file exists")
    parser.add_argument("--progress-file", help="keep the number of answered requests here")
    parser.add_argument("--rate", type=float, help="at most this many requests per second")
    parser.add_argument("--concurrency", type=int, default=1)
    reuse = parser.add_mutually_exclusive_group()
    reuse.add_argument("--keepalive", action="store_true", help="reuse connections")
    reuse.add_argument("--new-connection", dest="keepalive", action="store_false", help="(default)")
    parser.add_argument("--no-retry-stale", action="store_true")
    parser.add_argument("--source", action="append", default=[], help="source address; repeat")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--header", action="append", default=[], help="'Name: value'; repeat")
    parser.add_argument("--cookies", action="store_true", help="keep cookies (per thread)")
    parser.add_argument("--insecure", action="store_true", help="https: skip verification")
    parser.add_argument("--cacert", help="https: CA bundle")
    parser.add_argument("--line", default="hello", help="tcp: the line to send")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = Results(sources=args.source)
    scheduler = Scheduler(args, results)
    threads = [
        threading.Thread(target=work, args=(args, results, scheduler), daemon=True)
        for _ in range(args.concurrency)
    ]
    done = threading.Event()
    progress = None
    if args.progress_file:
        progress = threading.Thread(
            target=report_progress, args=(args.progress_file, results, done), daemon=True
        )
        progress.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    if progress is not None:
        progress.join()
    mode = "tcp" if args.tcp else "http"
    print(json.dumps(results.report(mode, args.tcp or args.url)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
