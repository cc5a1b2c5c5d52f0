"""The L4 sorry server end to end (issue 12): ``not_available.sorry_server`` on a NAT service.

A routed NAT service with one real server (rs1) and a sorry server (rs2), both answering
HTTP and routing back through the load balancer. While rs1 is up, every connection goes to
it; when its check fails, the service's scheduling map holds the sorry server alone (a map
update, no rule re-added) and the status says ``sorry``; when rs1 returns, traffic goes back.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from daemon import BasculeDaemon
from netns import Topology
from waiting import wait_until

pytestmark = pytest.mark.integration


def rule_handles(topo: Topology) -> set[int]:
    done = topo.run("lb", ["nft", "-j", "list", "table", "ip", "bascule"])
    items = json.loads(done.stdout)["nftables"]
    return {item["rule"]["handle"] for item in items if "rule" in item}


def test_l4_sorry_server_while_no_real_server_is_up(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=2)
    topo.route_back_through_lb()
    rs1, rs2 = topo.real_servers
    server = topo.start_real_server(rs1)
    topo.start_real_server(rs2)
    daemon = BasculeDaemon(topo).start()
    vip = topo.vip()
    key = f"{rs1.address}:80"

    def status() -> str:
        return str(
            next(s for s in daemon.status()["virtual_services"] if s["name"] == "web")["status"]
        )

    def counts(requests: int) -> dict[str, int]:
        result = topo.run_client("--url", f"http://{vip}/", "--requests", str(requests))
        assert result["failures"] == 0, result["errors"]
        return dict(result["counts"])

    try:
        daemon.apply(
            {
                "virtual_services": [
                    {
                        "name": "web",
                        "address": vip,
                        "port": 80,
                        "mode": "l4",
                        "forwarding": "nat",
                        "check": {"type": "tcp", "interval": 1, "rise": 1, "fall": 1},
                        "real_servers": [{"address": rs1.address, "port": 80}],
                        "not_available": {"sorry_server": {"address": rs2.address, "port": 80}},
                    }
                ]
            }
        )
        daemon.wait_status("web", key, "up", timeout=15)
        assert counts(20) == {"rs1": 20}
        handles = rule_handles(topo)

        topo.stop(server)
        daemon.wait_status("web", key, "down", timeout=10)
        wait_until("the service reports sorry", lambda: status() == "sorry", timeout=10)
        assert counts(20) == {"rs2": 20}  # the sorry server answers, rs2 of the topology

        topo.start_real_server(rs1)
        daemon.wait_status("web", key, "up", timeout=10)
        wait_until("the service is up again", lambda: status() == "up", timeout=10)
        assert counts(20) == {"rs1": 20}
        assert rule_handles(topo) == handles  # map updates only
    finally:
        daemon.terminate()
