"""The cache and compression of an l7 service through a real `bascule run`, with curl.

The origin is a small HTTP/1.1 server in rs1's namespace that writes every path it serves to
its log: a cached response never reaches it. It serves ``/static.css`` (max-age=30),
``/nostore`` (no-store), ``/short`` (max-age=1), ``/page.html`` (no cache headers) and
``/image.png``, each a few kilobytes.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from daemon import BasculeDaemon
from netns import Topology
from origins import start_logging_origin
from waiting import wait_until

pytestmark = pytest.mark.integration

ORIGIN = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGES = {
    "/static.css": ("text/css", "max-age=30"),
    "/nostore": ("text/plain", "no-store"),
    "/short": ("text/plain", "max-age=1"),
    "/page.html": ("text/html", None),
    "/image.png": ("image/png", None),
    "/": ("text/plain", "no-store"),
}
log = open(sys.argv[2], "a", buffering=1)

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        kind, control = PAGES.get(self.path, ("text/plain", None))
        if self.path != "/":
            log.write(self.path + "\n")
        body = b"bascule " * 1000
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        if control:
            self.send_header("Cache-Control", control)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer((sys.argv[1], 80), Handler)
print("ready", flush=True)
server.serve_forever()
"""


def test_cache_hits_no_store_max_age_and_compression(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=1)
    rs1 = topo.real_servers[0]
    hits = start_logging_origin(topo, ORIGIN)

    def get(path: str, *headers: str) -> dict[str, str]:
        argv = ["curl", "-s", "-o", "/dev/null", "-D", "-", f"http://{topo.vip()}{path}"]
        for header in headers:
            argv += ["-H", header]
        head = topo.run("client", argv).stdout.splitlines()
        assert head and " 200 " in head[0], head
        return {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in head[1:] if ":" in line)
        }

    daemon = BasculeDaemon(topo).start(timeout=60)
    try:
        daemon.apply(
            {
                "virtual_services": [
                    {
                        "name": "site",
                        "address": topo.vip(),
                        "port": 80,
                        "check": {"type": "tcp", "interval": 1, "rise": 1},
                        "real_servers": [{"address": rs1.address, "port": 80}],
                        "cache": {
                            "size_mb": 16,
                            "max_object_kb": 512,
                            "max_age": 60,
                            "x_cache_header": True,
                        },
                        "compression": {"types": ["text/html", "text/css"]},
                    }
                ]
            }
        )
        daemon.wait_status("site", f"{rs1.address}:80", "up", timeout=20)

        # cached: the second request never reaches the origin
        assert get("/static.css")["x-cache"] == "MISS"
        assert get("/static.css")["x-cache"] == "HIT"
        assert get("/static.css")["x-cache"] == "HIT"
        assert hits("/static.css") == 1
        cache = daemon.status()["engine"]["haproxy"]["caches"]["site"]
        assert cache["hits"] >= 2 and cache["lookups"] >= 3, cache
        metrics = daemon.metrics()
        assert 'bascule_cache_hits_total{virtual_service="site"}' in metrics, metrics[-2000:]

        # no-store is never kept
        for _ in range(3):
            assert get("/nostore")["x-cache"] == "MISS"
        assert hits("/nostore") == 3

        # max-age=1 is kept for a second only, whatever the cache's own max_age
        get("/short")
        wait_until(
            "max-age=1 has run out", lambda: (get("/short"), hits("/short"))[1] >= 2, timeout=10
        )

        # compressed only when the client accepts it, and only the listed types
        assert get("/page.html", "Accept-Encoding: gzip").get("content-encoding") == "gzip"
        assert "content-encoding" not in get("/page.html")
        assert "content-encoding" not in get("/image.png", "Accept-Encoding: gzip")
    finally:
        daemon.stop(data_plane=True)


def test_purge_sends_the_next_request_to_the_real_server(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=1)
    rs1 = topo.real_servers[0]
    hits = start_logging_origin(topo, ORIGIN)

    def x_cache(path: str) -> str:
        argv = ["curl", "-s", "-o", "/dev/null", "-D", "-", f"http://{topo.vip()}{path}"]
        head: list[str] = topo.run("client", argv).stdout.splitlines()
        assert head and " 200 " in head[0], head
        found = [line.partition(":")[2] for line in head if line.lower().startswith("x-cache:")]
        return found[0].strip()

    daemon = BasculeDaemon(topo).start(timeout=60)
    try:
        service = {
            "name": "site",
            "address": topo.vip(),
            "port": 80,
            "check": {"type": "tcp", "interval": 1, "rise": 1},
            "real_servers": [{"address": rs1.address, "port": 80}],
            "cache": {"max_age": 60, "x_cache_header": True},
        }
        daemon.apply({"virtual_services": [service, {**service, "name": "other", "port": 8080}]})
        daemon.wait_status("site", f"{rs1.address}:80", "up", timeout=20)
        pids = daemon.worker_pids()

        assert [x_cache("/static.css") for _ in range(3)] == ["MISS", "HIT", "HIT"]
        assert hits("/static.css") == 1

        answer = daemon.cli_json("cache", "purge", "site")
        assert answer == {"service": "site", "running": True}
        # the next request reaches the real server, and is kept again
        assert [x_cache("/static.css") for _ in range(2)] == ["MISS", "HIT"]
        assert hits("/static.css") == 2
        assert daemon.worker_pids() == pids  # no reload

        # twice in a row works too (the map entry is replaced, never missing)
        daemon.cli("cache", "purge", "site")
        assert x_cache("/static.css") == "MISS"
        assert hits("/static.css") == 3

        # a service without a cache, or none at all, is refused and nothing changes
        daemon.apply({"virtual_services": [service, {**service, "name": "bare", "port": 8080,
                                                     "cache": None}]})  # fmt: skip
        refused = daemon.cli("cache", "purge", "bare", check=False)
        assert refused.returncode != 0 and "has no cache" in refused.stderr
        missing = daemon.cli("cache", "purge", "nowhere", check=False)
        assert missing.returncode != 0 and "no virtual service" in missing.stderr
    finally:
        daemon.stop(data_plane=True)
