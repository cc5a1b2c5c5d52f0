"""The nft JSON vocabulary of Bascule's tables: object names, expressions, a command builder.

Where this sits in the flow of a change: ``view.py`` decides what the L4 tables must hold and
spells it with these helpers; the result is the ``nft -j`` schema (libnftables-json(5)) that
``engine.py`` checks and applies. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bascule.model import RealServer, VirtualService

TABLE = "bascule"
PERSISTENCE_SET_SIZE = 65535
Json = dict[str, Any]


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


def counter_name(vs: VirtualService, rs: RealServer | None, kind: str) -> str:
    """``in/web`` (service traffic), ``new/…``, ``traffic/…`` (to the server), ``reply/…``
    (from it), ``…`` being ``web/addr/port``."""
    return f"{kind}/{vs.name}" if rs is None else f"{kind}/{_rs_id(vs, rs)}"


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

    def chain(self, name: str, **hook: Any) -> None:
        self.chains.append({"add": {"chain": {**self._ref(), "name": name, **hook}}})

    def rule(self, chain: str, *expr: Json, comment: str | None = None) -> None:
        body: Json = {**self._ref(), "chain": chain, "expr": list(expr)}
        if comment:
            body["comment"] = comment
        self.rules.append({"add": {"rule": body}})

    def commands(self) -> list[Json]:
        ref = {"family": self.family, "name": TABLE}
        head = [{"add": {"table": ref}}, {"flush": {"table": ref}}]
        return head + self.declarations + self.chains + self.rules
