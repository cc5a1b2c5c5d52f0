"""Dynamic scheduling through a real daemon: adaptive (agents) and weighted response time.

Every real server runs ``bascule agent --load-file F`` next to its HTTP server; the test sets
the loads by writing the files. Weights change through HAProxy's runtime API: the worker PID
never changes (no reload).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from daemon import BASCULE, BasculeDaemon
from netns import Topology

pytestmark = pytest.mark.integration

AGENT_PORT = 8080
INTERVAL = 1  # adaptive.interval, seconds


def service(topology: Topology, scheduler: str, **overrides: Any) -> dict[str, Any]:
    vs: dict[str, Any] = {
        "name": "web",
        "address": topology.vip(),
        "port": 80,
        "type": "http",
        "scheduler": scheduler,
        "check": {"type": "http", "path": "/health", "interval": 1, "rise": 1, "fall": 2},
        "real_servers": [{"address": rs.address, "port": 80} for rs in topology.real_servers],
    }
    vs.update(overrides)
    return vs


def servers_of(daemon: BasculeDaemon) -> dict[str, dict[str, Any]]:
    (vs,) = [s for s in daemon.status()["virtual_services"] if s["name"] == "web"]
    return {rs["address"]: rs for rs in vs["real_servers"]}


def wait_for(
    daemon: BasculeDaemon,
    ok: Callable[[dict[str, dict[str, Any]]], bool],
    timeout: float,
    what: str,
) -> float:
    """Wait until ``ok(servers)``; the seconds it took."""
    start = time.monotonic()
    while True:
        servers = servers_of(daemon)
        if ok(servers):
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not {what} after {timeout}s: {servers}\n{daemon.log()}")
        time.sleep(0.2)


def applied(servers: dict[str, dict[str, Any]]) -> bool:
    """Every server's HAProxy weight is the one the scheduler decided."""
    return all(
        rs["effective_weight"] is not None and rs["engine_weight"] == rs["effective_weight"]
        for rs in servers.values()
        if rs["status"] == "up"
    )


def shares(topology: Topology, requests: int = 400) -> dict[str, int]:
    result = topology.run_client(
        "--url", f"http://{topology.vip()}/", "--requests", str(requests), "--keepalive"
    )
    assert result["failures"] == 0, result["errors"]
    counts: dict[str, int] = result["counts"]
    return counts


