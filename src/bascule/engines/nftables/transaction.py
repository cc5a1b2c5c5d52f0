"""What runs in Bascule's tables, and the nft transaction that brings it to a ``Ruleset``.

Where this sits in the flow of a change: ``rules.py`` builds the desired ``Ruleset``; the
shell lists our tables (``nft -j list``) and this module reads that listing once
(``Listing``: our tables, their objects, their counters) and decides what to send:

- ``map_update``: when only map elements differ from the ruleset that runs (weights, states,
  health, MACs), the transaction that flushes and refills the changed maps and touches no
  rule, so rule handles, numgen's position, counters and persistence entries stay;
- ``prelude``: the nft text that creates, empty, the integer-keyed maps nft 1.0.6's JSON cannot
  declare, and ``undo_prelude`` to take them back should nft refuse what follows;
- ``transaction``: the whole ruleset against what runs, in one transaction (nft runs a file
  as one kernel transaction: on any error nothing changes), which prunes the objects of
  services that left and keeps the persistence sets that exist, with their clients;
- ``removal``: our tables gone.

Pure: the shell does the listing and the sending.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from bascule.engines.nftables.nft import FAMILIES, TABLE, Json, drop_table, refill
from bascule.engines.nftables.rules import Ruleset

# Maps first: their elements may name stale chains and counters (rules are flushed already).
_PRUNE_ORDER = {"map": 0, "chain": 1, "set": 2, "counter": 3}


@dataclass(frozen=True, kw_only=True)
class CounterValue:
    packets: int
    bytes: int


@dataclass(frozen=True)
class Listing:
    """Bascule's tables as ``nft -j list`` shows them: the listed items, read once here."""

    items: tuple[Json, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Listing:
        """From ``nft -j list …`` output; empty output lists nothing."""
        document = json.loads(text) if text.strip() else {}
        items = document.get("nftables", []) if isinstance(document, dict) else []
        return cls(tuple(item for item in items if isinstance(item, dict)))

    def __add__(self, other: Listing) -> Listing:
        return Listing(self.items + other.items)

    def bodies(self, kind: str) -> Iterator[Json]:
        """The listed objects of ``kind`` (table, chain, set, map, counter) of our tables."""
        owner = "name" if kind == "table" else "table"
        for item in self.items:
            body = item.get(kind)
            if isinstance(body, dict) and body.get(owner) == TABLE:
                yield body

    @property
    def tables(self) -> tuple[str, ...]:
        """The families of our tables that exist, in ``FAMILIES`` order."""
        found = {body["family"] for body in self.bodies("table")}
        return tuple(family for family in FAMILIES if family in found)

    def objects(self, *kinds: str) -> set[tuple[str, str, str]]:
        """(family, kind, name) of our listed objects of ``kinds``."""
        return {
            (body["family"], kind, body["name"]) for kind in kinds for body in self.bodies(kind)
        }

    def counters(self) -> dict[tuple[str, str], CounterValue]:
        """(family, counter name) -> value of our named counters."""
        return {
            (body["family"], body["name"]): CounterValue(
                packets=int(body.get("packets", 0)), bytes=int(body.get("bytes", 0))
            )
            for body in self.bodies("counter")
        }


def map_update(old: Ruleset, new: Ruleset) -> Json | None:
    """The transaction that turns the running ``old`` into ``new`` by refilling maps only, or
    None when the structure differs (services, real servers, ports... : a full transaction).

    Each map whose elements changed is flushed and refilled (``flush map`` + ``add element``
    in one transaction, so no packet sees it empty); no rule is touched, so conntrack's
    connections, persistence entries and counters are untouched too. ``{"nftables": []}``
    means nothing changed.
    """
    if old.structure != new.structure or old.prelude != new.prelude:
        return None
    if old.maps.keys() != new.maps.keys():
        return None
    commands: list[Json] = []
    for (family, name), elements in new.maps.items():
        if old.maps[(family, name)] != elements:
            commands += refill(family, name, list(elements))
    return {"nftables": commands}


def prelude(ruleset: Ruleset, listing: Listing) -> str | None:
    """nft text that creates the tables and the integer-keyed maps (``TableCommands.
    integer_map``) that ``listing`` does not show yet, or None when they all exist.

    Running it first is harmless: it only adds empty tables and maps that no rule uses yet.
    """
    existing = {(family, name) for family, _, name in listing.objects("map")}
    missing = [(ref, text) for ref, text in ruleset.prelude.items() if ref not in existing]
    if not missing:
        return None
    families = sorted({family for (family, _), _ in missing})
    lines = [f"add table {family} {TABLE}" for family in families]
    lines += [text for _, text in missing]
    return "\n".join(lines) + "\n"


def undo_prelude(ruleset: Ruleset, before: Listing) -> Json | None:
    """The transaction that deletes what ``ruleset``'s prelude created on top of ``before``
    (what was listed before it ran): its maps, and its tables where there were none; None
    when it created nothing."""
    existing = {(family, name) for family, _, name in before.objects("map")}
    created = {family for family, _ in ruleset.prelude} - set(before.tables)
    commands: list[Json] = []
    for family in sorted(created):
        commands += drop_table(family)
    for family, name in ruleset.prelude:
        if family not in created and (family, name) not in existing:
            commands.append({"delete": {"map": {"family": family, "table": TABLE, "name": name}}})
    return {"nftables": commands} if commands else None


def transaction(ruleset: Ruleset, listing: Listing) -> Json:
    """The ``nft -j -f`` input that brings the running tables, as ``listing`` shows them, to
    ``ruleset``.

    ``listing`` is ``nft -j list table <family> bascule`` of our tables (empty when there are
    none). Two differences from ``ruleset.document()``:

    - a persistence set that exists already is not declared again: nft 1.0.6's JSON cannot
      spell the ``dynamic`` flag that the set acquired from its ``update`` rules, so the
      kernel would refuse the declaration as a different set (EEXIST); keeping it keeps its
      clients too;
    - objects of our tables that the ruleset no longer declares are deleted at the end (the
      flush has emptied every chain by then, so nothing refers to them); chains before sets.
    """
    existing = listing.objects(*_PRUNE_ORDER)
    commands = [command for command in ruleset.commands if not _declares(command, "set", existing)]
    wanted = ruleset.objects()
    stale = sorted(
        (
            identity
            for identity in existing
            if identity[0] in ruleset.tables and identity not in wanted
        ),
        key=lambda identity: (_PRUNE_ORDER[identity[1]], identity),
    )
    for family, kind, name in stale:
        commands.append({"delete": {kind: {"family": family, "table": TABLE, "name": name}}})
    return {"nftables": commands}


def _declares(command: Json, kind: str, objects: set[tuple[str, str, str]]) -> bool:
    """Whether ``command`` adds an object of ``kind`` that is one of ``objects``."""
    body = command.get("add", {}).get(kind)
    return body is not None and (body["family"], kind, body["name"]) in objects


def removal() -> Json:
    """The transaction that deletes our tables (never fails for one that is not there)."""
    return {"nftables": [command for family in FAMILIES for command in drop_table(family)]}
