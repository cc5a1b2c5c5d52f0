"""The planned handover's shell (daemon/handover.py) on a fake machine: the table put in place
once per pair, a drain (ARP settings, the VIP on lo, the draining set), the peer's forwarding,
and the end of a drain (the old connections reset, the VIP off lo) unless the node is the
active again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bascule.daemon.handover import Handover
from bascule.engines.keepalived.handover import DrainedService
from bascule.model import Configuration, parse_document
from bascule.net.shell import Completed

DOCUMENT: dict[str, Any] = {
    "high_availability": {
        "nodes": [
            {"name": "lb1", "address": "198.18.0.3", "priority": 150},
            {"name": "lb2", "address": "198.18.0.4", "priority": 100},
        ],
        "interface": "eth0",
    },
    "virtual_services": [
        {"name": "hold", "address": "198.18.0.100", "port": 7000, "type": "generic",
         "drain_time": 1},
        {"name": "web", "address": "198.18.0.100", "port": 80, "type": "http"},
    ],
}  # fmt: skip
HOLD = DrainedService(name="hold", address="198.18.0.100", port=7000, drain_time=1)


class Machine:
    """The commands the shell runs, and the addresses on lo they change."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, ...]] = []
        self.scripts: list[str] = []
        self.on_lo: set[str] = set()

    async def run(self, argv: Sequence[str], stdin: str | None) -> Completed:
        self.commands.append(tuple(argv))
        if stdin is not None:
            self.scripts.append(stdin)
        if list(argv[:4]) == ["ip", "-j", "address", "show"]:
            infos = [{"local": a, "prefixlen": 32} for a in sorted(self.on_lo)]
            listing = json.dumps([{"ifname": "lo", "addr_info": infos}])
            return Completed(returncode=0, stdout=listing, stderr="")
        if list(argv[:3]) == ["ip", "address", "add"]:
            self.on_lo.add(argv[3].split("/")[0])
        if list(argv[:3]) == ["ip", "address", "del"]:
            self.on_lo.discard(argv[3].split("/")[0])
        return Completed(returncode=0, stdout="", stderr="")


class Config:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = parse_document(document)

    def desired(self) -> Configuration:
        return self.document


class Vrrp:
    state = "BACKUP"


class Keepalived:
    def __init__(self) -> None:
        self.state = Vrrp()

    async def addresses(self) -> frozenset[str]:
        return frozenset({"198.18.0.3"})

    def vrrp(self) -> Vrrp:
        return self.state


@pytest.fixture
def machine() -> Machine:
    return Machine()


def handover(machine: Machine, tmp_path: Path, document: dict[str, Any] = DOCUMENT) -> Handover:
    sysctls = {tmp_path / "arp_ignore": "1", tmp_path / "arp_announce": "2"}
    return Handover(
        config=Config(document),  # type: ignore[arg-type]
        keepalived=Keepalived(),  # type: ignore[arg-type]
        runner=machine.run,
        sysctls=sysctls,
    )


async def test_the_table_is_put_in_place_once_per_pair(machine: Machine, tmp_path: Path) -> None:
    shell = handover(machine, tmp_path)
    await shell.refresh()
    await shell.refresh()
    tables = [s for s in machine.scripts if "table ip bascule_handover {" in s]
    assert len(tables) == 1 and "dup to 198.18.0.4 device eth0" in tables[0]
    shell.config = Config({"virtual_services": DOCUMENT["virtual_services"]})  # type: ignore[assignment]
    await shell.refresh()  # a single node: the table goes
    assert machine.scripts[-1] == "delete table ip bascule_handover\n"


async def test_a_drain_keeps_the_vip_on_lo_then_resets_what_is_left(
    machine: Machine, tmp_path: Path
) -> None:
    shell = handover(machine, tmp_path)
    assert await shell.begin() == (HOLD,)
    assert (tmp_path / "arp_ignore").read_text() == "1"
    assert machine.on_lo == {"198.18.0.100"}
    assert (
        "add element ip bascule_handover draining { 198.18.0.100 . 7000 timeout 3s }"
        in (machine.scripts[-1])
    )
    await shell.refresh()  # a refresh during the drain leaves the VIP on lo
    assert machine.on_lo == {"198.18.0.100"}
    shell.finish_later((HOLD,))
    await asyncio.wait_for(asyncio.gather(*shell._tasks), timeout=10)
    reset = ("ss", "-K", "-t", "state", "connected", "src", "198.18.0.100", "sport", "=", ":7000")
    assert reset in machine.commands
    assert machine.on_lo == set()


async def test_a_node_that_is_the_active_again_keeps_its_connections(
    machine: Machine, tmp_path: Path
) -> None:
    shell = handover(machine, tmp_path)
    await shell.begin()
    shell.keepalived.state.state = "MASTER"  # type: ignore[attr-defined]
    shell.finish_later((HOLD,))
    await asyncio.wait_for(asyncio.gather(*shell._tasks), timeout=10)
    assert not [c for c in machine.commands if c[0] == "ss"]
    assert machine.on_lo == set()


async def test_the_new_active_forwards_for_the_drain_time(machine: Machine, tmp_path: Path) -> None:
    shell = handover(machine, tmp_path)
    await shell.forward([HOLD])
    assert machine.scripts[-1] == (
        "add element ip bascule_handover forwarded { 198.18.0.100 . 7000 timeout 1s }\n"
    )
    assert machine.on_lo == set()


async def test_a_stale_vip_on_lo_is_taken_off(machine: Machine, tmp_path: Path) -> None:
    """A daemon restarted during a drain: the VIP it left on lo goes at the next refresh."""
    machine.on_lo = {"198.18.0.100", "127.0.0.1"}
    await handover(machine, tmp_path).refresh()
    assert machine.on_lo == {"127.0.0.1"}
