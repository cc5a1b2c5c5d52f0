"""A service's scheduling map in nft: its slot table, its elements and the rule that reads it.

Where this sits in the flow of a change: ``scheduling.py`` says how a service selects and the
slot -> server sequence; here that sequence becomes the elements of the service's scheduling
map (``sched/…``, or ``fixed/…`` for fixed_weighting), starting from the table that runs
(``fragments.SlotTable``: the same weights reuse it, new ones rebalance it and only the moved
slots' elements are new), and ``selector`` declares the map and returns the expressions of
the service chain's rule that looks it up (``numgen``, or Maglev's ``jhash`` through the
packet mark). ``chains.py`` puts that rule in the service's chain. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from bascule.engines.nftables.fragments import Reuse, SlotTable
from bascule.engines.nftables.nft import (
    Json,
    TableCommands,
    fixed_map,
    goto,
    payload,
    rs_chain,
    sched_map,
)
from bascule.engines.nftables.scheduling import Selection, seed, slot_changes
from bascule.engines.nftables.view import Environment, ServiceDecision


def _vmap_elements(
    sequence: Sequence[str], chains: Mapping[str, str], before: SlotTable | None = None
) -> tuple[Any, ...]:
    """slot -> goto the server's chain, one element per slot, never ranges: nft 1.0.6 needs
    minutes to load a 65537-slot Maglev table as an interval map, and under a second as a
    plain (hash) one. A slot whose server did not change keeps ``before``'s element (the
    same object: comparing the maps then costs little)."""
    targets = {key: goto(chain) for key, chain in chains.items()}
    if before is None or len(before.slots) != len(sequence):
        return tuple([slot, targets[key]] for slot, key in enumerate(sequence))
    kept = zip(sequence, before.slots, before.elements, strict=True)
    return tuple(
        element if key == old else [slot, targets[key]]
        for slot, (key, old, element) in enumerate(kept)
    )


def _slots(
    service: ServiceDecision,
    weights: Mapping[str, int],
    chains: Mapping[str, str],
    size: int,
    tables: Reuse,
) -> tuple[Any, ...]:
    """The scheduling map's elements, from the table that runs where it can (``SlotTable``)."""
    name, selection = service.vs.name, service.selection
    before = tables.previous.get(name)
    if before is not None and (before.selection is not selection or len(before.slots) != size):
        before = None
    back = before.previous if before is not None else None
    maglev = selection.maglev
    if before is not None and before.weights == weights:
        table = before  # the same weights: the same slots and elements
    elif before is not None and back is not None and back.weights == weights:
        # a Maglev table's weights back to what they were (a server's health flapped): that
        # table again, not 65537 slots computed and compared a second time
        table = replace(back, previous=replace(before, previous=None))
    else:
        previous = before.slots if before is not None else ()
        slots, moved = slot_changes(selection, weights, size, previous)
        if before is None or moved is None:
            elements, moved = _vmap_elements(slots, chains, before), None
        else:  # rebalanced: the moved slots' elements alone are new
            changed = list(before.elements)
            for slot in moved:
                changed[slot] = [slot, goto(chains[slots[slot]])]
            elements = tuple(changed)
        table = SlotTable(
            selection=selection,
            weights=dict(weights),
            slots=slots,
            elements=elements,
            moved=moved,
            origin=before.elements if before is not None and moved is not None else None,
            previous=replace(before, previous=None) if maglev and before is not None else None,
        )
    tables.built[name] = table
    return table.elements


def selector_map(
    service: ServiceDecision, env: Environment, tables: Reuse
) -> tuple[str, tuple[Any, ...]]:
    """The service's scheduling map: its name and elements (the live servers' slots)."""
    vs, live = service.vs, service.live
    chains = {rs.key: rs_chain(vs, rs) for rs in live}
    if service.selection is Selection.fixed:
        target = ([vs.protocol.value, goto(chains[live[0].key])],) if live else ()
        return fixed_map(vs), target
    weights = {rs.key: service.weights[rs.key] for rs in live}
    round_robin = service.selection is Selection.round_robin
    size = env.round_robin_slots if round_robin else env.maglev_size
    return sched_map(vs), _slots(service, weights, chains, size, tables)


def selector(
    table: TableCommands, service: ServiceDecision, env: Environment, tables: Reuse
) -> list[Json]:
    """Declare the service's scheduling map and return the rule's expressions that look it up.

    The rule depends on the structure only (the key: numgen's or Maglev's modulus, the
    protocol); who is up and how much they weigh are the map's elements. No live server:
    an empty map, the lookup misses and the packet goes on unbalanced (to the VIP itself).
    """
    vs = service.vs
    proto = vs.protocol.value
    name, elements = selector_map(service, env, tables)
    if service.selection is Selection.fixed:
        table.map(name, "inet_proto", "verdict", elements)
        return [{"vmap": {"key": {"meta": {"key": "l4proto"}}, "data": f"@{name}"}}]
    if service.selection is Selection.round_robin:
        size = env.round_robin_slots
        key: Json = {"numgen": {"mode": "inc", "mod": size, "offset": 0}}
        table.integer_map(name, f"numgen inc mod {size}", elements)
        return [{"vmap": {"key": key, "data": f"@{name}"}}]
    size = env.maglev_size
    fields: list[Json] = [payload(service.family, "saddr")]
    if service.selection is Selection.flow_maglev:
        fields += [payload(proto, "sport"), payload(proto, "dport")]
    hashed = fields[0] if len(fields) == 1 else {"concat": fields}
    key = {"jhash": {"mod": size, "seed": seed(vs), "offset": 0, "expr": hashed}}
    # nft 1.0.6 crashes (SIGSEGV) printing a map declared ``typeof jhash ...``, so
    # ``nft list ruleset`` would crash for the administrator. The Maglev slot therefore goes
    # through the packet mark, a type JSON can declare; the server's chain clears the mark
    # again before routing (NAT), and DSR frames leave by ``fwd`` where no one reads it.
    mark = {"meta": {"key": "mark"}}
    table.map(name, "mark", "verdict", elements)
    return [{"mangle": {"key": mark, "value": key}}, {"vmap": {"key": mark, "data": f"@{name}"}}]
