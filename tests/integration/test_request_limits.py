"""Limits of a content rule and of a sub-service, and a sub-service's own cache, through a real
`bascule run` with real HAProxy, real origins and clients in namespaces.

Two origins log every request that reaches them (``METHOD path``): rs1 is the service's own
pool, rs2 the sub-service ``static`` (paths under ``/static/``, kept 60 s by their
``Cache-Control``). A rule ``login`` (POST /login) has a limit of its own; the rest of the
site has none. One client hammers POST /login and is refused (the service's 429 and
Retry-After) while its other pages, asked at the same time, are all served; it is served again
once it slows down. The sub-service's limit refuses only requests for its pool, its cache keeps
its responses (rs2 reached once) while the service's own cache never looks its requests up,
and `bascule cache purge site/static` sends the next request to rs2 again.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from daemon import BasculeDaemon
from netns import Host, Topology
from waiting import wait_until

pytestmark = pytest.mark.integration

LOGIN_RATE = 5
STATIC_RATE = 10

ORIGIN = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = open(sys.argv[2], "a", buffering=1)

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self):
        log.write(f"{self.command} {self.path}\n")
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b"ok " * 100
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        cached = self.path.startswith("/static/")
        self.send_header("Cache-Control", "max-age=60" if cached else "no-store")
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = answer
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer((sys.argv[1], 80), Handler)
print("ready", flush=True)
server.serve_forever()
"""

# N requests (each on a new connection) as fast as one process asks them: "status
# retry-after x-cache" a line.
REQUESTS = r"""
import http.client, sys
vip, method, path, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
for _ in range(count):
    c = http.client.HTTPConnection(vip, 80, timeout=5)
    c.request(method, path, body=b"user=a" if method == "POST" else None)
    r = c.getresponse(); r.read(); c.close()
    print(r.status, r.getheader("Retry-After"), r.getheader("X-Cache"), flush=True)
"""


def start_origin(topo: Topology, host: Host) -> Callable[[str], int]:
    assert topo.workdir is not None
    log = Path(topo.workdir) / f"origin-{host.name}.log"
    log.touch()
    origin = topo.popen(
        host, [sys.executable, "-c", ORIGIN, host.address, str(log)], stdout=-1, text=True
    )
    assert origin.stdout is not None and origin.stdout.readline().strip() == "ready"
    return lambda line: log.read_text().splitlines().count(line)


def start_requests(topo: Topology, method: str, path: str, count: int) -> subprocess.Popen[str]:
    """``requests`` in the background (read its lines with ``communicate``)."""
    argv = [sys.executable, "-c", REQUESTS, topo.vip(), method, path, str(count)]
    return topo.popen(topo.client, argv, stdout=subprocess.PIPE, text=True)


def requests(topo: Topology, method: str, path: str, count: int) -> list[str]:
    done = topo.run(
        topo.client, [sys.executable, "-c", REQUESTS, topo.vip(), method, path, str(count)]
    )
    return done.stdout.strip().splitlines()


def site(topo: Topology) -> dict[str, object]:
    rs1, rs2 = topo.real_servers
    return {
        "name": "site",
        "address": topo.vip(),
        "port": 80,
        "check": {"type": "tcp", "interval": 1, "rise": 1},
        "real_servers": [{"address": rs1.address, "port": 80}],
        # the service's own answer, which the rule's limit gives when it has none
        "limits": {"response": {"code": 429, "retry_after": 3}},
        # the service's own cache leaves the requests of the sub-service with one to it
        "cache": {"size_mb": 8},
        "sub_services": [
            {
                "name": "static",
                "real_servers": [{"address": rs2.address, "port": 80}],
                "limits": {"per_client": {"requests_per_second": STATIC_RATE}},
                "cache": {"size_mb": 8, "max_age": 60, "x_cache_header": True},
            }
        ],
        "rules": [
            {
                "name": "login",
                "match": {"path": "/login", "method": "POST"},
                "action": {"use_default": True},
                "limits": {"per_client": {"requests_per_second": LOGIN_RATE}},
            },
            {"name": "static", "match": {"path_prefix": "/static/"}, "action": {"use": "static"}},
        ],
    }


