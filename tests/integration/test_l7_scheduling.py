"""Scheduling methods end to end: a real daemon, HAProxy, real traffic, where requests land.

One topology (client with 8 extra addresses, lb, rs1..rs3) and one daemon serve the whole
module: every scheduler gets its own virtual service on its own port of the one VIP, applied
at once, so the module pays for one start and one reload. Round robin is covered by
test_l7_smoke.py.

Real servers: realserver.py http on :80 of rs1..rs3 (shared by most services), http on :8080
(only the fixed weighting service, whose test stops and restarts them) and tcp-echo on :9000.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from daemon import BasculeDaemon
from netns import Topology, require_root
from waiting import wait_until

pytestmark = pytest.mark.integration

CHECK = {"type": "http", "path": "/health", "interval": 1, "timeout": 1, "rise": 1, "fall": 1}
FIXED_PORT = 8080  # real-server port of the fixed weighting service only
ECHO_PORT = 9000

PORTS = {
    "wrr": 8001,
    "wlc": 8002,
    "lc": 8003,
    "fixed": 8004,
    "srcip": 8005,
    "url": 8006,
    "tcp": 8007,
    "extra": 8010,
}
EXTRA_PORT = 8011
EXTRA_RANGE = (8020, 8022)


@dataclass
class Lab:
    topology: Topology
    daemon: BasculeDaemon
    fixed_servers: dict[str, subprocess.Popen[str]]

    @property
    def vip(self) -> str:
        return self.topology.vip()

    def url(self, service: str, path: str = "/") -> str:
        return f"http://{self.vip}:{PORTS[service]}{path}"


def service(
    topology: Topology,
    name: str,
    scheduler: str,
    servers: list[dict[str, Any]] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    document = {
        "name": name,
        "address": topology.vip(),
        "port": PORTS[name],
        "type": "http",
        "scheduler": scheduler,
        "check": CHECK,
        "real_servers": servers
        if servers is not None
        else [{"address": rs.address, "port": 80} for rs in topology.real_servers],
    }
    document.update(overrides)
    return document


def document(topology: Topology) -> dict[str, Any]:
    rs1, rs2, rs3 = (rs.address for rs in topology.real_servers)
    return {
        "virtual_services": [
            service(
                topology,
                "wrr",
                "weighted_round_robin",
                [
                    {"address": rs1, "port": 80, "weight": 3000},
                    {"address": rs2, "port": 80, "weight": 1000},
                ],
            ),
            service(
                topology,
                "wlc",
                "weighted_least_connection",
                [
                    {"address": rs1, "port": 80, "weight": 3000},
                    {"address": rs2, "port": 80, "weight": 1000},
                ],
            ),
            service(topology, "lc", "least_connection"),
            # rs2 highest, then rs3, then rs1: not the document order.
            service(
                topology,
                "fixed",
                "fixed_weighting",
                [
                    {"address": rs1, "port": FIXED_PORT, "weight": 1000},
                    {"address": rs2, "port": FIXED_PORT, "weight": 5000},
                    {"address": rs3, "port": FIXED_PORT, "weight": 3000},
                ],
            ),
            service(topology, "srcip", "source_ip_hash"),
            service(topology, "url", "url_hash"),
            service(
                topology,
                "tcp",
                "round_robin",
                [{"address": rs.address, "port": ECHO_PORT} for rs in topology.real_servers],
                type="generic",
                check={"type": "tcp", "interval": 1, "rise": 1, "fall": 1},
            ),
            service(
                topology,
                "extra",
                "round_robin",
                extra_ports=[EXTRA_PORT, f"{EXTRA_RANGE[0]}-{EXTRA_RANGE[1]}"],
            ),
        ]
    }


@pytest.fixture(scope="module")
def lab(_stale_namespaces_removed: None) -> Iterator[Lab]:
    require_root()
    with Topology(real_servers=3, client_extra_addresses=8) as topology:
        # generous: nine servers start at once on a CPU other tests share
        topology.start_real_servers(ready_timeout=20)
        fixed = topology.start_real_servers(port=FIXED_PORT, ready_timeout=20)
        topology.start_real_servers("--mode", "tcp-echo", port=ECHO_PORT, ready_timeout=20)
        daemon = BasculeDaemon(topology)
        try:
            daemon.start()
            daemon.apply(document(topology))
            for port in PORTS.values():
                topology.wait_tcp("client", topology.vip(), port)
            names = [rs.name for rs in topology.real_servers]
            yield Lab(topology, daemon, dict(zip(names, fixed, strict=True)))
        finally:
            stop_daemon(daemon)


def stop_daemon(daemon: BasculeDaemon) -> None:
    try:
        if daemon.process is not None and daemon.process.poll() is None:
            try:
                daemon.terminate()
            except Exception:
                daemon.kill()
    finally:
        daemon.stop_haproxy()
        shutil.rmtree(daemon.data_dir, ignore_errors=True)
        for suffix in (".log", "-doc.yaml"):
            daemon.data_dir.with_name(daemon.data_dir.name + suffix).unlink(missing_ok=True)


# Many URLs in one process (client.py takes one URL): for each URL given, N requests on new
# connections; prints {url: {server or error: count}}.
PROBE = """
import collections, http.client, json, sys, urllib.parse
count = int(sys.argv[1])
seen = {}
for url in sys.argv[2:]:
    parts = urllib.parse.urlsplit(url)
    counts = collections.Counter()
    for _ in range(count):
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        try:
            conn.request("GET", parts.path, headers={"Connection": "close"})
            response = conn.getresponse()
            response.read()
            ok = response.status == 200
            counts[response.getheader("X-Server") if ok else f"HTTP {response.status}"] += 1
        except (OSError, http.client.HTTPException) as exc:
            counts[f"error {type(exc).__name__}"] += 1
        finally:
            conn.close()
    seen[url] = dict(counts)
