"""daemon/vips.py: ``PairedVips``: a single node's VIPs are the daemon's, a paired node's are
keepalived's (the daemon adds none, and hands over any it had added)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from bascule.daemon.vips import FollowsDocument, IpVipManager, PairedVips
from bascule.model import parse_document
from bascule.net.iproute import Addresses, InterfaceAddress

PAIR: dict[str, Any] = {
    "nodes": [{"name": "lb1", "address": "198.18.0.3"}, {"name": "lb2", "address": "198.18.0.4"}],
    "interface": "eth0",
}
WEB = {"name": "web", "address": "198.18.0.100", "port": 80}


class FakeIp:
    """``ip`` on a machine with 198.18.0.3/24 on eth0; records what is added and deleted."""

    def __init__(self) -> None:
        self.held = {"198.18.0.3/24"}
        self.calls: list[str] = []

    async def addresses(self, interface: str | None = None) -> Addresses:
        return Addresses(
            links=frozenset({"eth0"}),
            addresses=tuple(
                InterfaceAddress(interface="eth0", network=ipaddress.ip_interface(a))
                for a in sorted(self.held)
            ),
        )

    async def add_host_address(self, address: str, interface: str) -> None:
        self.calls.append(f"add {address} {interface}")
        self.held.add(f"{address}/32")

    async def delete_host_address(self, address: str, interface: str) -> None:
        self.calls.append(f"del {address} {interface}")
        self.held.discard(f"{address}/32")


def manager(tmp_path: Path) -> tuple[PairedVips, FakeIp]:
    ip = FakeIp()
    return PairedVips(IpVipManager(tmp_path / "vips.json", ip=ip)), ip  # type: ignore[arg-type]


async def test_a_single_node_places_its_vips(tmp_path: Path) -> None:
    vips, ip = manager(tmp_path)
    assert isinstance(vips, FollowsDocument)
    vips.follow(parse_document({"virtual_services": [WEB]}))
    await vips.ensure("198.18.0.100", None)
    assert ip.calls == ["add 198.18.0.100 eth0"]
    assert vips.owned() == frozenset({"198.18.0.100"})


async def test_a_paired_node_leaves_them_to_keepalived(tmp_path: Path) -> None:
    vips, ip = manager(tmp_path)
    vips.follow(parse_document({"high_availability": PAIR, "virtual_services": [WEB]}))
    assert await vips.placement_problems([("198.18.0.100", None)]) == [None]
    await vips.ensure("198.18.0.100", None)
    assert ip.calls == []  # keepalived adds it on the active
    assert vips.owned() == frozenset({"198.18.0.100"})  # so the planner does not ask again
    await vips.remove("198.18.0.100")
    assert vips.owned() == frozenset()


async def test_pairing_hands_the_daemons_vips_to_keepalived(tmp_path: Path) -> None:
    vips, ip = manager(tmp_path)
    vips.follow(parse_document({"virtual_services": [WEB]}))
    await vips.ensure("198.18.0.100", None)
    vips.follow(parse_document({"high_availability": PAIR, "virtual_services": [WEB]}))
    assert vips.owned() == frozenset()  # the planner ensures it again, for keepalived
    await vips.ensure("198.18.0.100", None)
    assert ip.calls == ["add 198.18.0.100 eth0", "del 198.18.0.100 eth0"]
    assert vips.inner.owned() == frozenset()


async def test_leaving_the_pair_takes_the_vips_back_once_keepalived_let_them_go(
    tmp_path: Path,
) -> None:
    vips, ip = manager(tmp_path)
    paired = parse_document({"high_availability": PAIR, "virtual_services": [WEB]})
    vips.follow(paired)
    await vips.ensure("198.18.0.100", None)
    ip.held.add("198.18.0.100/32")  # keepalived added it: this node is the active
    vips.follow(parse_document({"virtual_services": [WEB]}))
    assert vips.owned() == frozenset()
    await vips.ensure("198.18.0.100", None)  # keepalived still holds it: not the daemon's yet
    assert ip.calls == [] and vips.owned() == frozenset()
    ip.held.discard("198.18.0.100/32")  # keepalived stopped
    await vips.ensure("198.18.0.100", None)  # the reconciler's next pass
    assert ip.calls == ["add 198.18.0.100 eth0"]
    assert vips.owned() == frozenset({"198.18.0.100"})