def test_a_rules_limit_trips_only_its_requests_and_releases(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=2)
    rs1, rs2 = topo.real_servers
    reached1 = start_origin(topo, rs1)
    start_origin(topo, rs2)
    daemon = BasculeDaemon(topo).start(timeout=60)
    try:
        daemon.apply({"virtual_services": [site(topo)]})
        daemon.wait_status("site", f"{rs1.address}:80", "up", timeout=20)

        # the same client: a burst of logins beside a burst of other pages, at once
        pages = start_requests(topo, "GET", "/account", 60)
        logins = Counter(requests(topo, "POST", "/login", LOGIN_RATE * 8))
        other, _ = pages.communicate(timeout=60)
        assert logins["429 3 None"] > 0, logins  # the service's code and Retry-After
        assert set(logins) <= {"200 None None", "429 3 None"}, logins
        assert Counter(other.split("\n")[:-1]) == {"200 None None": 60}, other
        # a refused login never reached the real server
        assert reached1("POST /login") == logins["200 None None"]
        assert reached1("GET /account") == 60
        # the rule's table shows the client, limited while its logins keep coming
        # (a flood that lasts until it was seen: on a loaded machine 400 logins could end
        # before the first `limits show` had started)
        flood = start_requests(topo, "POST", "/login", 1_000_000)

        def shown_limited() -> bool:
            shown = daemon.cli_json("limits", "show", "site", "--rule", "login")
            assert (shown["service"], shown["rule"]) == ("site", "login"), shown
            return bool(shown["clients"]) and shown["clients"][0] == {
                **shown["clients"][0],
                "client": topo.client.address,
                "limited": True,
            }

        try:
            wait_until("the login flooder is shown limited", shown_limited, timeout=20)
        finally:
            flood.kill()
            flood.communicate(timeout=30)

        # slowed down, the client logs in again (polled at 2 a second, under the rule's 5: the
        # refused attempts count in the rate too, so polling faster kept the client limited)
        wait_until(
            "logins are served again",
            lambda: requests(topo, "POST", "/login", 1) == ["200 None None"],
            timeout=15,
            poll=0.5,
        )
        # a GET of the same path is not the rule's: never limited
        assert Counter(requests(topo, "GET", "/login", LOGIN_RATE * 6)) == {
            "200 None None": LOGIN_RATE * 6
        }
    finally:
        daemon.stop(data_plane=True)


def test_a_sub_services_limit_and_cache_act_on_its_pool_only(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=2)
    rs1, rs2 = topo.real_servers
    reached1 = start_origin(topo, rs1)
    reached2 = start_origin(topo, rs2)
    daemon = BasculeDaemon(topo).start(timeout=60)
    try:
        daemon.apply({"virtual_services": [site(topo)]})
        daemon.wait_status("site", f"{rs1.address}:80", "up", timeout=20)
        wait_until(
            "the sub-service serves",
            lambda: requests(topo, "GET", "/static/warm.css", 1)[0].startswith("200"),
            timeout=20,
        )

        # its cache: the first request reaches rs2, the next ones are hits
        first = requests(topo, "GET", "/static/a.css", 1)
        assert first == ["200 None MISS"], first
        wait_until(
            "the rate is back under the limit",
            lambda: requests(topo, "GET", "/static/a.css", 1) == ["200 None HIT"],
            timeout=15,
            poll=0.5,  # slower than the limit: refused requests count in the rate
        )
        assert reached2("GET /static/a.css") == 1
        # the service's own pool: no-store pages, looked up in the service's cache only (the
        # sub-service's requests never are) and never kept there
        requests(topo, "GET", "/page", 3)
        assert reached1("GET /page") == 3
        caches = daemon.status()["engine"]["haproxy"]["caches"]
        assert caches["site/static"]["hits"] >= 1, caches
        assert caches["site"]["lookups"] == 3 and caches["site"]["hits"] == 0, caches
        assert 'bascule_cache_hits_total{virtual_service="site/static"}' in daemon.metrics()

        # purged: the next request reaches rs2 again
        daemon.cli("cache", "purge", "site/static")
        wait_until(
            "the rate is back under the limit",
            lambda: requests(topo, "GET", "/static/a.css", 1)[0].startswith("200 None MISS"),
            timeout=15,
            poll=0.5,  # slower than the limit: refused requests count in the rate
        )
        assert reached2("GET /static/a.css") == 2

        # its limit: a burst for its pool is refused in part (hits count too), the same
        # client's pages of the default pool are all served meanwhile
        pages = start_requests(topo, "GET", "/page", 40)
        burst = Counter(
            status.split()[0] for status in requests(topo, "GET", "/static/b.css", STATIC_RATE * 6)
        )
        other, _ = pages.communicate(timeout=60)
        assert burst["429"] > 0 and burst["200"] > 0, burst
        assert set(burst) == {"200", "429"}, burst
        assert Counter(line.split()[0] for line in other.split("\n")[:-1]) == {"200": 40}, other
        shown = daemon.cli_json("limits", "show", "site/static")
        assert shown["service"] == "site/static", shown
        assert shown["clients"][0]["client"] == topo.client.address, shown
        wait_until(
            "the sub-service serves the client again",
            lambda: requests(topo, "GET", "/static/b.css", 1)[0].startswith("200"),
            timeout=15,
            poll=0.5,  # slower than the limit: refused requests count in the rate
        )
    finally:
        daemon.stop(data_plane=True)
