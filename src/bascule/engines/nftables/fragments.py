"""What one build of the L4 ruleset keeps for the next: slot tables and structure fragments.

Where this sits in the flow of a change: ``rules.build_ruleset`` builds the ruleset of a
document from the ruleset that runs (``previous``); what it starts from is kept in the
``Ruleset`` as the frozen values of this module: each scheduling map as built
(``SlotTable``, which ``slot_tables.py`` reuses or rebalances and whose moved slots
``transaction.in_place`` sends alone), each VIP's structure (``ServiceFragment``, reused by
``rules.py``) and each member's (``MemberFragment``, reused by ``chains.py``) when built from
the same key. ``Reuse`` is one build's state: what it starts from and what it builds. Pure:
no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bascule.engines.nftables.nft import Json
from bascule.engines.nftables.scheduling import Selection


@dataclass(frozen=True, kw_only=True)
class SlotTable:
    """One service's scheduling map as built: the weights it was built for, slot -> rs key,
    and the map's elements. The next build starts from it (``build_ruleset``'s
    ``previous``): the same weights reuse it whole (a 65537-slot Maglev table is not
    computed again for another service's change), new ones rebalance the round robin
    slots from it (``scheduling.rebalance``), so the map update moves few slots: those in
    ``moved``, from the elements of the table it was rebalanced from (``origin``), which
    ``transaction.in_place`` sends without comparing the two tables (None: built afresh).
    A Maglev table keeps the one it replaced (``previous``): when a server's health flaps,
    its weights go back to that table's, which is used again instead of computed."""

    selection: Selection
    weights: Mapping[str, int]
    slots: tuple[str, ...]
    elements: tuple[Any, ...]
    moved: tuple[int, ...] | None = None
    origin: tuple[Any, ...] | None = None
    # Maglev: the table before this one (one back), kept for a health flap's return
    previous: SlotTable | None = None


@dataclass(frozen=True, kw_only=True)
class MemberFragment:
    """One member's share of its service's structure as built: its counters and MAC map
    declared, its chain and that chain's rules; ``key``: what they were built from besides
    the service (the server but its weight and state; for persistence, the servers whose
    clients its rules forget). A changed service's build reuses the members whose key did
    not change (``chains._member``): a new server of 100 builds its own chain alone."""

    key: tuple[Any, ...]
    declarations: tuple[Json, ...]
    chains: tuple[Json, ...]
    rules: tuple[Json, ...]
    counters: Mapping[str, tuple[str, str]]


@dataclass(frozen=True, kw_only=True)
class ServiceFragment:
    """One VIP's share of its table's structure as built (its declarations, chains and
    rules, a NAT VIP's postrouting rules, its dispatch map's elements), and what it was
    built from (``key``: ``base``, the service without its servers and the machine's facts
    but the DSR servers' MACs, and its servers without their runtime weights and states).
    The next build of the same key reuses it whole, the very same objects, and computes the
    service's map elements only (``chains.service_maps``): a weight change of one server of 100
    builds no rule, and ``transaction.in_place`` finds the chains unchanged at the cost of
    an identity test. A build of the same ``base`` with other servers reuses the
    ``members`` that did not change."""

    key: tuple[Any, ...]
    declarations: tuple[Json, ...]
    chains: tuple[Json, ...]
    rules: tuple[Json, ...]
    typeof_maps: Mapping[str, str]
    counters: Mapping[str, tuple[str, str]]
    members: Mapping[str, MemberFragment] = field(default_factory=dict)  # by rs key
    dispatch: tuple[Any, ...] = ()  # its dispatch map's elements (``dispatch_elements``)

    @property
    def base(self) -> Any:
        return self.key[0]


@dataclass
class Reuse:
    """What a build starts from, of the ruleset that runs (``previous``: its slot tables,
    ``fragments_before``: its services' structure), and what it builds; while one service
    is built, the members it may reuse and those it built (``members_before``,
    ``members``)."""

    previous: Mapping[str, SlotTable]
    built: dict[str, SlotTable]
    fragments_before: Mapping[str, ServiceFragment] = field(default_factory=dict)
    fragments: dict[str, ServiceFragment] = field(default_factory=dict)
    members_before: Mapping[str, MemberFragment] = field(default_factory=dict)
    members: dict[str, MemberFragment] = field(default_factory=dict)
