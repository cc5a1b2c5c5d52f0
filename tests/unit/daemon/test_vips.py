"""daemon/vips.py: placing a VIP (pure), and the VIP manager over a real, slow ``ip``."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import stat
from pathlib import Path

import pytest

from bascule.daemon.vips import IpVipManager, NullVipManager, choose_interface
from bascule.net.iproute import Addresses, InterfaceAddress, parse_addresses

# `ip -j address show` captured on the development machine (Debian 12, iproute2 6.1).
IP_ADDRESS_SHOW = Path(__file__).parents[1] / "net" / "samples" / "ip-address-show.json"
MACHINE = parse_addresses(IP_ADDRESS_SHOW.read_text())


def at(interface: str, network: str) -> InterfaceAddress:
    return InterfaceAddress(interface=interface, network=ipaddress.ip_interface(network))


def machine(*addresses: InterfaceAddress, links: tuple[str, ...] = ()) -> Addresses:
    names = frozenset({a.interface for a in addresses} | set(links))
    return Addresses(links=names, addresses=addresses)


NO_SUBNET = (
    "no interface has a subnet holding {}; give the service an interface or use an address "
    "from a connected subnet"
)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("192.0.2.50", ("eth0", None)),  # the connected subnet
        ("192.0.2.2", (None, None)),  # the host's own address: used as it is
        ("127.0.0.1", (None, None)),
        ("127.0.0.5", ("lo", None)),
        ("fd00::50", ("eth0", None)),
        ("fd00::2", (None, None)),
        ("::1", (None, None)),
        ("0.0.0.0", (None, None)),  # wildcards listen everywhere: nothing to add
        ("::", (None, None)),
        ("198.18.0.100", (None, NO_SUBNET.format("198.18.0.100"))),
        ("2001:db8::100", (None, NO_SUBNET.format("2001:db8::100"))),
    ],
)
def test_choose_interface_on_this_machine(
    address: str, expected: tuple[str | None, str | None]
) -> None:
    assert choose_interface(address, None, MACHINE) == expected


def test_the_most_specific_subnet_wins() -> None:
    addresses = machine(
        at("wide", "198.18.0.1/15"),
        at("narrow", "198.18.0.1/24"),
        at("middle", "198.18.0.1/16"),
    )
    assert choose_interface("198.18.0.100", None, addresses) == ("narrow", None)
    assert choose_interface("198.18.1.100", None, addresses) == ("middle", None)
    assert choose_interface("198.19.0.100", None, addresses) == ("wide", None)


def test_a_host_address_holds_no_subnet() -> None:
    addresses = machine(at("lo", "198.18.0.1/32"), at("lo", "2001:db8::1/128"))
    assert choose_interface("198.18.0.1", None, addresses) == (None, None)
    assert choose_interface("198.18.0.2", None, addresses)[1] == NO_SUBNET.format("198.18.0.2")
    assert choose_interface("2001:db8::2", None, addresses)[1] == NO_SUBNET.format("2001:db8::2")


def test_families_do_not_mix() -> None:
    addresses = machine(at("eth0", "::/0"))
    assert choose_interface("198.18.0.100", None, addresses)[1] == NO_SUBNET.format("198.18.0.100")
    assert choose_interface("2001:db8::100", None, addresses) == ("eth0", None)


def test_a_named_interface_is_used_even_outside_its_subnets() -> None:
    assert choose_interface("198.18.0.100", "eth0", MACHINE) == ("eth0", None)
    assert choose_interface("2001:db8::100", "lo", MACHINE) == ("lo", None)


def test_a_named_interface_does_not_add_an_address_already_present() -> None:
    assert choose_interface("192.0.2.2", "lo", MACHINE) == (None, None)


def test_a_missing_interface_is_a_problem() -> None:
    assert choose_interface("198.18.0.100", "eth9", MACHINE) == (
        None,
        "interface 'eth9' does not exist on this machine",
    )


def test_an_interface_without_addresses_is_found_by_its_link() -> None:
    # ifb0 has no address: only its link in `ip -j address show` names it
    assert choose_interface("198.18.0.100", "ifb0", MACHINE) == ("ifb0", None)
    assert choose_interface("198.18.0.100", "ifb1", MACHINE)[1] == (
        "interface 'ifb1' does not exist on this machine"
    )


async def test_the_null_vip_manager_remembers_and_touches_nothing() -> None:
    manager = NullVipManager()
    assert await manager.placement_problems([("198.18.0.100", "eth9")]) == [None]
    await manager.ensure("198.18.0.100", None)
    await manager.ensure("2001:db8::100", "eth0")
    assert manager.owned() == frozenset({"198.18.0.100", "2001:db8::100"})
    await manager.remove("198.18.0.100")
    await manager.remove("198.18.0.200")
    assert manager.added == {"2001:db8::100": "eth0"}


# A slow `ip`: it logs its arguments, then waits until the test's event loop shows it is
# alive (another coroutine creates $RELEASE) or 10 s pass, and answers as iproute2 would.
SLOW_IP = """#!/bin/sh
echo "$*" >> "$IP_LOG"
i=0
while [ ! -e "$RELEASE" ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i + 1)); done
[ -e "$RELEASE" ] || echo "timed out" >> "$IP_LOG"
[ "$*" = "-j address show" ] && cat "$SAMPLE"
exit 0
"""


@pytest.fixture
def slow_ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A fake ``ip`` first on PATH; returns (its log, the file that releases it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ip"
    fake.write_text(SLOW_IP)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    log, release = tmp_path / "ip.log", tmp_path / "release"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("IP_LOG", str(log))
    monkeypatch.setenv("RELEASE", str(release))
    monkeypatch.setenv("SAMPLE", str(IP_ADDRESS_SHOW))
    return log, release


async def test_a_slow_ip_does_not_stall_the_event_loop(
    tmp_path: Path, slow_ip: tuple[Path, Path]
) -> None:
    log, release = slow_ip
    manager = IpVipManager(tmp_path / "vips.json")
    wanted = [("192.0.2.50", None), ("198.18.0.100", None), ("192.0.2.2", "eth9")]
    placing = asyncio.create_task(manager.placement_problems(wanted))

    # While `ip` waits, this coroutine keeps ticking: it sees `ip` start, then releases it.
    # Were the VIP manager blocking the loop, it would only run after `ip` gave up.
    ticks = 0
    while not log.exists():
        ticks += 1
        await asyncio.sleep(0.01)
        assert ticks < 1000, "the fake ip never started"
    release.touch()
    problems = await asyncio.wait_for(placing, timeout=30)

    assert problems == [
        None,
        NO_SUBNET.format("198.18.0.100"),
        "interface 'eth9' does not exist on this machine",
    ]
    # one listing of the machine for the whole change, and `ip` was released, not timed out
    assert log.read_text().splitlines() == ["-j address show"]

    await manager.ensure("192.0.2.50", None)
    await manager.remove("192.0.2.50")
    assert log.read_text().splitlines()[1:] == [
        "-j address show",
        "address add 192.0.2.50/32 dev eth0",
        "address del 192.0.2.50/32 dev eth0",
    ]
    assert manager.owned() == frozenset()


async def test_vips_missing_from_the_machine_are_forgotten_and_added_again(
    tmp_path: Path,
) -> None:
    """At boot vips.json remembers VIPs the machine no longer has: forgotten at start, the
    first reconcile adds them again (the planner only adds what the manager does not own)."""
    from bascule.net.shell import Completed, Ip

    state = tmp_path / "vips.json"
    state.write_text('{"192.0.2.50": "eth0", "192.0.2.60": "eth0"}')
    sample = IP_ADDRESS_SHOW.read_text()
    ran: list[list[str]] = []

    async def runner(argv: list[str], stdin: str | None) -> Completed:
        ran.append(argv)
        if argv[:2] == ["ip", "-j"]:
            # the sample machine, with 192.0.2.60 put back by hand (still present)
            data = sample.replace('"local":"192.0.2.2"', '"local":"192.0.2.60"', 1)
            return Completed(returncode=0, stdout=data, stderr="")
        return Completed(returncode=0, stdout="", stderr="")

    manager = IpVipManager(state, ip=Ip(runner))
    assert manager.owned() == frozenset({"192.0.2.50", "192.0.2.60"})
    assert await manager.forget_missing() == ["192.0.2.50"]
    assert manager.owned() == frozenset({"192.0.2.60"})
    assert '"192.0.2.50"' not in state.read_text()  # remembered across a restart too
    await manager.ensure("192.0.2.50", None)
    assert ["ip", "address", "add", "192.0.2.50/32", "dev", "eth0"] in ran
    assert manager.owned() == frozenset({"192.0.2.50", "192.0.2.60"})
