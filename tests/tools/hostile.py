"""Hostile load on Bascule's HTTPS listener, and a probe of how the daemon holds up; prints ONE
JSON object. Standard library only (asyncio, ssl, http.client). Used by bench/hostile.py and
tests/integration/test_hostile_load.py, run inside a topology's namespaces.

Attack (from the client namespace)::

    hostile.py attack --target 198.18.0.2:8443 --duration 30 \\
        --slow 500 --source 198.18.0.20 --source 198.18.0.21 ... \\
        --bodies 8 --body-mib 16 --viewer-token bsc_... --viewer-rate 50

- ``--slow N``: N TLS connections that send a request line, then one header line every
  ``--slow-interval`` seconds and never finish; each one closed by the server is opened again
  (a slowloris keeps trying), spread over the ``--source`` addresses;
- ``--bodies N``: N clients without credentials, each sending ``PUT /api/v1/config`` with a
  ``--body-mib`` MiB JSON body, again and again;
- ``--viewer-token``: a viewer flooding requests it may not make (``DELETE`` of a virtual
  service with a 60 KB name), ``--viewer-rate`` per second.

Probe (from the load balancer's namespace)::

    hostile.py probe --socket /.../bascule.sock --https 198.18.0.2:8443 --duration 20 \\
        --admin-password ... --service web --server 198.18.0.4:80

``GET /api/v1/status`` on the unix socket every ``--interval`` seconds (latencies), and every
few seconds an administrator who logs in over HTTPS (the API's login) and drains then enables
a real server (each step timed, failures counted).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import faulthandler
import http.client
import json
import socket
import ssl
import statistics
import sys
import time
from typing import Any

LONG_NAME = "x" * 60_000


def tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "p50": None, "p99": None, "max": None}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return {
        "count": len(values),
        "p50": round(statistics.median(ordered), 2),
        "p99": round(p99, 2),
        "max": round(ordered[-1], 2),
    }


# --------------------------------------------------------------------------- the attack


class Counts(dict[str, int]):
    def add(self, key: str, n: int = 1) -> None:
        self[key] = self.get(key, 0) + n


async def slow_connection(
    host: str, port: int, source: str | None, interval: float, until: float, counts: Counts
) -> None:
    while time.monotonic() < until:
        try:
            async with asyncio.timeout(30):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=tls(), local_addr=(source, 0) if source else None
                )
        except (OSError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError):
            counts.add("refused_or_failed_handshake")
            await asyncio.sleep(0.5)
            continue
        counts.add("handshakes")
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: bascule\r\n")
            await writer.drain()
            line = 0
            while time.monotonic() < until:
                read = asyncio.ensure_future(reader.read(1))
                done, _ = await asyncio.wait({read}, timeout=interval)
                if done:
                    counts.add("closed_by_server")
                    break
                read.cancel()
                writer.write(b"X-Slow-%d: yes\r\n" % line)
                line += 1
                await writer.drain()
            else:
                counts.add("held_to_the_end")
        except (OSError, ssl.SSLError):
            counts.add("closed_by_server")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):  # no TLS goodbye to wait for from a slowloris
                    await writer.wait_closed()


def big_body(mebibytes: int) -> bytes:
    item = b'{"name": "vs-0000", "address": "198.18.0.100", "port": 80},'
    count = mebibytes * 1024 * 1024 // len(item)
    return b'{"virtual_services": [' + item * count + b'{"name": "last"}]}'


def body_client(host: str, port: int, mebibytes: int, until: float, counts: Counts) -> None:
    """PUT a large body without credentials, reading any answer while sending (an early 401
    comes before the body is sent, and the server then closes)."""
    chunk = big_body(1)[: 1024 * 1024]
    length = mebibytes * len(chunk)
    head = (
        f"PUT /api/v1/config HTTP/1.1\r\nHost: bascule\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()
    while time.monotonic() < until:
        try:
            with (
                socket.create_connection((host, port), timeout=30) as raw,
                tls().wrap_socket(raw) as conn,
            ):
                conn.sendall(head)
                conn.settimeout(0.05)
                sent = 0
                answer = b""
                closed = False
                while sent < length and not answer and not closed:
                    try:
                        answer = conn.recv(4096)
                        closed = not answer
                    except TimeoutError:
                        conn.settimeout(30)
                        conn.sendall(chunk)
                        sent += len(chunk)
                        conn.settimeout(0.05)
                conn.settimeout(30)
                while answer and answer.count(b"\r\n") < 1:
                    more = conn.recv(4096)
                    if not more:
                        break
                    answer += more
                if answer.startswith(b"HTTP/"):
                    counts.add(f"status_{answer.split(b' ', 2)[1].decode()}")
                else:
                    counts.add("closed_without_answer")
                counts.add("mib_sent_before_the_answer", sent // len(chunk))
        except (OSError, ssl.SSLError) as exc:
            counts.add(type(exc).__name__)
            time.sleep(0.2)


def viewer_client(
    host: str, port: int, token: str, rate: float, until: float, counts: Counts
) -> None:
    connection = http.client.HTTPSConnection(host, port, context=tls(), timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            connection.request("DELETE", f"/api/v1/virtual-services/{LONG_NAME}", headers=headers)
            answer = connection.getresponse()
            answer.read()
            counts.add(f"status_{answer.status}")
        except (OSError, http.client.HTTPException) as exc:
            counts.add(type(exc).__name__)
            connection.close()
            connection = http.client.HTTPSConnection(host, port, context=tls(), timeout=30)
        time.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))
    connection.close()


async def attack(args: argparse.Namespace) -> dict[str, Any]:
    host, _, port_text = args.target.rpartition(":")
    port = int(port_text)
    until = time.monotonic() + args.duration
    slow, bodies, viewer = Counts(), Counts(), Counts()
    sources = args.source or [None]
    tasks = [
        asyncio.create_task(
            slow_connection(host, port, sources[i % len(sources)], args.slow_interval, until, slow)
        )
        for i in range(args.slow)
    ]
    # one thread per blocking client: the default executor has only a few
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(max_workers=args.bodies + 2)
    )
    threads = [
        asyncio.to_thread(body_client, host, port, args.body_mib, until, bodies)
        for _ in range(args.bodies)
    ]
    if args.viewer_token:
        threads.append(
            asyncio.to_thread(
                viewer_client, host, port, args.viewer_token, args.viewer_rate, until, viewer
            )
        )
    await asyncio.gather(*tasks, *threads)
    return {"slow": slow, "bodies": bodies, "viewer": viewer}


# --------------------------------------------------------------------------- the probe


def unix_get(path: str, url: str) -> tuple[int, float]:
    started = time.perf_counter()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(path)
        sock.sendall(f"GET {url} HTTP/1.1\r\nHost: bascule\r\nConnection: close\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status = int(received.split(b" ", 2)[1]) if received.startswith(b"HTTP/") else 0
    return status, (time.perf_counter() - started) * 1000


def admin_round(
    host: str, port: int, password: str, service: str, server: str
) -> dict[str, float | int]:
    """Log in (the API's login) and drain then enable ``server``: each step's ms and status."""
    times: dict[str, float | int] = {}
    connection = http.client.HTTPSConnection(host, port, context=tls(), timeout=30)
    try:
        started = time.perf_counter()
        body = json.dumps({"username": "admin", "password": password})
        connection.request(
            "POST", "/api/v1/auth/login", body=body, headers={"Content-Type": "application/json"}
        )
        answer = connection.getresponse()
        login = json.loads(answer.read() or b"{}")
        times["login_ms"] = (time.perf_counter() - started) * 1000
        times["login_status"] = answer.status
        cookie = (answer.getheader("Set-Cookie") or "").split(";", 1)[0]
        headers = {"Cookie": cookie, "X-CSRF-Token": str(login.get("csrf_token"))}
        for step in ("drain", "enable"):
            started = time.perf_counter()
            connection.request(
                "POST",
                f"/api/v1/virtual-services/{service}/real-servers/{server}/{step}",
                headers=headers,
            )
            answer = connection.getresponse()
            answer.read()
            times[f"{step}_ms"] = (time.perf_counter() - started) * 1000
            times[f"{step}_status"] = answer.status
    except (OSError, http.client.HTTPException, ValueError) as exc:
        times["error"] = 1
        times["error_kind"] = type(exc).__name__  # type: ignore[assignment]
    finally:
        connection.close()
    return times


def probe(args: argparse.Namespace) -> dict[str, Any]:
    host, _, port_text = args.https.rpartition(":")
    until = time.monotonic() + args.duration
    latencies: list[float] = []
    failures: dict[str, int] = {}
    rounds: list[dict[str, float | int]] = []
    next_admin = time.monotonic() + 1.0
    while time.monotonic() < until:
        try:
            status, ms = unix_get(args.socket, "/api/v1/status")
            if status == 200:
                latencies.append(ms)
            else:
                failures[str(status)] = failures.get(str(status), 0) + 1
        except OSError as exc:
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
        if args.https and time.monotonic() >= next_admin:
            rounds.append(
                admin_round(host, int(port_text), args.admin_password, args.service, args.server)
            )
            next_admin = time.monotonic() + args.admin_every
        time.sleep(args.interval)
    logins = [r["login_ms"] for r in rounds if r.get("login_status") == 200]
    drains = [r["drain_ms"] for r in rounds if r.get("drain_status") == 200]
    return {
        "status_ms": percentiles(latencies),
        "status_failures": failures,
        "admin_rounds": len(rounds),
        "admin_ok": sum(
            1 for r in rounds if (r.get("login_status"), r.get("drain_status")) == (200, 200)
        ),
        "admin_login_ms": percentiles(logins),
        "admin_drain_ms": percentiles(drains),
        "admin_failures": [r for r in rounds if r.get("drain_status") != 200],
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    hit = sub.add_parser("attack")
    hit.add_argument("--target", required=True)
    hit.add_argument("--duration", type=float, default=30)
    hit.add_argument("--slow", type=int, default=0)
    hit.add_argument("--slow-interval", type=float, default=10)
    hit.add_argument("--source", action="append")
    hit.add_argument("--bodies", type=int, default=0)
    hit.add_argument("--body-mib", type=int, default=16)
    hit.add_argument("--viewer-token")
    hit.add_argument("--viewer-rate", type=float, default=50)
    look = sub.add_parser("probe")
    look.add_argument("--socket", required=True)
    look.add_argument("--https", default="")
    look.add_argument("--duration", type=float, default=20)
    look.add_argument("--interval", type=float, default=0.1)
    look.add_argument("--admin-password", default="")
    look.add_argument("--admin-every", type=float, default=3.0)
    look.add_argument("--service", default="web")
    look.add_argument("--server", default="")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # a run that overstays says where it is stuck (on stderr) rather than hanging silently
    faulthandler.dump_traceback_later(args.duration + 60, exit=True)
    result = asyncio.run(attack(args)) if args.mode == "attack" else probe(args)
    faulthandler.cancel_dump_traceback_later()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
