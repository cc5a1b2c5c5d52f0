"""engines/nftables/machine.py over a fake Runner: the DSR interface and MACs, the segments
DSR needs, the sysctls NAT needs."""

from __future__ import annotations

import asyncio
import json

import pytest
from l4_documents import FakeRunner, config

from bascule.engines.nftables.machine import MAC_REFRESH, Machine
from bascule.engines.nftables.shell import NftablesShell
from bascule.errors import EngineRejected
from bascule.net.shell import Completed


def answer(stdout: object) -> Completed:
    return Completed(returncode=0, stdout=json.dumps(stdout), stderr="")


def machine(runner: FakeRunner, *, interface: str | None = None) -> tuple[Machine, list[float]]:
    now = [0.0]
    return Machine(NftablesShell(runner=runner), interface=interface, clock=lambda: now[0]), now


NEIGHBOURS = {
    f"ip -j neigh show to 198.18.0.1{i}": answer(
        [{"dst": f"198.18.0.1{i}", "lladdr": f"02:00:00:00:00:1{i}", "state": ["REACHABLE"]}]
    )
    for i in (1, 2)
}
LINK = answer([{"ifname": "eth1", "link_type": "ether", "address": "02:00:00:00:00:02"}])


def test_dsr_facts_come_from_the_route_the_link_and_the_neighbours() -> None:
    runner = FakeRunner(
        {
            **NEIGHBOURS,
            "ip -j neigh show to 198.18.0.13": answer([]),
            "ip -j route get": answer([{"dst": "198.18.0.11", "dev": "eth1"}]),
            "ip -j link show dev eth1": LINK,
        }
    )
    facts, now = machine(runner)
    assert facts.environment(maglev_size=31).lb_mac is None  # nothing asked yet
    asyncio.run(facts.resolve_macs(config(forwarding="dsr"), refresh=False))
    environment = facts.environment(maglev_size=31)
    assert (environment.interface, environment.lb_mac) == ("eth1", "02:00:00:00:00:02")
    assert environment.server_macs == {
        "198.18.0.11": "02:00:00:00:00:11",
        "198.18.0.12": "02:00:00:00:00:12",
    }
    assert runner.ran("ping") == [["ping", "-c", "1", "-W", "1", "-I", "eth1", "198.18.0.13"]]
    # a refresh is due at once, then every MAC_REFRESH seconds
    assert facts.refresh_due()
    asyncio.run(facts.resolve_macs(config(forwarding="dsr"), refresh=True))
    assert not facts.refresh_due()
    now[0] += MAC_REFRESH
    assert facts.refresh_due()


def test_nat_asks_no_mac() -> None:
    runner = FakeRunner()
    facts, _ = machine(runner, interface="eth0")
    asyncio.run(facts.resolve_macs(config(), refresh=True))
    assert runner.calls == []
    assert facts.environment(maglev_size=31).interface == "eth0"


def test_check_refuses_a_dsr_server_behind_a_gateway() -> None:
    routed = answer([{"dst": "198.18.0.11", "gateway": "198.18.0.1", "dev": "eth0"}])
    facts, _ = machine(FakeRunner({"ip -j route get": routed}))
    with pytest.raises(EngineRejected, match=r"198.18.0.11:80 is not on a directly connected"):
        asyncio.run(facts.check(config(forwarding="dsr")))
    asyncio.run(facts.check(config()))  # NAT routes anywhere


def test_check_asks_the_route_to_an_on_link_dsr_server_once_in_a_while() -> None:
    runner = FakeRunner({"ip -j route get": answer([{"dst": "198.18.0.11", "dev": "eth0"}])})
    facts, now = machine(runner)
    dsr = config(forwarding="dsr")
    asyncio.run(facts.check(dsr))
    assert len(runner.ran("ip -j route get")) == 3
    now[0] = MAC_REFRESH - 1  # every change is checked: the routes found on-link stand
    asyncio.run(facts.check(dsr))
    assert len(runner.ran("ip -j route get")) == 3
    now[0] = MAC_REFRESH + 1  # then they are asked again, and a routed one is refused
    routed = answer([{"dst": "198.18.0.11", "gateway": "198.18.0.1", "dev": "eth0"}])
    runner.answers["ip -j route get"] = routed
    with pytest.raises(EngineRejected, match="is not on a directly connected"):
        asyncio.run(facts.check(dsr))
    with pytest.raises(EngineRejected, match="is not on a directly connected"):
        asyncio.run(facts.check(dsr))  # a refused server is asked at every check


def test_nat_prerequisites_are_set_once() -> None:
    runner = FakeRunner({"ip -j route get": answer([{"dst": "198.18.0.11", "dev": "eth0"}])})
    facts, _ = machine(runner)
    asyncio.run(facts.prepare_nat(config()))
    [sysctl] = runner.ran("sysctl")
    assert "net.ipv4.ip_forward=1" in sysctl
    assert "net.ipv4.conf.eth0.send_redirects=0" in sysctl
    assert "net.ipv6.conf.all.forwarding=1" not in sysctl
    asyncio.run(facts.prepare_nat(config()))
    assert len(runner.ran("sysctl")) == 1
    asyncio.run(facts.prepare_nat(config(forwarding="dsr")))  # DSR forwards at ingress
    assert len(runner.ran("sysctl")) == 1
