"""The nft JSON vocabulary of Bascule's tables: object names, expressions, a command builder.

Where this sits in the flow of a change: ``rules.py`` spells the L4 tables that ``view.py``
decided with these helpers, and ``transaction.py`` the commands against what runs; the result
is the ``nft -j`` schema (libnftables-json(5)) that ``shell.py`` checks and applies. Pure: no
I/O.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bascule.model import RealServer, VirtualService

TABLE = "bascule"
# The families of Bascule's tables: NAT per address family, DSR at the netdev ingress hook.
FAMILIES = ("ip", "ip6", "netdev")
PERSISTENCE_SET_SIZE = 65535
Json = dict[str, Any]


@functools.lru_cache(maxsize=16384)
def family_of(address: str) -> str:
    """The nft family of an address: ``ip`` or ``ip6`` (remembered: every build asks it of
    every real server)."""
    return "ip" if ipaddress.ip_address(address).version == 4 else "ip6"


# -- names ----------------------------------------------------------------------------------
# nft identifiers are [A-Za-z_][A-Za-z0-9_/.-]* (scanner.l "identifier"), so names read as
# paths; an IPv6 address's colons become underscores.


def _rs_id(vs: VirtualService, rs: RealServer) -> str:
    return f"{vs.name}/{rs.address.replace(':', '_')}/{rs.port}"


def vs_chain(vs: VirtualService) -> str:
    return f"vs/{vs.name}"


def rs_chain(vs: VirtualService, rs: RealServer) -> str:
    return f"rs/{_rs_id(vs, rs)}"


def persistence_set(vs: VirtualService, rs: RealServer) -> str:
    return f"persist/{_rs_id(vs, rs)}"


def sched_map(vs: VirtualService) -> str:
    """The service's scheduling map: numgen or jhash slot -> goto rs chain."""
    return f"sched/{vs.name}"


def fixed_map(vs: VirtualService) -> str:
    """fixed_weighting's one-element map: the service's protocol -> goto the chosen server."""
    return f"fixed/{vs.name}"


def pin_map(vs: VirtualService, rs: RealServer) -> str:
    """Whether a persistent client goes back to the server: protocol -> goto it, or empty."""
    return f"pin/{_rs_id(vs, rs)}"


def mac_map(vs: VirtualService, rs: RealServer) -> str:
    """A DSR server's MAC: protocol -> MAC, empty while none is known."""
    return f"mac/{_rs_id(vs, rs)}"


def dispatch_map(family: str, interface: str | None = None) -> str:
    """The VIPs' map, ``daddr . l4proto . dport`` -> goto the service's chain: ``dispatch``
    in a NAT table, ``dispatch4/<interface>`` or ``dispatch6/…`` in the DSR table (one per
    family and interface: its ingress chain looks up each family's map)."""
    if interface is None:
        return "dispatch"
    return f"dispatch{4 if family == 'ip' else 6}/{interface}"


def counter_name(vs: VirtualService, rs: RealServer, kind: str) -> str:
    """``new/…`` (connections), ``traffic/…`` (DSR: to the server), ``…`` being
    ``web/addr/port``."""
    return f"{kind}/{_rs_id(vs, rs)}"


# -- expressions ------------------------------------------------------------------------------


def payload(protocol: str, name: str) -> Json:
    return {"payload": {"protocol": protocol, "field": name}}


def match(left: Any, right: Any, op: str = "==") -> Json:
    return {"match": {"op": op, "left": left, "right": right}}


def goto(chain: str) -> Json:
    return {"goto": {"target": chain}}


# -- commands ------------------------------------------------------------------------------------


@dataclass
class TableCommands:
    """The commands of one table, gathered in the order the transaction needs them."""

    family: str
    declarations: list[Json] = field(default_factory=list)
    chains: list[Json] = field(default_factory=list)
    rules: list[Json] = field(default_factory=list)
    # map name -> its elements, loaded after the rules (``flush map`` + ``add element``)
    maps: dict[str, Sequence[Any]] = field(default_factory=dict)
    # map name -> its nft text declaration, for the maps nft 1.0.6's JSON cannot declare
    typeof_maps: dict[str, str] = field(default_factory=dict)

    def _ref(self) -> Json:
        return {"family": self.family, "table": TABLE}

    def counter(self, name: str) -> None:
        self.declarations.append({"add": {"counter": {**self._ref(), "name": name}}})

    def persistence_set(self, name: str, key_type: str) -> None:
        body = {
            **self._ref(),
            "name": name,
            "type": key_type,
            "flags": ["timeout"],
            "size": PERSISTENCE_SET_SIZE,
        }
        self.declarations.append({"add": {"set": body}})

    def map(
        self, name: str, key_type: Any, data: str, elements: Sequence[Any], **extra: Any
    ) -> None:
        """A named map whose elements are data: ``transaction.in_place`` may change them
        alone."""
        body = {**self._ref(), "name": name, "type": key_type, "map": data, **extra}
        self.declarations.append({"add": {"map": body}})
        self.maps[name] = elements

    def integer_map(self, name: str, typeof: str, elements: Sequence[Any]) -> None:
        """A verdict map keyed by numgen or jhash. Their value is a bare 32-bit integer, which
        nft 1.0.6 can declare only as ``typeof EXPR`` in its text syntax (its JSON refuses an
        "unqualified type integer" and has no typeof), so the engine creates these maps with
        a text prelude (``transaction.prelude``); the JSON only fills them."""
        self.typeof_maps[name] = (
            f"add map {self.family} {TABLE} {name} {{ typeof {typeof} : verdict ; }}"
        )
        self.maps[name] = elements

    def chain(self, name: str, **hook: Any) -> None:
        self.chains.append({"add": {"chain": {**self._ref(), "name": name, **hook}}})

    def rule(self, chain: str, *expr: Json, comment: str | None = None) -> None:
        body: Json = {**self._ref(), "chain": chain, "expr": list(expr)}
        if comment:
            body["comment"] = comment
        self.rules.append({"add": {"rule": body}})

    def commands(self) -> list[Json]:
        """Everything but the maps' elements (the table's structure)."""
        ref = {"family": self.family, "name": TABLE}
        head = [{"add": {"table": ref}}, {"flush": {"table": ref}}]
        flushes = [{"flush": {"map": {**self._ref(), "name": name}}} for name in self.maps]
        return head + self.declarations + flushes + self.chains + self.rules


def drop_table(family: str) -> list[Json]:
    """``add table`` + ``delete table``: removes our table of ``family`` if it exists, and
    never fails when it does not."""
    ref = {"family": family, "name": TABLE}
    return [{"add": {"table": ref}}, {"delete": {"table": ref}}]


def fill(family: str, name: str, elements: list[Any]) -> list[Json]:
    """``add element`` of a map's elements (nothing for an empty map)."""
    if not elements:
        return []
    body = {"family": family, "table": TABLE, "name": name, "elem": elements}
    return [{"add": {"element": body}}]