print(json.dumps(seen))
"""


def probe(lab: Lab, urls: list[str], count: int) -> dict[str, dict[str, int]]:
    """Where ``count`` requests to each of ``urls`` landed, from the client host."""
    proc = lab.topology.run("client", [sys.executable, "-c", PROBE, str(count), *urls])
    seen: dict[str, dict[str, int]] = json.loads(proc.stdout)
    return seen


def ok(result: dict[str, Any]) -> dict[str, int]:
    """The counts of a client run that must have had no failure."""
    assert result["failures"] == 0, result["errors"]
    counts: dict[str, int] = result["counts"]
    return counts


# --------------------------------------------------------------------------- weighted


def test_weighted_round_robin_follows_weights_3_to_1(lab: Lab) -> None:
    counts = ok(
        lab.topology.run_client("--url", lab.url("wrr"), "--requests", "400", "--keepalive")
    )
    assert set(counts) == {"rs1", "rs2"}, counts
    ratio = counts["rs1"] / counts["rs2"]
    assert abs(ratio - 3.0) <= 3.0 * 0.05, counts


def test_weighted_least_connection_favours_the_heavier_server_under_load(lab: Lab) -> None:
    # Least connection only looks at weights when servers hold connections: with 8
    # concurrent slow requests HAProxy keeps about 6 on the weight-3 server and 2 on the
    # other. Sanity bounds only (timing depends on a shared CPU).
    counts = ok(
        lab.topology.run_client(
            "--url", lab.url("wlc", "/slow?ms=40"), "--requests", "240", "--concurrency", "8"
        )
    )
    assert set(counts) == {"rs1", "rs2"}, counts
    assert counts["rs1"] >= 1.8 * counts["rs2"], counts


def connections(lab: Lab, proxy: str) -> dict[str, int]:
    """Current connections per server of one HAProxy proxy (from its stats socket)."""
    lines = lab.daemon.haproxy("show stat").splitlines()
    header = lines[0].removeprefix("# ").split(",")
    current: dict[str, int] = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == proxy and row.get("svname") not in {"FRONTEND", "BACKEND"}:
            current[row["svname"]] = int(row["scur"] or 0)
    return current


def test_least_connection_sends_new_requests_to_the_idle_server(lab: Lab) -> None:
    topology, daemon = lab.topology, lab.daemon
    rs1, rs2, rs3 = (f"{rs.address}:80" for rs in topology.real_servers)
    # Four long requests while rs3 is out of service: least connection spreads them 2 + 2
    # over rs1 and rs2. Two each, not one: under CPU contention HAProxy may not yet have
    # released the previous short request when the next arrives, and the idle server must
    # still count fewer connections than the busy ones then.
    daemon.cli("rs", "disable", "lc", rs3)
    held = topology.start_client(
        "--url", lab.url("lc", "/slow?ms=30000"), "--requests", "4", "--concurrency", "4",
        "--timeout", "40",
    )  # fmt: skip
    try:
        wait_until(
            "two long requests held on rs1 and on rs2",
            lambda: connections(lab, "lc") == {rs1: 2, rs2: 2, rs3: 0},
            timeout=15,
            poll=0.05,
        )
        daemon.cli("rs", "enable", "lc", rs3)
        daemon.wait_status("lc", rs3, "up")
        counts = ok(topology.run_client("--url", lab.url("lc"), "--requests", "30"))
        assert counts == {"rs3": 30}
        assert connections(lab, "lc") == {rs1: 2, rs2: 2, rs3: 0}
    finally:
        topology.stop(held)
        daemon.cli("rs", "enable", "lc", rs3)


# --------------------------------------------------------------------------- fixed weighting


def test_fixed_weighting_uses_the_highest_weight_server_that_is_up(lab: Lab) -> None:
    topology, daemon = lab.topology, lab.daemon
    key = {rs.name: f"{rs.address}:{FIXED_PORT}" for rs in topology.real_servers}

    def all_to(name: str) -> None:
        counts = ok(topology.run_client("--url", lab.url("fixed"), "--requests", "20"))
        assert counts == {name: 20}

    def stop(name: str) -> None:
        topology.stop(lab.fixed_servers.pop(name))
        daemon.wait_status("fixed", key[name], "down")

    def start(name: str) -> None:
        lab.fixed_servers[name] = topology.start_real_server(name, port=FIXED_PORT)
        daemon.wait_status("fixed", key[name], "up")

    # weights: rs2 5000 > rs3 3000 > rs1 1000
    all_to("rs2")
    stop("rs2")
    all_to("rs3")
    stop("rs3")
    all_to("rs1")
    start("rs2")
    all_to("rs2")
    start("rs3")  # leave the service as it was found
    all_to("rs2")


# --------------------------------------------------------------------------- hashing


def test_source_ip_hash_keeps_each_client_address_on_one_server(lab: Lab) -> None:
    sources = lab.topology.client.extra_addresses
    assert len(sources) == 8
    args = [arg for source in sources for arg in ("--source", source)]
    result = lab.topology.run_client(
        "--url", lab.url("srcip"), "--requests", str(20 * len(sources)), *args
    )
    ok(result)
    per_source = result["per_source"]
    assert set(per_source) == set(sources)
    chosen = {}
    for source, seen in per_source.items():
        assert len(seen["counts"]) == 1, (source, seen)
        assert sum(seen["counts"].values()) == 20, (source, seen)
        chosen[source] = next(iter(seen["counts"]))
    assert len(set(chosen.values())) > 1, chosen


def test_url_hash_keeps_each_path_on_one_server(lab: Lab) -> None:
    urls = [lab.url("url", f"/catalogue/item-{n}") for n in range(10)]
    seen = probe(lab, urls, 15)
    for url in urls:
        assert len(seen[url]) == 1 and next(iter(seen[url])) in {"rs1", "rs2", "rs3"}, seen
    assert len({next(iter(counts)) for counts in seen.values()}) > 1, seen


# --------------------------------------------------------------------------- generic, ports


def test_generic_service_proxies_tcp(lab: Lab) -> None:
    result = lab.topology.run_client("--tcp", f"{lab.vip}:{PORTS['tcp']}", "--requests", "30")
    counts = ok(result)
    assert counts == {"rs1": 10, "rs2": 10, "rs3": 10}
    # a full proxy: the real servers see the load balancer, not the client
    assert result["seen_clients"] == {lab.topology.lb.address: 30}


def test_extra_ports_and_port_ranges_answer(lab: Lab) -> None:
    ports = [PORTS["extra"], EXTRA_PORT, *range(EXTRA_RANGE[0], EXTRA_RANGE[1] + 1)]
    seen = probe(lab, [f"http://{lab.vip}:{port}/" for port in ports], 6)
    for counts in seen.values():
        assert set(counts) <= {"rs1", "rs2", "rs3"} and sum(counts.values()) == 6, seen
    status = next(vs for vs in lab.daemon.status()["virtual_services"] if vs["name"] == "extra")
    assert status["ports"] == f"{PORTS['extra']},{EXTRA_PORT},{EXTRA_RANGE[0]}-{EXTRA_RANGE[1]}"
