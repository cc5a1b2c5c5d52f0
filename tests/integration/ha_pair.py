"""The HA pair's topology and its two daemons, shared by the HA integration tests.

One bridge, 198.18.0.0/24: the client (.10), two load balancers ``lb`` (lb1, 198.18.0.3,
priority 150) and ``lb2`` (198.18.0.4, priority 100), each running ``bascule run``, and two real
servers (.11, .12). VRRP goes by unicast between .3 and .4 with ``advert_interval: 0.2``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from daemon import BasculeDaemon
from netns import Host, Topology
from waiting import NotYet, wait_until

LB1, LB2 = "198.18.0.3", "198.18.0.4"
#: A daemon's start is slow on a loaded machine (two daemons, and other suites beside them).
START_TIMEOUT = 60.0


class PairTopology(Topology):
    """The standard topology with a second load balancer, ``lb2``; ``lb`` is lb1 at .3."""

    def __init__(self, real_servers: int = 2) -> None:
        super().__init__(real_servers)
        self.lb = Host("lb", f"{self.prefix}-lb", LB1)
        self.lb2 = Host("lb2", f"{self.prefix}-lb2", LB2)

    @property
    def hosts(self) -> list[Host]:
        return [self.client, self.lb, self.lb2, *self.real_servers]


def document(vip: str) -> dict[str, Any]:
    return {
        "high_availability": {
            "nodes": [
                {"name": "lb1", "address": LB1, "priority": 150},
                {"name": "lb2", "address": LB2, "priority": 100},
            ],
            "interface": "eth0",
            "virtual_router_id": 51,
            "advert_interval": 0.2,
            "preempt": False,
        },
        "virtual_services": [
            {
                "name": "web",
                "address": vip,
                "port": 80,
                "check": {"type": "tcp", "interval": 1},
                "real_servers": [
                    {"address": "198.18.0.11", "port": 80},
                    {"address": "198.18.0.12", "port": 80},
                ],
            }
        ],
    }


class Pair:
    """The two nodes, and what the tests ask of them."""

    def __init__(
        self,
        topology: PairTopology,
        *,
        run_args: Mapping[str, Sequence[str]] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.topology = topology
        self.vip = topology.vip(100)
        args = run_args or {}
        self.daemons = {
            node: BasculeDaemon(topology, host=node, run_args=args.get(node, ()), env=env)
            for node in ("lb", "lb2")
        }

    def start(self, node: str) -> None:
        daemon = self.daemons[node]
        daemon.start(timeout=START_TIMEOUT)
        daemon.apply(document(self.vip))

    def holds_vip(self, node: str) -> bool:
        out = self.topology.run(node, ["ip", "-j", "address", "show", "dev", "eth0"]).stdout
        return any(
            info.get("local") == self.vip
            for link in json.loads(out)
            for info in link.get("addr_info", [])
        )

    def active(self) -> str:
        holders = [node for node in self.daemons if self.holds_vip(node)]
        assert len(holders) == 1, f"VIP held by {holders}"
        return holders[0]

    def vrrp_state(self, node: str) -> str:
        path = self.daemons[node].data_dir / "keepalived" / "vrrp.state"
        try:
            return path.read_text().split()[0]
        except (OSError, IndexError):
            return "none"

    def settled(self) -> str:
        """Wait until one node is MASTER with the VIP and the other BACKUP; the active."""

        def probe() -> str | NotYet:
            states = {node: self.vrrp_state(node) for node in self.daemons}
            vip = {node: self.holds_vip(node) for node in self.daemons}
            masters = [node for node, state in states.items() if state == "MASTER"]
            backups = [node for node, state in states.items() if state == "BACKUP"]
            if len(masters) == 1 and len(backups) == 1 and vip[masters[0]] and not vip[backups[0]]:
                return masters[0]
            return NotYet(f"VRRP states {states}, the VIP held {vip}")

        return wait_until("one MASTER with the VIP and one BACKUP", probe, timeout=30)

    def keepalived_pids(self, node: str) -> list[int]:
        run = self.daemons[node].data_dir / "keepalived"
        pids = []
        for name in ("keepalived.pid", "vrrp.pid"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                pids.append(int((run / name).read_text().split()[0]))
        return pids

    def haproxy_pids(self, node: str) -> list[int]:
        daemon = self.daemons[node]
        master = int((daemon.data_dir / "haproxy" / "haproxy.pid").read_text().split()[0])
        return [master, *daemon.worker_pids()]

    def stop(self) -> None:
        for daemon in self.daemons.values():
            if daemon.process is not None and daemon.process.poll() is None:
                daemon.terminate()
