"""How an L4 service picks a real server: the selection per scheduler and its table of slots.

Where this sits in the flow of a change: ``view.py`` decides which real servers of a service
are live; this module says how the service selects among them (``Selection``, from the
scheduler and the forwarding), what each live server weighs, and the slot -> server sequence
that ``rules.py`` loads into the service's scheduling map (``sched/…``). Pure: no I/O.

NAT, where conntrack remembers each connection's choice: ``numgen inc`` over a smooth weighted
sequence stretched over a fixed number of slots (``ROUND_ROBIN_SLOTS``) for the round robin
family and the least connection family (whose weights the daemon derives from conntrack
counts, ``conntrack.py``, and passes in), the single highest-weight server for
``fixed_weighting``, Maglev on the source address for ``source_ip_hash``. DSR has no connection
tracking at the ingress hook, so every method becomes weighted Maglev on a hash of the flow
(``DSR_SCHEDULING`` says which; ``ServiceView.selection`` carries it to the status).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping, Sequence

from bascule.engines.nftables.maglev import lookup_table
from bascule.model import Forwarding, RealServer, Scheduler, VirtualService
from bascule.model.weights import engine_weights

# The numgen sequence of the round robin family is at most this long; weights are scaled
# (keeping their ratios, see model/weights.py) so that their sum fits.
MAX_SEQUENCE = 4096
# The round robin map always has this many slots, so that ``numgen inc mod`` (in a rule) stays
# the same when weights change and only the map's elements do. 5040 is divisible by every
# number up to 10 (and by 12, 14, 15, 16...): equal or small weights fill it exactly.
ROUND_ROBIN_SLOTS = 5040


class Selection(enum.StrEnum):
    """How a service picks a real server, as the status shows it."""

    round_robin = "numgen inc over the weighted sequence"
    fixed = "the highest-weight real server that is up"
    source_maglev = "Maglev on jhash(source address)"
    flow_maglev = "Maglev on jhash(source address, source port, destination port)"

    @property
    def maglev(self) -> bool:
        """Chosen by a Maglev table on a hash (through the packet mark, see ``rules.py``)."""
        return self in {Selection.source_maglev, Selection.flow_maglev}


# How each scheduler the model allows on l4 picks, per forwarding. DSR has no conntrack at the
# ingress hook: a choice must be a pure function of the flow, so every scheduler becomes
# weighted Maglev (``Scheduler.weighted`` says whether the real servers' weights count: they
# do not for plain round robin and least connection, as in LoadMaster).
DSR_SCHEDULING: dict[Scheduler, Selection] = {
    Scheduler.source_ip_hash: Selection.source_maglev,
    Scheduler.round_robin: Selection.flow_maglev,
    Scheduler.weighted_round_robin: Selection.flow_maglev,
    Scheduler.least_connection: Selection.flow_maglev,
    Scheduler.weighted_least_connection: Selection.flow_maglev,
    Scheduler.fixed_weighting: Selection.fixed,
}
NAT_SCHEDULING: dict[Scheduler, Selection] = {
    Scheduler.round_robin: Selection.round_robin,
    Scheduler.weighted_round_robin: Selection.round_robin,
    Scheduler.least_connection: Selection.round_robin,
    Scheduler.weighted_least_connection: Selection.round_robin,
    Scheduler.fixed_weighting: Selection.fixed,
    Scheduler.source_ip_hash: Selection.source_maglev,
}


def selection_of(vs: VirtualService) -> Selection | None:
    """How ``vs`` picks, by its forwarding's table; None for a scheduler that needs L7."""
    table = NAT_SCHEDULING if vs.forwarding is Forwarding.nat else DSR_SCHEDULING
    return table.get(vs.scheduler)


