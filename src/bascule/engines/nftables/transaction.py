"""What runs in Bascule's tables, and the nft transaction that brings it to a ``Ruleset``.

Where this sits in the flow of a change: ``rules.py`` builds the desired ``Ruleset``; the
shell lists our tables (``nft -j list``) and this module reads that listing once
(``Listing``: our tables, their objects, their counters) and decides what to send:

- ``in_place``: the transaction that changes the ruleset that runs into the new one by what
  differs: the map elements that changed (deleted and added: a weight change of one server
  of 100 moves tens of round robin slots, ``scheduling.rebalanced_slots``), the chains whose
  rules changed (flushed and filled again), the objects that came or went. When only map
  elements differ (weights, states, health, MACs) it touches no rule, so rule handles,
  numgen's position, counters and persistence entries stay; a new real server adds its
  chain, counters and slots and leaves the other services alone;
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
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bascule.engines.nftables.nft import FAMILIES, TABLE, Json, drop_table, fill
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


def in_place(old: Ruleset, new: Ruleset) -> Json | None:
    """The transaction that turns the running ``old`` into ``new`` by what differs, or None
    when it takes the whole transaction (``transaction``): another set of tables, a map only
    the prelude can declare, a declaration or a chain's hook that changed.

    In order: the new declarations and chains; each chain whose rules differ flushed and
    filled again (nft keeps a chain's rules in order, so a changed rule means the chain's
    rules again), the chains that go flushed; each map's changed elements deleted and added
    (``element_changes``, after the chains their verdicts jump to exist); the objects that
    go deleted last, maps, chains, sets, counters. One kernel transaction: no packet sees
    half of it. ``{"nftables": []}`` means nothing changed.
    """
    if old.tables != new.tables or any(
        old.prelude.get(ref) != text for ref, text in new.prelude.items()
    ):
        return None
    commands = [] if old.structure is new.structure else _structure_changes(old, new)
    if commands is None:
        return None
    for (family, name), elements in new.maps.items():
        before_elements = old.maps.get((family, name), ())
        table = new.scheduling.get((family, name))
        if table is not None and table.moved is not None and table.origin is before_elements:
            # a round robin table rebalanced from the one that runs: its moved slots alone
            moved = [elements[slot] for slot in table.moved]
            commands += _element_commands(family, name, list(table.moved), moved)
            continue
        commands += element_changes(family, name, before_elements, elements)
    if old.structure is new.structure:
        return {"nftables": commands}  # a runtime change: the same objects
    stale = sorted(
        old.objects() - new.objects(),
        key=lambda identity: (_PRUNE_ORDER[identity[1]], identity),
    )
    for family, kind, name in stale:
        commands.append({"delete": {kind: {"family": family, "table": TABLE, "name": name}}})
    return {"nftables": commands}


def _structure_changes(old: Ruleset, new: Ruleset) -> list[Json] | None:
    """``in_place``'s commands for the structure: the new declarations and chains, the
    chains whose rules changed flushed and filled again, those that go flushed; None when
    a declaration or a chain's hook changed (the whole transaction then)."""
    before, after = old.index, new.index
    if any(before.declared.get(key, body) != body for key, body in after.declared.items()):
        return None
    if any(before.chains.get(key, body) != body for key, body in after.chains.items()):
        return None
    commands: list[Json] = [
        {"add": {kind: body}}
        for (_, kind, _), body in after.declared.items()
        if (body["family"], kind, body["name"]) not in before.declared
    ]
    commands += [
        {"add": {"chain": body}} for key, body in after.chains.items() if key not in before.chains
    ]
    for key in after.chains:
        rules = after.rules.get(key, [])
        if key in before.chains:
            if before.rules.get(key, []) == rules:
                continue
            commands.append(_flush_chain(*key))
        commands += [{"add": {"rule": rule}} for rule in rules]
    commands += [_flush_chain(*key) for key in before.chains if key not in after.chains]
    return commands


def table_guard(running: Ruleset) -> list[Json] | None:
    """Commands that change nothing in ``running``'s tables and that nft refuses when one of
    them is gone: ``add chain`` of one regular chain of each (adding a chain that exists
    keeps it and its rules; in a table that does not exist it fails). Put before an
    ``in_place`` transaction, a table deleted by hand makes it fail as a whole, and the
    engine sends the whole ruleset instead. None when a table has no regular chain (the
    caller then sends the whole ruleset)."""
    guard: list[Json] = []
    for family in running.tables:
        body = next(
            (
                body
                for (owner, _), body in running.index.chains.items()
                if owner == family and "hook" not in body
            ),
            None,
        )
        if body is None:
            return None
        guard.append({"add": {"chain": body}})
    return guard


def element_changes(family: str, name: str, old: Sequence[Any], new: Sequence[Any]) -> list[Json]:
    """The commands that turn map ``name``'s elements ``old`` into ``new``: the keys whose
    value changed or that went deleted, then the changed and new ones added (a map's key
    cannot be added again with another value; both in one transaction, so no packet misses
    the key)."""
    if old == new:
        return []
    if len(old) == len(new):
        # A scheduling map's slots: the same keys in the same order, and the elements of the
        # slots that did not move the very same objects (slot_tables._vmap_elements): pairwise.
        gone, added = [], []
        for a, b in zip(old, new, strict=True):
            if a is b:
                continue
            if a[0] != b[0]:
                break
            if a != b:
                gone.append(a[0])
                added.append(b)
        else:
            return _element_commands(family, name, gone, added)
    before = {_key(element): element for element in old}
    after = {_key(element): element for element in new}
    gone = [element[0] for key, element in before.items() if after.get(key) != element]
    added = [element for key, element in after.items() if before.get(key) != element]
    return _element_commands(family, name, gone, added)


def _element_commands(family: str, name: str, gone: list[Any], added: list[Any]) -> list[Json]:
    commands: list[Json] = []
    if gone:
        body = {"family": family, "table": TABLE, "name": name, "elem": gone}
        commands.append({"delete": {"element": body}})
    return commands + fill(family, name, added)


def _flush_chain(family: str, name: str) -> Json:
    return {"flush": {"chain": {"family": family, "table": TABLE, "name": name}}}


def _key(element: Any) -> Hashable:
    """A map element's key as a dict key (a slot, a protocol; any other as its JSON)."""
    key = element[0]
    return key if isinstance(key, int | str) else json.dumps(key, sort_keys=True)


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
