"""The pure helpers of daemon/vips.py: reading `ip -j addr show` and placing a VIP."""

from __future__ import annotations

import ipaddress
import json

import pytest

from bascule.daemon import vips
from bascule.daemon.vips import InterfaceAddress, NullVipManager, choose_interface, parse_ip_addr

# `ip -j addr show` captured on the development machine (Debian 12, iproute2 6.1).
IP_ADDR_SHOW = json.loads(
    """[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue",
"operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"loopback",
"address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","addr_info":[{"family":"inet",
"local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo","valid_life_time":4294967295,
"preferred_life_time":4294967295},{"family":"inet6","local":"::1","prefixlen":128,"scope":"host",
"valid_life_time":4294967295,"preferred_life_time":4294967295}]},{"ifindex":2,"ifname":"ifb0",
"flags":["BROADCAST","NOARP"],"mtu":1500,"qdisc":"noop","operstate":"DOWN","group":"default",
"txqlen":32,"link_type":"ether","address":"5a:16:58:99:21:e9","broadcast":"ff:ff:ff:ff:ff:ff",
"addr_info":[]},{"ifindex":4,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],
"mtu":1400,"qdisc":"pfifo_fast","operstate":"UP","group":"default","txqlen":1000,
"link_type":"ether","address":"02:fc:00:00:00:01","broadcast":"ff:ff:ff:ff:ff:ff",
"addr_info":[{"family":"inet","local":"192.0.2.2","prefixlen":24,"broadcast":"192.0.2.255",
"scope":"global","label":"eth0","valid_life_time":4294967295,"preferred_life_time":4294967295},
{"family":"inet6","local":"fd00::2","prefixlen":64,"scope":"global","nodad":true,
"valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6",
"local":"fe80::fc:ff:fe00:1","prefixlen":64,"scope":"link","valid_life_time":4294967295,
"preferred_life_time":4294967295}]}]"""
)

MACHINE = parse_ip_addr(IP_ADDR_SHOW)


def at(interface: str, network: str) -> InterfaceAddress:
    return InterfaceAddress(interface=interface, network=ipaddress.ip_interface(network))


def test_parse_ip_addr() -> None:
    assert parse_ip_addr(IP_ADDR_SHOW) == [
        at("lo", "127.0.0.1/8"),
        at("lo", "::1/128"),
        at("eth0", "192.0.2.2/24"),
        at("eth0", "fd00::2/64"),
        at("eth0", "fe80::fc:ff:fe00:1/64"),
    ]


def test_parse_ip_addr_skips_entries_without_an_address() -> None:
    data = [
        {"ifname": "eth1"},
        {"ifname": "eth2", "addr_info": [{"family": "inet"}, {"local": "198.18.0.1"}]},
        {"ifname": "eth3", "addr_info": [{"local": "198.18.0.1", "prefixlen": 15}]},
    ]
    assert parse_ip_addr(data) == [at("eth3", "198.18.0.1/15")]


def test_parse_ip_addr_of_nothing() -> None:
    assert parse_ip_addr([]) == []


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
    addresses = [
        at("wide", "198.18.0.1/15"),
        at("narrow", "198.18.0.1/24"),
        at("middle", "198.18.0.1/16"),
    ]
    assert choose_interface("198.18.0.100", None, addresses) == ("narrow", None)
    assert choose_interface("198.18.1.100", None, addresses) == ("middle", None)
    assert choose_interface("198.19.0.100", None, addresses) == ("wide", None)


def test_a_host_address_holds_no_subnet() -> None:
    addresses = [at("lo", "198.18.0.1/32"), at("lo", "2001:db8::1/128")]
    assert choose_interface("198.18.0.1", None, addresses) == (None, None)
    assert choose_interface("198.18.0.2", None, addresses)[1] == NO_SUBNET.format("198.18.0.2")
    assert choose_interface("2001:db8::2", None, addresses)[1] == NO_SUBNET.format("2001:db8::2")


def test_families_do_not_mix() -> None:
    addresses = [at("eth0", "::/0")]
    assert choose_interface("198.18.0.100", None, addresses)[1] == NO_SUBNET.format("198.18.0.100")
    assert choose_interface("2001:db8::100", None, addresses) == ("eth0", None)


def test_a_named_interface_is_used_even_outside_its_subnets() -> None:
    assert choose_interface("198.18.0.100", "eth0", MACHINE) == ("eth0", None)
    assert choose_interface("2001:db8::100", "lo", MACHINE) == ("lo", None)


def test_a_named_interface_does_not_add_an_address_already_present() -> None:
    assert choose_interface("192.0.2.2", "lo", MACHINE) == (None, None)


def test_a_missing_interface_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vips, "_link_exists", lambda name: False)
    assert choose_interface("198.18.0.100", "eth9", MACHINE) == (
        None,
        "interface 'eth9' does not exist on this machine",
    )


def test_an_interface_without_addresses_is_found_by_its_link(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ifb0 has no address, so only /sys/class/net knows it
    monkeypatch.setattr(vips, "_link_exists", lambda name: name == "ifb0")
    assert choose_interface("198.18.0.100", "ifb0", MACHINE) == ("ifb0", None)
    assert choose_interface("198.18.0.100", "ifb1", MACHINE)[1] == (
        "interface 'ifb1' does not exist on this machine"
    )


def test_link_exists_reads_sys_class_net() -> None:
    assert vips._link_exists("lo")
    assert not vips._link_exists("bascule-none0")


async def test_the_null_vip_manager_remembers_and_touches_nothing() -> None:
    manager = NullVipManager()
    assert manager.placement_problem("198.18.0.100", "eth9") is None
    await manager.ensure("198.18.0.100", None)
    await manager.ensure("2001:db8::100", "eth0")
    assert manager.owned() == frozenset({"198.18.0.100", "2001:db8::100"})
    await manager.remove("198.18.0.100")
    await manager.remove("198.18.0.200")
    assert manager.added == {"2001:db8::100": "eth0"}
