"""L7 persistence end to end: a real daemon, HAProxy stick tables and cookies, real clients.

Each test proves persistence the same way: without it the service round-robins, so every
request of one client landing on one server (while different clients spread) is the proof.
Expiry is not waited for here (the model's minimum timeout is 60 s); the stick table's
``expire`` is checked in the golden files and in test_persistence_expiry_in_haproxy.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon import BasculeDaemon
from netns import Topology
from waiting import holds

pytestmark = pytest.mark.integration

CHECK = {"type": "http", "path": "/health", "interval": 1, "rise": 1, "fall": 1}


def http_service(
    topology: Topology, name: str, port: int, persistence: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "address": topology.vip(),
        "port": port,
        "type": "http",
        "scheduler": "round_robin",
        "check": CHECK,
        "persistence": {"timeout": 600, **persistence},
        "real_servers": [{"address": rs.address, "port": 80} for rs in topology.real_servers],
        **fields,
    }


@pytest.fixture
def daemon_for(topology: Topology) -> Iterator[Callable[[], BasculeDaemon]]:
    started: list[BasculeDaemon] = []

    def start() -> BasculeDaemon:
        data_dir = started[0].data_dir if started else None
        daemon = BasculeDaemon(topology, data_dir=data_dir).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in reversed(started):
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.terminate()
    if started:
        started[0].stop_haproxy()


def servers_of(result: dict[str, Any]) -> set[str]:
    assert result["failures"] == 0, result["errors"]
    return set(result["counts"])


def one_server(topology: Topology, *args: str, requests: int = 6) -> str:
    """The one server that answered every request of one client run."""
    servers = servers_of(topology.run_client(*args, "--requests", str(requests)))
    assert len(servers) == 1, servers
    return servers.pop()


def entries(daemon: BasculeDaemon, service: str) -> dict[str, str]:
    answer = daemon.cli_json("persistence", "show", service)
    return {e["key"]: e["real_server"] for e in answer["entries"]}


def key_of(topology: Topology, host: str) -> str:
    return f"{topology.host(host).address}:80"


def test_http_methods_keep_each_client_on_one_server(
    topology: Topology, daemon_for: Callable[[], BasculeDaemon]
) -> None:
    topology.start_real_servers()
    daemon = daemon_for()
    vip = topology.vip()
    # (service, persistence, the n-th client's path and client.py arguments)
    methods: list[tuple[str, dict[str, Any], Callable[[int], tuple[str, list[str]]]]] = [
        ("active", {"method": "active_cookie", "cookie": "LB"}, lambda n: ("/echo", ["--cookies"])),
        (
            "learnt",
            {"method": "server_cookie", "cookie": "APP"},
            lambda n: ("/set-cookie?name=APP", ["--cookies"]),
        ),
        (
            "browser",
            {"method": "super_http"},
            lambda n: (
                "/echo",
                ["--header", f"User-Agent: b/{n}", "--header", "Accept-Language: fr"],
            ),
        ),
        (
            "cookies",
            {"method": "hash_all_cookies"},
            lambda n: ("/echo", ["--header", f"Cookie: a={n}; b=2"]),
        ),
        ("url", {"method": "url_hash"}, lambda n: (f"/echo/page{n}?t=1", [])),
        (
            "host",
            {"method": "host_header"},
            lambda n: ("/echo", ["--header", f"Host: s{n}.example"]),
        ),
        (
            "query",
            {"method": "query_item", "query_item": "sid", "fallback": "source_ip"},
            lambda n: (f"/echo?sid=s{n}", []),
        ),
        (
            "header",
            {"method": "selected_header", "header": "X-Tenant"},
            lambda n: ("/echo", ["--header", f"X-Tenant: tenant {n}"]),
        ),
    ]
    services = [
        http_service(topology, name, 8000 + index, persistence)
        for index, (name, persistence, _) in enumerate(methods)
    ]
    daemon.apply({"virtual_services": services})
    topology.wait_tcp("client", vip, 8000)
    for index, (name, _, client) in enumerate(methods):
        chosen = set()
        for n in range(4):
            path, args = client(n)
            chosen.add(one_server(topology, "--url", f"http://{vip}:{8000 + index}{path}", *args))
        # four clients kept apart by their key are not all sent to one server
        assert len(chosen) >= 2, (name, chosen)
    # fallback: a query_item client without the item sticks by its address
    assert one_server(topology, "--url", f"http://{vip}:8006/echo")
    import os

    if os.environ.get("CAPTURE"):
        for t in ("web", "query", "query.src", "browser", "header", "learnt"):
            Path(f"/tmp/show_table_{t}.txt").write_text(daemon.haproxy(f"show table {t}"))
    shown = daemon.cli_json("persistence", "show", "query")["entries"]
    assert {e["table"] for e in shown} == {"primary", "fallback"}
    assert {e["key"] for e in shown if e["table"] == "fallback"} == {topology.client.address}
    assert {f"s{n}" for n in range(4)} <= {e["key"] for e in shown}


def test_source_ip_survives_reload_restart_failure_and_drain(
    make_topology: Callable[..., Topology],
) -> None:
    topology = make_topology(real_servers=3, client_extra_addresses=6)
    controls = {rs.name: topology.workdir / f"{rs.name}.control" for rs in topology.real_servers}
    for rs in topology.real_servers:
        topology.start_real_server(rs, "--control", str(controls[rs.name]))
    daemon = BasculeDaemon(topology).start()
    restarted: BasculeDaemon | None = None
    try:
        service = http_service(topology, "web", 80, {"method": "source_ip"})
        daemon.apply({"virtual_services": [service]})
        vip = topology.vip()
        topology.wait_tcp("client", vip, 80)
        sources = [f"198.18.0.{20 + n}" for n in range(6)]

        def placement() -> dict[str, str]:
            result = topology.run_client(
                "--url", f"http://{vip}/echo", "--requests", str(4 * len(sources)),
                *[arg for s in sources for arg in ("--source", s)],
            )  # fmt: skip
            assert result["failures"] == 0, result["errors"]
            where = {}
            for source, seen in result["per_source"].items():
                assert len(seen["counts"]) == 1, (source, seen)
                where[source] = next(iter(seen["counts"]))
            return where

        first = placement()
        assert len(set(first.values())) >= 2, first
        table = entries(daemon, "web")
        table = {k: v for k, v in table.items() if k in sources}
        assert table == {s: key_of(topology, rs) for s, rs in first.items()}

        # a structural change reloads HAProxy: the new worker got the old one's table
        pids = daemon.worker_pids()
        daemon.apply({"virtual_services": [{**service, "check": {**CHECK, "interval": 2}}]})
        assert daemon.worker_pids() != pids
        # the new worker holds the old one's entries before any client comes back
        started = time.monotonic()
        deadline = started + 5
        while (
            carried := {k: v for k, v in entries(daemon, "web").items() if k in sources}
        ) != table:
            assert time.monotonic() < deadline, carried
            time.sleep(0.2)
        assert placement() == first

        # kill -9 the daemon: HAProxy runs on and the next daemon adopts it, table included
        daemon.kill()
        restarted = BasculeDaemon(topology, data_dir=daemon.data_dir).start()
        assert placement() == first
        assert entries(restarted, "web").keys() >= set(sources)

        # a persisted server goes down: its clients move at once and stay when it returns
        victim = first[sources[0]]
        moved_sources = [s for s, rs in first.items() if rs == victim]
        controls[victim].write_text("down")
        restarted.wait_status("web", key_of(topology, victim), "down")
        during = placement()
        assert all(during[s] != victim for s in moved_sources), during
        controls[victim].write_text("up")
        restarted.wait_status("web", key_of(topology, victim), "up")
        after = placement()
        assert after == during, (during, after)

        # drain: the drained server keeps its persisted clients, and gets no new one
        drained = after[sources[1]]
        restarted.cli("rs", "drain", "web", key_of(topology, drained))
        restarted.wait_status("web", key_of(topology, drained), "drain")
        holds(  # through the reconciler's next pass too (BASCULE_RECONCILE_INTERVAL=1)
            "the drained server keeps its persisted clients",
            lambda: placement() == after,
            duration=1.5,
        )
        restarted.cli("persistence", "clear", "web")
        assert entries(restarted, "web") == {}
        fresh = placement()
        assert drained not in set(fresh.values()), fresh
    finally:
        if restarted is not None:
            restarted.terminate()
        elif daemon.process is not None and daemon.process.poll() is None:
            daemon.terminate()
        daemon.stop_haproxy()


def test_active_cookie_moves_off_a_dead_server_and_stays(
    make_topology: Callable[..., Topology],
) -> None:
    topology = make_topology(real_servers=2)
    controls = {rs.name: topology.workdir / f"{rs.name}.control" for rs in topology.real_servers}
    for rs in topology.real_servers:
        topology.start_real_server(rs, "--control", str(controls[rs.name]))
    daemon = BasculeDaemon(topology).start()
    try:
        daemon.apply(
            {"virtual_services": [http_service(topology, "web", 80, {"method": "active_cookie"})]}
        )
        topology.wait_tcp("client", topology.vip(), 80)
        url = f"http://{topology.vip()}/echo"
        jar = topology.workdir / "jar.txt"
        first = _cookie_run(topology, url, jar)
        assert len(first) == 1
        victim = first.pop()
        controls[victim].write_text("down")
        daemon.wait_status("web", key_of(topology, victim), "down")
        during = _cookie_run(topology, url, jar)
        assert len(during) == 1 and victim not in during
        controls[victim].write_text("up")
        daemon.wait_status("web", key_of(topology, victim), "up")
        assert _cookie_run(topology, url, jar) == during
    finally:
        daemon.terminate()


def _cookie_run(topology: Topology, url: str, jar: Path) -> set[str]:
    """Requests from one browser whose cookie jar lives on between runs (a file)."""
    script = textwrap.dedent(
        """
        import http.client, http.cookiejar, json, sys, urllib.request
        jar = http.cookiejar.LWPCookieJar(sys.argv[2])
        try:
            jar.load(ignore_discard=True)
        except FileNotFoundError:
            pass
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        seen = []
        for _ in range(5):
            with opener.open(sys.argv[1], timeout=5) as answer:
                seen.append(answer.headers["X-Server"])
        jar.save(ignore_discard=True)
        print(json.dumps(seen))
        """
    )
    done = topology.run(
        "client", [sys.executable, "-c", script, url, str(jar)], check=False, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


TLS_CLIENT = textwrap.dedent(
    """
    import json, socket, ssl, sys
    host, port, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    session, seen, resumed = None, [], []
    for _ in range(rounds):
        with socket.create_connection((host, port), timeout=5) as raw:
            with context.wrap_socket(raw, session=session) as tls:
                tls.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
                answer = b""
                while chunk := tls.recv(4096):
                    answer += chunk
                resumed.append(tls.session_reused)
                session = tls.session
        head = answer.split(b"\\r\\n\\r\\n")[0].decode()
        names = [l for l in head.split("\\r\\n") if l.startswith("X-Server: ")]
        seen.append(names[0].split(": ", 1)[1])
    print(json.dumps({"servers": seen, "resumed": resumed}))
    """
)

RDP_CLIENT = textwrap.dedent(
    """
    import json, socket, sys
    host, port, name, rounds = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    seen = []
    for _ in range(rounds):
        # MS-RDPBCGR 2.2.1.1: TPKT header, X.224 Connection Request, then the routing cookie
        cookie = f"Cookie: mstshash={name}\\r\\n".encode()
        x224 = bytes([6 + len(cookie), 0xE0, 0, 0, 0, 0, 0]) + cookie
        tpkt = bytes([3, 0]) + (4 + len(x224)).to_bytes(2, "big") + x224
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(tpkt)
            seen.append(s.makefile("rb").readline().split()[0].decode())
    print(json.dumps(seen))
    """
)


def test_ssl_session_id_and_rdp_cookie(
    topology: Topology, daemon_for: Callable[[], BasculeDaemon], tmp_path: Path
) -> None:
    from test_l7_checks import self_signed_certificate

    cert = self_signed_certificate(tmp_path)
    if cert is None:
        pytest.skip("no way to make a certificate here")
    for rs in topology.real_servers:
        topology.start_real_server(
            rs, "--tls-cert", str(cert[0]), "--tls-key", str(cert[1]), "--tls-session-ids",
            port=443,
        )  # fmt: skip
        topology.start_real_server(rs, "--mode", "tcp-echo", port=3389)
    daemon = daemon_for()
    vip = topology.vip()

    def tcp_service(name: str, port: int, kind: str, method: str) -> dict[str, Any]:
        return {
            "name": name,
            "address": vip,
            "port": port,
            "type": kind,
            "scheduler": "round_robin",
            "check": {"type": "tcp", "interval": 1, "rise": 1, "fall": 1},
            "persistence": {"method": method, "timeout": 600},
            "real_servers": [{"address": rs.address, "port": port} for rs in topology.real_servers],
        }

    daemon.apply(
        {
            "virtual_services": [
                tcp_service("tls", 443, "generic", "ssl_session_id"),
                tcp_service("rdp", 3389, "remote_terminal", "rdp_cookie"),
            ]
        }
    )
    topology.wait_tcp("client", vip, 443)
    topology.wait_tcp("client", vip, 3389)
    chosen = set()
    for _ in range(3):
        done = topology.run(
            "client", [sys.executable, "-c", TLS_CLIENT, vip, "443", "5"], check=False, timeout=60
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        # every later connection resumed its session, on the server that holds it
        assert result["resumed"] == [False, True, True, True, True], result
        assert len(set(result["servers"])) == 1, result
        chosen |= set(result["servers"])
    assert len(chosen) >= 2, chosen
    assert len(daemon.cli_json("persistence", "show", "tls")["entries"]) >= 3

    chosen = set()
    for user in ("alice", "bob", "carol"):
        done = topology.run(
            "client",
            [sys.executable, "-c", RDP_CLIENT, vip, "3389", user, "4"],
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        seen = set(json.loads(done.stdout))
        assert len(seen) == 1, seen
        chosen |= seen
    assert len(chosen) >= 2, chosen
    assert set(entries(daemon, "rdp")) == {"alice", "bob", "carol"}


def test_bad_persistence_is_refused_and_changes_nothing(
    topology: Topology, daemon_for: Callable[[], BasculeDaemon]
) -> None:
    daemon = daemon_for()
    good = http_service(topology, "web", 80, {"method": "source_ip"})
    daemon.apply({"virtual_services": [good]})
    before = daemon.status()["revision"]
    bad: list[tuple[dict[str, Any], str]] = [
        ({"method": "active_cookie", "cookie": "my cookie"}, "must be a cookie name"),
        ({"method": "sticky"}, "persistence.method"),
        ({"method": "query_item", "query_item": ""}, "persistence.query_item"),
        ({"method": "source_ip", "timeout": 30}, "persistence.timeout"),
        ({"method": "source_ip", "timeout": 2419201}, "persistence.timeout"),
        ({"method": "ssl_session_id"}, "ssl_session_id needs type: generic"),
    ]
    for persistence, message in bad:
        refused = daemon.apply(
            {"virtual_services": [{**good, "persistence": persistence}]}, check=False
        )
        assert refused.returncode != 0
        assert message in refused.stdout + refused.stderr, (persistence, refused)
    l4 = {**good, "mode": "l4", "type": "generic", "persistence": {"method": "host_header"}}
    l4.pop("check")
    refused = daemon.apply({"virtual_services": [l4]}, check=False)
    assert "needs mode l7" in refused.stdout + refused.stderr
    assert daemon.status()["revision"] == before
    # a wrong name and an l4 service are told apart from an empty table
    missing = daemon.cli("persistence", "show", "nothing", check=False)
    assert missing.returncode != 0 and "no virtual service named" in missing.stderr


def test_persistence_expiry_in_haproxy(topology: Topology) -> None:
    """Expiry, shortened: the model's minimum is 60 s, so this runs HAProxy on the rendered
    configuration of a source_ip service with its table's expire cut to 2 s."""
    from bascule.engines.haproxy.render import render
    from bascule.engines.haproxy.view import HaproxyGlobals, build_view
    from bascule.model import parse_document

    topology.start_real_servers()
    config = parse_document(
        {"virtual_services": [http_service(topology, "web", 80, {"method": "source_ip"})]}
    )
    socket_path = topology.workdir / "expiry.sock"
    text = render(build_view(config, HaproxyGlobals(stats_socket=str(socket_path), maxconn=100,
                                                    nbthread=1)))  # fmt: skip
    assert "expire 600s" in text
    path = topology.workdir / "expiry.cfg"
    path.write_text(text.replace("expire 600s", "expire 2s"))
    topology.run("lb", ["ip", "addr", "add", f"{topology.vip()}/32", "dev", "eth0"])
    haproxy = topology.popen("lb", ["haproxy", "-db", "-f", str(path)], stderr=subprocess.PIPE)
    try:
        topology.wait_tcp("client", topology.vip(), 80)
        url = f"http://{topology.vip()}/echo"
        first = one_server(topology, "--url", url)
        assert first == one_server(topology, "--url", url)
        assert topology.client.address in _show_table(socket_path)
        deadline = time.monotonic() + 10
        while topology.client.address in _show_table(socket_path):
            assert time.monotonic() < deadline, "the entry never expired"
            time.sleep(0.5)
        # expired: the next request is balanced afresh (round robin moves on)
        assert one_server(topology, "--url", url, requests=1) != first
    finally:
        topology.stop(haproxy)


def _show_table(socket_path: Path) -> str:
    """``show table web`` on a stats socket (the test shares the lb's filesystem)."""
    with socket.socket(socket.AF_UNIX) as cli:
        cli.settimeout(5)
        cli.connect(str(socket_path))
        cli.sendall(b"show table web\n")
        chunks = []
        while chunk := cli.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()
