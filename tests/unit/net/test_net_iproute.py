"""net/iproute.py: what ``ip -j`` prints, read as values (captured iproute2 6.1 output)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from bascule.net.iproute import (
    InterfaceAddress,
    Link,
    Neighbour,
    Route,
    parse_addresses,
    parse_links,
    parse_neighbours,
    parse_route,
)

LB = "02:00:00:00:00:02"
RS1, RS2 = "02:00:00:00:00:0b", "02:00:00:00:00:0c"

# `ip -j address show` captured on the development machine (Debian 12, iproute2 6.1).
IP_ADDRESS_SHOW = (Path(__file__).parent / "samples" / "ip-address-show.json").read_text()


def at(interface: str, network: str) -> InterfaceAddress:
    return InterfaceAddress(interface=interface, network=ipaddress.ip_interface(network))


def test_parse_addresses() -> None:
    machine = parse_addresses(IP_ADDRESS_SHOW)
    assert machine.addresses == (
        at("lo", "127.0.0.1/8"),
        at("lo", "::1/128"),
        at("eth0", "192.0.2.2/24"),
        at("eth0", "fd00::2/64"),
        at("eth0", "fe80::fc:ff:fe00:1/64"),
    )
    # ifb0 has no address, yet it is a link
    assert machine.links == frozenset({"lo", "ifb0", "eth0"})
    assert machine.of("eth0", 4) == ("192.0.2.2",)
    assert machine.of("eth0", 6) == ("fd00::2", "fe80::fc:ff:fe00:1")


def test_parse_addresses_skips_entries_without_an_address() -> None:
    text = json.dumps(
        [
            {"ifname": "eth1"},
            {"ifname": "eth2", "addr_info": [{"family": "inet"}, {"local": "198.18.0.1"}]},
            {"ifname": "eth3", "addr_info": [{"local": "198.18.0.1", "prefixlen": 15}]},
            {"addr_info": [{"local": "198.18.0.9", "prefixlen": 15}]},  # no name: not a link
        ]
    )
    machine = parse_addresses(text)
    assert machine.addresses == (at("eth3", "198.18.0.1/15"),)
    assert machine.links == frozenset({"eth1", "eth2", "eth3"})


def test_parse_addresses_of_nothing() -> None:
    for text in ("[]", "", "not json", "{}"):
        assert parse_addresses(text).addresses == ()


def test_parse_route() -> None:
    direct = '[{"dst":"198.18.0.11","dev":"eth0","prefsrc":"198.18.0.2","flags":[],"uid":0}]'
    routed = '[{"dst":"10.1.1.1","gateway":"198.18.0.1","dev":"eth1","prefsrc":"198.18.0.2"}]'
    local = '[{"type":"local","dst":"198.18.0.2","dev":"lo","prefsrc":"198.18.0.2"}]'

    assert parse_route(direct) == Route(
        interface="eth0", gateway=None, source="198.18.0.2", local=False
    )
    via = parse_route(routed)
    assert via is not None and via.gateway == "198.18.0.1" and via.interface == "eth1"
    mine = parse_route(local)
    assert mine is not None and mine.local
    assert parse_route("") is None
    assert parse_route("not json") is None
    assert parse_route('[{"dst": "198.18.0.11"}]') is None


def test_parse_neighbours_keeps_resolved_entries() -> None:
    text = json.dumps(
        [
            {"dst": "198.18.0.11", "dev": "eth0", "lladdr": RS1.upper(), "state": ["REACHABLE"]},
            {"dst": "198.18.0.50", "dev": "eth0", "lladdr": RS1, "state": ["STALE"]},
            {"dst": "198.18.0.12", "dev": "eth0", "lladdr": RS2, "state": ["FAILED"]},
            {"dst": "198.18.0.13", "dev": "eth0", "state": ["INCOMPLETE"]},
        ]
    )
    assert parse_neighbours(text) == (
        Neighbour(address="198.18.0.11", mac=RS1),
        Neighbour(address="198.18.0.50", mac=RS1),
    )
    assert parse_neighbours("garbage") == ()


def test_parse_links() -> None:
    text = json.dumps(
        [
            {"ifname": "lo", "link_type": "loopback", "address": "00:00:00:00:00:00"},
            {"ifname": "eth0", "link_type": "ether", "address": LB.upper()},
            {"ifname": "wg0", "link_type": "none"},
        ]
    )
    assert parse_links(text) == (
        Link(name="lo", mac="00:00:00:00:00:00", ethernet=False),
        Link(name="eth0", mac=LB, ethernet=True),
        Link(name="wg0", mac=None, ethernet=False),
    )
    assert parse_links("") == ()
