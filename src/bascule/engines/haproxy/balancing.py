"""How HAProxy runs each scheduler: the ``balance`` algorithm, its ``hash-type``, backups.

Where it sits: read by the view (view.py: a section's ``balance`` and ``hash-type`` lines)
and by its servers (servers.py: ``fixed_weighting`` makes all but one server ``backup``).
``BALANCE`` is the engine's one translation table of ``Scheduler`` (a test proves it covers
every scheduler the model allows on l7). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from bascule.model import Scheduler, VirtualService


@dataclass(frozen=True)
class Balance:
    """How HAProxy runs a scheduler: the ``balance`` algorithm (4.2), its ``hash-type`` if it
    hashes, and whether all but one server are ``backup`` servers (5.2)."""

    algorithm: str
    hash_type: str | None = None
    backups: bool = False


# Section 4.2 "hash-type": "consistent" keeps weights dynamic (runtime `set weight` works) and
# moves only the failed server's clients when one goes down; "map-based" would reshuffle all.
CONSISTENT = "consistent"

# Section 4.2 "balance", for every scheduler the model allows on l7. fixed_weighting is
# roundrobin over a single active server, the others being "backup" servers (see
# servers._fixed_weighting_order). The dynamic schedulers use roundrobin, HAProxy's
# dynamic-weight algorithm: the daemon sets the weights the agents or the check times decide
# at runtime (daemon/dynamic.py).
BALANCE: dict[Scheduler, Balance] = {
    Scheduler.round_robin: Balance("roundrobin"),
    Scheduler.weighted_round_robin: Balance("roundrobin"),
    Scheduler.least_connection: Balance("leastconn"),
    Scheduler.weighted_least_connection: Balance("leastconn"),
    Scheduler.fixed_weighting: Balance("roundrobin", backups=True),
    Scheduler.source_ip_hash: Balance("source", hash_type=CONSISTENT),
    Scheduler.url_hash: Balance("uri", hash_type=CONSISTENT),
    Scheduler.adaptive: Balance("roundrobin"),
    Scheduler.weighted_response_time: Balance("roundrobin"),
}


def balance_of(vs: VirtualService) -> Balance:
    balance = BALANCE.get(vs.scheduler)
    if balance is None:
        raise ValueError(f"scheduler {vs.scheduler.value} has no HAProxy translation")
    return balance
