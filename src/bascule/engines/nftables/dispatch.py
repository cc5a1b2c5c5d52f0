"""The dispatch maps: how a packet finds its L4 service, one lookup whatever their number.

Where this sits in the flow of a change: ``rules.py`` builds each table of the ruleset and,
once its services' chains are there, declares here the table's dispatch maps and the rule of
its hooked chain that looks them up (NAT: ``prerouting``; DSR: ``ingress/<interface>``, one
map per family and interface). A VIP's elements (``VIP . protocol . port or range`` -> goto
its chain) are part of its ``ServiceFragment``, so a service that comes, goes or moves its
VIP or ports changes elements, never the rule. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from bascule.engines.nftables.fragments import Reuse
from bascule.engines.nftables.nft import TableCommands, goto, payload, vs_chain
from bascule.engines.nftables.view import ServiceDecision
from bascule.model import PortRange


def port_items(ranges: Sequence[PortRange]) -> list[Any]:
    """Each range as nft spells it: a port, or ``{"range": [first, last]}``."""
    return [r.first if r.first == r.last else {"range": [r.first, r.last]} for r in ranges]


def dispatch_elements(service: ServiceDecision) -> tuple[Any, ...]:
    """The VIP's elements of its dispatch map: ``VIP . protocol . port (or range)`` -> goto
    its chain, one per port range."""
    vs = service.vs
    address = str(ipaddress.ip_address(vs.address))
    target = goto(vs_chain(vs))
    return tuple(
        [{"concat": [address, vs.protocol.value, port]}, target]
        for port in port_items(vs.port_ranges)
    )


def dispatch(
    table: TableCommands,
    chain: str,
    maps: Mapping[str, Sequence[ServiceDecision]],
    tables: Reuse,
) -> None:
    """Declare each dispatch map (name -> the services it sends to their chains, of one
    family) with its elements, and the rule of ``chain`` that looks it up: one lookup per
    packet whatever the number of services, where a rule per service cost every packet
    ~9 ns per rule walked (docs/performance.md). An interval map, for the port ranges (the
    kernel's pipapo set); the model refuses a port of a VIP in two services
    (``port_clashes``), so no two elements overlap. A service's elements are map data: a
    service that comes, goes or moves its VIP changes elements, not the chain's rule."""
    for name, services in maps.items():
        family = services[0].family
        address_type = "ipv4_addr" if family == "ip" else "ipv6_addr"
        elements = [e for s in services for e in tables.fragments[s.vs.name].dispatch]
        table.map(
            name,
            [address_type, "inet_proto", "inet_service"],
            "verdict",
            elements,
            flags=["interval"],
        )
        key = [payload(family, "daddr"), {"meta": {"key": "l4proto"}}, payload("th", "dport")]
        table.rule(chain, {"vmap": {"key": {"concat": key}, "data": f"@{name}"}})