def effective_weights(
    vs: VirtualService,
    selection: Selection,
    servers: Sequence[RealServer],
    counted: Mapping[tuple[str, str], int],
    *,
    service: str | None = None,
) -> dict[str, int]:
    """rs key -> weight in the scheduling table, for the live ``servers`` of ``vs``.

    fixed_weighting keeps only the heaviest server (the first in document order among equals).
    ``counted``: (vs, rs key) -> the daemon's conntrack-derived weight, which the least
    connection family honours; until they arrive (and always in DSR, which has none) an
    unweighted scheduler counts every server 1, as in LoadMaster. ``service``: the name the
    weights are kept under, when ``vs`` is one VIP of a dual-stack service (view.halves).
    """
    name = vs.name if service is None else service
    if not servers:
        return {}
    if selection is Selection.fixed:
        top = max(servers, key=lambda rs: rs.weight)
        return {top.key: 1}
    scheduler = vs.scheduler
    given = {
        rs.key: counted.get((name, rs.key), rs.weight if scheduler.weighted else 1)
        for rs in servers
    }
    ceiling = max(1, MAX_SEQUENCE // len(servers))
    return engine_weights(
        given, ceiling, weighted=scheduler.weighted or scheduler.counts_connections
    )


def smooth_sequence(weights: Mapping[str, int]) -> tuple[str, ...]:
    """Smooth weighted round robin (nginx's): weights 5,1,1 give a a b a c a a, not a a a a a b c.

    The sequence is as long as the sum of the weights; every name appears ``weight`` times.
    """
    names, shares = list(weights), list(weights.values())
    total = sum(shares)
    current = [0] * len(shares)
    positions = range(len(shares))
    order: list[str] = []
    for _ in range(total):
        current = [value + share for value, share in zip(current, shares, strict=True)]
        chosen = max(positions, key=current.__getitem__)  # first among equals
        current[chosen] -= total
        order.append(names[chosen])
    return tuple(order)


def apportion(weights: Mapping[str, int], slots: int) -> dict[str, int]:
    """``slots`` shared in proportion to ``weights`` (largest remainders, then document
    order); exact whenever the weights' sum divides ``slots``."""
    total = sum(weights.values())
    if total <= 0:
        return {}
    shares = {name: weight * slots / total for name, weight in weights.items()}
    counts = {name: int(share) for name, share in shares.items()}
    left = slots - sum(counts.values())
    by_remainder = sorted(weights, key=lambda name: counts[name] - shares[name])
    for name in by_remainder[:left]:
        counts[name] += 1
    return {name: count for name, count in counts.items() if count}


def round_robin_slots(weights: Mapping[str, int], slots: int) -> tuple[str, ...]:
    """The smooth weighted sequence stretched over exactly ``slots`` slots."""
    return smooth_sequence(apportion(weights, slots))


def rebalanced_slots(
    previous: Sequence[str], weights: Mapping[str, int], slots: int
) -> tuple[str, ...]:
    """``rebalance``'s table alone."""
    return rebalance(previous, weights, slots)[0]


def rebalance(
    previous: Sequence[str], weights: Mapping[str, int], slots: int
) -> tuple[tuple[str, ...], tuple[int, ...] | None]:
    """The round robin table for ``weights`` that moves as few of ``previous``'s slots as
    possible: each server keeps its slots up to its new share (``apportion``, the same
    counts as ``round_robin_slots``), and only the slots of servers that left or lost share
    go to servers that gained share.

    So a weight change of one server of 100 moves about its share's difference (tens of the
    5040 slots), and an added server takes about 1/N of them, instead of a new sequence in
    every slot: the map update changes those elements only. A server that loses ``d`` of its
    ``n`` slots gives up ``d`` spread evenly among them, and the freed slots are dealt to the
    gainers in the smooth order of their gains (``smooth_sequence``), so the table stays
    interleaved and each server's share is exact over the table, though no longer a strict
    rotation. Equal weights (plain round robin, and every service whose servers weigh the
    same) always get the strict rotation of ``round_robin_slots`` (a b c a b c: any 3N
    consecutive connections spread exactly), whatever it moves; so does a table without a
    usable ``previous`` (another size).

    Returned with the slots that moved, in order (the map update's elements: nothing else
    need compare the two tables), or None for a table built afresh.
    """
    counts = apportion(weights, slots)
    if len(previous) != slots or not counts or len(set(weights.values())) == 1:
        return round_robin_slots(weights, slots), None
    held: dict[str, list[int]] = {}
    for slot, name in enumerate(previous):
        held.setdefault(name, []).append(slot)
    table: list[str | None] = list(previous)
    free: list[int] = []
    losers = [(name, owned) for name, owned in held.items() if len(owned) > counts.get(name, 0)]
    for rank, (name, owned) in enumerate(losers):
        drop, held_count = len(owned) - counts.get(name, 0), len(owned)
        # Evenly spread over the server's own slots (the (2j+1)/2d-th of them, j < drop),
        # each loser starting at another phase: servers that lose one slot each do not all
        # give up the middle one, which would hand the gainers a run of neighbouring slots.
        phase = rank * held_count // len(losers)
        for j in range(drop):
            slot = owned[((2 * j + 1) * held_count // (2 * drop) + phase) % held_count]
            table[slot] = None
            free.append(slot)
    gains = {
        name: count - len(held.get(name, ()))
        for name, count in counts.items()
        if count > len(held.get(name, ()))
    }
    moved = sorted(free)
    for slot, name in zip(moved, smooth_sequence(gains), strict=True):
        table[slot] = name
    return tuple(name for name in table if name is not None), tuple(moved)


def slot_table(
    selection: Selection,
    weights: Mapping[str, int],
    size: int,
    previous: Sequence[str] = (),
) -> tuple[str, ...]:
    """``slot_changes``' table alone."""
    return slot_changes(selection, weights, size, previous)[0]


def slot_changes(
    selection: Selection,
    weights: Mapping[str, int],
    size: int,
    previous: Sequence[str] = (),
) -> tuple[tuple[str, ...], tuple[int, ...] | None]:
    """Slot -> rs key over ``size`` slots (numgen's or jhash's modulus): the elements of the
    scheduling map, in slot order; empty when no server is live (the lookup then misses).
    With it the slots that changed from ``previous``, when known (``rebalance``), else None.

    ``previous`` is the table that runs (round robin: ``rebalance`` moves as few of its
    slots as the new weights allow). Maglev's table is a function of the weights alone,
    whose minimal disruption is the algorithm's own.
    """
    if not weights:
        return (), None
    if selection is Selection.round_robin:
        return rebalance(previous, weights, size)
    if selection.maglev:
        return lookup_table(weights, size), None
    raise ValueError(f"{selection.name} has no slot table")  # fixed: one element, no slots


def seed(vs: VirtualService) -> int:
    """jhash's seed: fixed per service so every apply (and every process) hashes alike."""
    return int.from_bytes(hashlib.blake2b(vs.name.encode(), digest_size=4).digest(), "big")
