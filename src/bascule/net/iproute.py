"""What iproute2's JSON output (``ip -j``) says, as frozen values (pure).

Where it sits: ``shell.Ip`` runs ``ip -j ...`` and hands the text here; the VIP manager
(daemon/vips.py), the nftables engine (its DSR facts: routes, MACs) and ``bascule dsr
verify`` read the machine through these values and never parse ``ip`` themselves. Every
parser takes the text ``ip -j`` printed and is tolerant: text that is not JSON, or entries
without the fields that matter, read as nothing. Tested on output captured from iproute2 6.1.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

# Neighbour states that hold no usable link-layer address (ip-neighbour(8)).
_UNRESOLVED = frozenset({"FAILED", "INCOMPLETE"})


def _entries(text: str) -> list[dict[str, Any]]:
    """The list of objects ``ip -j`` prints; [] for anything else."""
    try:
        data = json.loads(text or "[]")
    except json.JSONDecodeError:
        return []
    if not isinstance(data, list):
        return []
    return [entry for entry in data if isinstance(entry, dict)]


@dataclass(frozen=True, kw_only=True)
class InterfaceAddress:
    """One address of an interface, with its prefix (``ip -j address show``)."""

    interface: str
    network: ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(frozen=True, kw_only=True)
class Addresses:
    """``ip -j address show``: every link's name, and the addresses in the order printed
    (an interface's primary address before its secondaries)."""

    links: frozenset[str]
    addresses: tuple[InterfaceAddress, ...]

    def of(self, interface: str, version: int) -> tuple[str, ...]:
        """The addresses of one family on ``interface``, primary first."""
        return tuple(
            str(a.network.ip)
            for a in self.addresses
            if a.interface == interface and a.network.version == version
        )


def parse_addresses(text: str) -> Addresses:
    links: set[str] = set()
    found: list[InterfaceAddress] = []
    for link in _entries(text):
        name = link.get("ifname")
        if not name:
            continue
        links.add(str(name))
        for info in link.get("addr_info", []):
            local, prefix = info.get("local"), info.get("prefixlen")
            if local is None or prefix is None:
                continue
            found.append(
                InterfaceAddress(
                    interface=str(name), network=ipaddress.ip_interface(f"{local}/{prefix}")
                )
            )
    return Addresses(links=frozenset(links), addresses=tuple(found))


@dataclass(frozen=True, kw_only=True)
class Route:
    """``ip -j route get ADDRESS``: how this machine reaches an address."""

    interface: str
    gateway: str | None
    source: str | None
    local: bool  # the address is this machine's own


def parse_route(text: str) -> Route | None:
    entries = _entries(text)
    if not entries or "dev" not in entries[0]:
        return None
    entry = entries[0]
    return Route(
        interface=str(entry["dev"]),
        gateway=entry.get("gateway"),
        source=entry.get("prefsrc"),
        local=entry.get("type") == "local",
    )


@dataclass(frozen=True, kw_only=True)
class Neighbour:
    """A resolved entry of the neighbour table (``ip -j neigh show``)."""

    address: str
    mac: str  # lower case


def parse_neighbours(text: str) -> tuple[Neighbour, ...]:
    """The resolved entries only: FAILED and INCOMPLETE ones, or those without a MAC, are
    left out."""
    return tuple(
        Neighbour(address=str(entry["dst"]), mac=str(entry["lladdr"]).lower())
        for entry in _entries(text)
        if entry.get("dst")
        and entry.get("lladdr")
        and not set(entry.get("state", [])) & _UNRESOLVED
    )


@dataclass(frozen=True, kw_only=True)
class Link:
    """A network interface (``ip -j link show``)."""

    name: str
    mac: str | None  # lower case; None for links without one
    ethernet: bool  # link_type ether: a MAC that frames are addressed to


def parse_links(text: str) -> tuple[Link, ...]:
    return tuple(
        Link(
            name=str(entry["ifname"]),
            mac=str(entry["address"]).lower() if entry.get("address") else None,
            ethernet=entry.get("link_type") == "ether",
        )
        for entry in _entries(text)
        if entry.get("ifname")
    )
