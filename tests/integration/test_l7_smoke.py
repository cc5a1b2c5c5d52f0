"""The whole appliance end to end: a real daemon in the lb namespace, HAProxy, real traffic."""

from __future__ import annotations

from typing import Any

import pytest
from daemon import BasculeDaemon
from netns import Topology

pytestmark = pytest.mark.integration


def web_service(topology: Topology, **overrides: Any) -> dict[str, Any]:
    service = {
        "name": "web",
        "address": topology.vip(),
        "port": 80,
        "type": "http",
        "scheduler": "round_robin",
        "check": {"type": "http", "path": "/health", "interval": 1, "rise": 1, "fall": 2},
        "real_servers": [{"address": rs.address, "port": 80} for rs in topology.real_servers],
    }
    service.update(overrides)
    return service


def test_round_robin_rotates_exactly_and_adds_x_forwarded_for(topology: Topology) -> None:
    topology.start_real_servers()
    daemon = BasculeDaemon(topology).start()
    try:
        daemon.apply({"virtual_services": [web_service(topology)]})
        topology.wait_tcp("client", topology.vip(), 80)
        result = topology.run_client(
            "--url", f"http://{topology.vip()}/echo", "--requests", "300", "--keepalive"
        )
        assert result["failures"] == 0, result["errors"]
        assert result["counts"] == {"rs1": 100, "rs2": 100, "rs3": 100}
        assert result["seen_forwarded_for"] == {"198.18.0.10": 300} or "198.18.0.10" in str(
            result["seen_forwarded_for"]
        )
        # the VIP went on the lb's interface and leaves with the service
        addresses = topology.run("lb", ["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
        assert f"{topology.vip()}/32" in addresses
        daemon.apply({"virtual_services": []})
        addresses = topology.run("lb", ["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
        assert topology.vip() not in addresses
    finally:
        daemon.terminate()
