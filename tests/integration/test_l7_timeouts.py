"""Per-service timeouts and slow start end to end (issue 12).

- ``timeouts.idle``: a client connection that sends nothing is closed by HAProxy after that
  many seconds (a TCP service: HTTP's first request is bounded by the fixed http-request
  timeout);
- ``slow_start``: a real server back from down ramps up to its weight, read from the runtime
  API (``show stat``'s weight column) while it climbs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest
from daemon import BasculeDaemon
from netns import Topology
from waiting import wait_until

pytestmark = pytest.mark.integration

CHECK = {"type": "http", "path": "/health", "interval": 1, "rise": 1, "fall": 1}
IDLE = 2
IDLE_PROBE = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
start = time.monotonic()
assert s.recv(1) == b""
print(round(time.monotonic() - start, 2))
"""


def engine_weight(daemon: BasculeDaemon, backend: str, server: str) -> int:
    lines = daemon.haproxy("show stat").splitlines()
    columns = lines[0].lstrip("# ").split(",")
    for line in lines[1:]:
        values = dict(zip(columns, line.split(","), strict=False))
        if values.get("pxname") == backend and values.get("svname") == server:
            return int(values["weight"])
    raise AssertionError(f"no server {backend}/{server} in show stat")


def test_idle_timeout_and_slow_start(make_topology: Callable[..., Topology]) -> None:
    topology = make_topology(real_servers=2)
    rs1, rs2 = topology.real_servers
    assert topology.workdir is not None
    control = topology.workdir / "rs1-health"
    topology.start_real_server(rs1, "--control", str(control))
    topology.start_real_server(rs2)
    for host in (rs1, rs2):
        topology.start_real_server(host, "--mode", "tcp-echo", port=7000)
    daemon = BasculeDaemon(topology).start()
    vip = topology.vip()
    try:
        daemon.apply(
            {
                "virtual_services": [
                    {
                        "name": "web",
                        "address": vip,
                        "port": 80,
                        "scheduler": "weighted_round_robin",
                        "slow_start": 20,
                        "check": CHECK,
                        "real_servers": [
                            {"address": rs1.address, "port": 80, "weight": 1000},
                            # not a multiple of 1000: engine weights 256, not 1 (ramp visible)
                            {"address": rs2.address, "port": 80, "weight": 999},
                        ],
                    },
                    {
                        "name": "echo",
                        "address": vip,
                        "port": 7000,
                        "type": "generic",
                        "timeouts": {"idle": IDLE},
                        "check": {"type": "tcp", "interval": 1},
                        "real_servers": [{"address": rs2.address, "port": 7000}],
                    },
                ]
            }
        )
        probe = topology.run("client", [sys.executable, "-c", IDLE_PROBE, vip, "7000"], timeout=30)
        closed_after = float(probe.stdout)
        assert IDLE - 0.5 <= closed_after <= IDLE + 3, closed_after

        server = f"{rs1.address}:80"
        daemon.wait_status("web", server, "up", timeout=20)
        full = engine_weight(daemon, "web", server)
        control.write_text("down\n")
        daemon.wait_status("web", server, "down", timeout=15)
        control.unlink()
        daemon.wait_status("web", server, "up", timeout=15)
        first = engine_weight(daemon, "web", server)
        assert first < full  # ramping, not at its weight at once
        wait_until(
            "the weight climbs",
            lambda: first < engine_weight(daemon, "web", server) < full,
            timeout=15,
        )
    finally:
        daemon.terminate()