def test_adaptive_weights_follow_the_agents_loads_without_reload(topology: Topology) -> None:
    topology.start_real_servers()
    assert topology.workdir is not None
    files: dict[str, Path] = {}
    for rs, load in zip(topology.real_servers, (10, 50, 90), strict=True):
        files[rs.name] = topology.workdir / f"load-{rs.name}"
        files[rs.name].write_text(f"{load}\n")
    agents = {
        rs.name: topology.popen(
            rs,
            [
                BASCULE,
                "agent",
                "--bind",
                rs.address,
                "--port",
                str(AGENT_PORT),
                "--load-file",
                str(files[rs.name]),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for rs in topology.real_servers
    }
    for rs in topology.real_servers:
        topology.wait_tcp("lb", rs.address, AGENT_PORT)
    rs1, rs2, rs3 = (rs.address for rs in topology.real_servers)
    daemon = BasculeDaemon(topology).start()
    try:
        adaptive = {"url": "/load", "port": AGENT_PORT, "interval": INTERVAL, "min_percent": 5}
        daemon.apply({"virtual_services": [service(topology, "adaptive", adaptive=adaptive)]})
        topology.wait_tcp("client", topology.vip(), 80)
        wait_for(
            daemon,
            lambda s: s[rs3]["weight_reason"] == "agent load 90 %" and applied(s),
            15,
            "weighted by the agents",
        )
        workers = daemon.worker_pids()
        servers = servers_of(daemon)
        assert servers[rs1]["effective_weight"] > servers[rs2]["effective_weight"]
        assert servers[rs2]["effective_weight"] > servers[rs3]["effective_weight"]
        counts = shares(topology)
        assert counts.get("rs1", 0) > counts.get("rs2", 0) > counts.get("rs3", 0), counts
        assert counts.get("rs3", 0) < 0.15 * 400, counts
        text = daemon.cli("status").stdout
        assert "agent load 90 %" in text and "effective weights (adaptive)" in text

        # Swap the loads: the traffic follows within two intervals (CPU contention aside).
        files["rs1"].write_text("90\n")
        files["rs3"].write_text("10\n")
        took = wait_for(
            daemon,
            lambda s: (
                s[rs1]["weight_reason"] == "agent load 90 %"
                and s[rs3]["weight_reason"] == "agent load 10 %"
                and applied(s)
            ),
            2 * INTERVAL + 5,
            "following the new loads",
        )
        assert took <= 2 * INTERVAL + 5
        counts = shares(topology)
        assert counts.get("rs3", 0) > counts.get("rs2", 0) > counts.get("rs1", 0), counts

        # 101: the agent says the server is down; it takes no traffic (the document unchanged).
        files["rs2"].write_text("101\n")
        wait_for(daemon, lambda s: s[rs2]["status"] == "down", 10, "rs2 down by its agent")
        counts = shares(topology, 100)
        assert "rs2" not in counts, counts
        files["rs2"].write_text("50\n")
        wait_for(daemon, lambda s: s[rs2]["status"] == "up" and applied(s), 10, "rs2 back")

        # An agent that does not answer leaves the static weight, and says so.
        topology.stop(agents["rs3"])
        wait_for(
            daemon,
            lambda s: (
                (s[rs3]["weight_reason"] or "").startswith("agent not answering") and applied(s)
            ),
            10,
            "rs3 on its static weight",
        )
        assert daemon.worker_pids() == workers, "a weight change reloaded HAProxy"
        # The agents never touched the document: every server is still configured enabled.
        assert {rs["state"] for rs in servers_of(daemon).values()} == {"enabled"}
    finally:
        daemon.terminate()


def test_weighted_response_time_follows_the_check_times(topology: Topology) -> None:
    procs = topology.start_real_servers()
    rs2 = topology.real_servers[1].address
    daemon = BasculeDaemon(topology).start()
    try:
        daemon.apply({"virtual_services": [service(topology, "weighted_response_time")]})
        topology.wait_tcp("client", topology.vip(), 80)
        wait_for(
            daemon,
            lambda s: (
                all("EWMA" in (rs["weight_reason"] or "") for rs in s.values()) and applied(s)
            ),
            15,
            "weighted by check times",
        )
        workers = daemon.worker_pids()

        # rs2 answers (and is checked) 300 ms late: its share falls within a few checks.
        topology.stop(procs[1])
        slow = topology.start_real_server("rs2", "--delay-ms", "300")
        wait_for(
            daemon,
            lambda s: (
                s[rs2]["status"] == "up"
                and (s[rs2]["effective_weight"] or 256) * 4
                < min(rs["effective_weight"] or 0 for a, rs in s.items() if a != rs2)
                and applied(s)
            ),
            20,
            "rs2 weighed down",
        )
        counts = shares(topology, 200)
        assert counts.get("rs2", 0) < 0.15 * 200, counts
        assert counts.get("rs1", 0) > counts.get("rs2", 0) * 2, counts

        # Fast again: it wins its share back.
        topology.stop(slow)
        topology.start_real_server("rs2")
        wait_for(
            daemon,
            lambda s: (
                s[rs2]["status"] == "up"
                and (s[rs2]["effective_weight"] or 0) * 2
                > max(rs["effective_weight"] or 0 for rs in s.values())
                and applied(s)
            ),
            20,
            "rs2 recovered",
        )
        counts = shares(topology, 300)
        assert counts.get("rs2", 0) > 0.2 * 300, counts
        assert daemon.worker_pids() == workers, "a weight change reloaded HAProxy"
    finally:
        daemon.terminate()
