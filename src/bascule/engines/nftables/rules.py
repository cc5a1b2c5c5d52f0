"""The decided L4 services -> the nft JSON ruleset of Bascule's tables, as data.

Where this sits in the flow of a change: ``view.py`` decides, per service, the table, the
selection and the real servers in the maps; ``build_ruleset`` spells it as one nft
transaction (the ``nft -j`` schema, libnftables-json(5)) with the vocabulary of ``nft.py``;
``transaction.py`` fits it to what runs and ``shell.py`` checks it with ``nft -c`` and
applies it with ``nft -f``. Nothing here does I/O, reads settings or the clock.

What the ruleset looks like (one table per family that is needed, all named ``bascule``)::

    table ip bascule                         NAT for IPv4 VIPs (ip6 bascule for IPv6)
      map dispatch                            VIP . tcp . 80 : goto vs/web,
                                              VIP . tcp . 8000-8010 : goto vs/web, ...
      chain prerouting   nat, dstnat          ip daddr . meta l4proto . th dport vmap @dispatch
      chain vs/web                            persistence hits (@pin/... maps), then
                                              numgen inc mod 5040 vmap @sched/web
      chain rs/web/198.18.0.11/80             forget other servers' persistence, count, dnat
      chain postrouting  nat, srcnat          one-armed: snat the server side to the LB
    table netdev bascule                      DSR, both families
      map dispatch4/eth0                      VIP . tcp . 80 : goto vs/web, ... (dispatch6/…)
      chain ingress/eth0 filter, ingress      ip daddr . meta l4proto . th dport
                                                vmap @dispatch4/eth0 (and ip6's, if any)
      chain vs/web                            persistence hits, then jhash(flow) vmap @sched
      chain rs/web/...                        count, ether saddr/daddr (@mac/... map) set, fwd

The dispatch is one lookup per packet in an interval map (the port ranges), whatever the
number of services: the ingress chain sees every frame of its interface, NAT's, HAProxy's
and the management's included, and a rule per service cost each ~9 ns per rule walked. A
service's dispatch is map elements, so a service that comes, goes or moves its VIP or ports
leaves the chain's rule alone.

Counting costs an established NAT packet nothing: the nat chains see the first packet of a
connection only, where ``new/…`` counts it; its bytes are conntrack's own accounting
(``nf_conntrack_acct``, read by ``conntrack.TrafficLedger``), so no filter chain is hooked for
NAT and an established packet costs what conntrack and NAT cost. DSR has no conntrack on the
load balancer: its server chains count packets and bytes (``traffic/…``) and SYNs (``new/…``)
on the path every frame already walks.

Structure and data: every rule depends on the document only (services, real servers, ports,
forwarding, persistence) and on facts of the machine that do not move (interface, the load
balancer's MAC and address); the VIPs and ports are the dispatch maps' elements. Everything
that changes at run time (weights, states, health, conntrack-derived weights, the real servers'
MACs) lives in named maps' elements: the scheduling map (``sched/…``, or ``fixed/…`` for
fixed_weighting), one ``pin/…`` map per server that lets its persistent clients back in while
it is live, one ``mac/…`` map per DSR server. So a runtime change changes map elements only
(``transaction.in_place``): no rule is re-added, and rule handles, numgen's position, counters
and persistence entries stay. A build starts from the scheduling maps that run (``previous``,
their ``SlotTable``): a service whose weights did not change keeps its table, and a round robin
table is rebalanced (``scheduling.rebalanced_slots``), so a weight change or a new server moves
few slots; and from each service's structure that runs (``ServiceFragment``): a service built
from the same document (but its servers' weights and states) and the same facts keeps its
commands, and only its map elements are computed again.

The whole transaction (``Ruleset.document``, what runs when nothing did, and what
``transaction.transaction`` fits to a listing) brings each table to its desired state by
``add table`` (idempotent), ``flush table`` (drops every rule, keeps sets, maps and counters),
then re-adding declarations and rules, then flushing and refilling every map; from a ruleset
that runs, ``transaction.in_place`` sends only what differs. Persistence sets are only
declared, never flushed, so clients stay on their server across applies; counters keep
counting. The numgen maps are
keyed by a bare integer, which nft 1.0.6 declares only in its text syntax (``typeof``): they
are the ruleset's ``prelude``, created empty before the first transaction that uses them.
Maglev (jhash) maps go through the packet mark instead: nft 1.0.6 crashes printing a
``typeof jhash`` map, which would make ``nft list ruleset`` crash for the administrator. A
family that is not needed is removed by ``add table`` + ``delete table``. No other table is
ever named.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bascule.engines.nftables.nft import (
    FAMILIES,
    TABLE,
    Json,
    TableCommands,
    counter_name,
    dispatch_map,
    drop_table,
    fill,
    fixed_map,
    goto,
    mac_map,
    match,
    payload,
    persistence_set,
    pin_map,
    rs_chain,
    sched_map,
    vs_chain,
)
from bascule.engines.nftables.scheduling import Selection, seed, slot_changes
from bascule.engines.nftables.view import (
    Environment,
    Exclusion,
    L4Inputs,
    NatTopology,
    ServiceDecision,
    decide,
    nat_topology,
)
from bascule.model import (
    Configuration,
    Forwarding,
    PortRange,
    RealServer,
    RealServerState,
    VirtualService,
)

# Hook priorities, nft(8) "CHAINS": dstnat -100, srcnat 100. DSR runs at the
# ingress hook before anything else on the interface.
PRIORITY_DSTNAT = -100
PRIORITY_SRCNAT = 100
PRIORITY_INGRESS = -500


@dataclass(frozen=True, kw_only=True)
class ServiceView:
    """What the status shows about one L4 service: how it picks, whom, and who is left out."""

    name: str  # the nft objects' name: the service's, or ``<name>.v6`` (view.halves)
    service: str  # the document's name of the service
    family: str  # "ip" | "ip6"
    forwarding: Forwarding
    table: str  # "ip" | "ip6" | "netdev": the family of the table holding it
    selection: Selection
    weights: Mapping[str, int]  # rs key -> effective weight of the servers in the maps
    excluded: Mapping[str, Exclusion]  # rs key -> why it is not in the maps
    counters: Mapping[str, tuple[str, str]]  # counter name -> (rs key or "", kind)


MapRef = tuple[str, str]  # (table family, map name)


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
    not change (``_member``): a new server of 100 builds its own chain alone."""

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
    service's map elements only (``_service_maps``): a weight change of one server of 100
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
    dispatch: tuple[Any, ...] = ()  # its dispatch map's elements (``_dispatch_elements``)

    @property
    def base(self) -> Any:
        return self.key[0]


@dataclass
class _Reuse:
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


@dataclass(frozen=True)
class StructureIndex:
    """A ruleset's structure by object: declarations, chains, and each chain's rules (what
    ``transaction.in_place`` compares)."""

    declared: dict[tuple[str, str, str], Json] = field(default_factory=dict)
    chains: dict[tuple[str, str], Json] = field(default_factory=dict)
    rules: dict[tuple[str, str], list[Json]] = field(default_factory=dict)

    @classmethod
    def of(cls, structure: Sequence[Json]) -> StructureIndex:
        found = cls()
        for command in structure:
            for kind, body in command.get("add", {}).items():
                if kind in {"counter", "set", "map"}:
                    found.declared[(body["family"], kind, body["name"])] = body
                elif kind == "chain":
                    found.chains[(body["family"], body["name"])] = body
                elif kind == "rule":
                    found.rules.setdefault((body["family"], body["chain"]), []).append(body)
        return found


@dataclass(frozen=True, kw_only=True)
class Ruleset:
    """The transaction that brings Bascule's tables to the desired state, and its summary.

    ``structure`` is every command but the maps' elements: tables, declarations, chains and
    rules. ``maps`` holds each named map's elements; runtime changes (weights, states, health,
    MACs) only ever change these, whose changed elements ``transaction.in_place`` sends alone.
    ``slot_tables`` keeps each scheduling map as built, for the next build to start from.
    ``prelude`` holds the nft text declarations of the maps that the JSON cannot declare
    (``TableCommands.integer_map``); ``transaction.prelude`` creates those that do not exist.
    """

    structure: tuple[Json, ...]
    maps: Mapping[MapRef, tuple[Any, ...]]
    prelude: Mapping[MapRef, str]
    services: Mapping[str, ServiceView]
    tables: tuple[str, ...]  # families of the tables kept ("ip", "netdev"...)
    # nft service name -> its scheduling map as built (what the next build starts from)
    slot_tables: Mapping[str, SlotTable] = field(default_factory=dict)
    # nft service name -> its structure as built (what the next build reuses)
    fragments: Mapping[str, ServiceFragment] = field(default_factory=dict)
    # each scheduling map's slot table (what ``transaction.in_place`` knows moved)
    scheduling: Mapping[MapRef, SlotTable] = field(default_factory=dict)

    @property
    def commands(self) -> tuple[Json, ...]:
        """The whole transaction: the structure, then every map's elements."""
        fills = [
            command
            for (family, name), elements in self.maps.items()
            for command in fill(family, name, list(elements))
        ]
        return (*self.structure, *fills)

    def document(self) -> Json:
        """The ``nft -j -f`` input (once the prelude's maps exist)."""
        return {"nftables": list(self.commands)}

    @functools.cached_property
    def index(self) -> StructureIndex:
        """The structure by object, made once per ruleset (the running one is compared with
        every change)."""
        return StructureIndex.of(self.structure)

    def objects(self) -> set[tuple[str, str, str]]:
        """(family, kind, name) of every set, map, counter and chain the ruleset declares."""
        found = {(family, "map", name) for family, name in self.prelude}
        found.update(self.index.declared)
        found.update((family, "chain", name) for family, name in self.index.chains)
        return found


def _port_items(ranges: Sequence[PortRange]) -> list[Any]:
    """Each range as nft spells it: a port, or ``{"range": [first, last]}``."""
    return [r.first if r.first == r.last else {"range": [r.first, r.last]} for r in ranges]


def _source_key(vs: VirtualService, family: str) -> Any:
    """The client address as persistence sees it: masked to ``source_mask`` bits (IPv4) or
    ``source_mask6`` bits (IPv6)."""
    bits = 32 if family == "ip" else 128
    prefix = vs.persistence.source_mask if family == "ip" else vs.persistence.source_mask6
    saddr = payload(family, "saddr")
    if prefix == bits:
        return saddr
    network = ipaddress.ip_network(f"{'0.0.0.0' if family == 'ip' else '::'}/{prefix}")
    return {"&": [saddr, str(network.netmask)]}


_CounterRefs = dict[str, tuple[str, str]]  # counter name -> (rs key or "", kind)
_CountersByService = dict[str, _CounterRefs]


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


def _dispatch_elements(service: ServiceDecision) -> tuple[Any, ...]:
    """The VIP's elements of its dispatch map: ``VIP . protocol . port (or range)`` -> goto
    its chain, one per port range."""
    vs = service.vs
    address = str(ipaddress.ip_address(vs.address))
    target = goto(vs_chain(vs))
    return tuple(
        [{"concat": [address, vs.protocol.value, port]}, target]
        for port in _port_items(vs.port_ranges)
    )


def _dispatch(
    table: TableCommands,
    chain: str,
    maps: Mapping[str, Sequence[ServiceDecision]],
    tables: _Reuse,
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


def _slots(
    service: ServiceDecision,
    weights: Mapping[str, int],
    chains: Mapping[str, str],
    size: int,
    tables: _Reuse,
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


def _selector_map(
    service: ServiceDecision, env: Environment, tables: _Reuse
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


def _pin_elements(service: ServiceDecision, rs: RealServer, live: set[str]) -> tuple[Any, ...]:
    """A persistent server's pin map: "protocol -> goto its chain" while it is ``live``, else
    nothing (a known client's lookup misses and it is scheduled again)."""
    if rs.key not in live:
        return ()
    return ([service.vs.protocol.value, goto(rs_chain(service.vs, rs))],)


def _mac_elements(service: ServiceDecision, rs: RealServer, env: Environment) -> tuple[Any, ...]:
    """A DSR server's MAC map: "protocol -> its MAC", empty while unknown."""
    known = env.server_macs.get(rs.address)
    return ([service.vs.protocol.value, known],) if known else ()


def _pinned(service: ServiceDecision) -> list[RealServer]:
    """The members that pin their clients (every one but the sorry server)."""
    return [rs for rs in service.members if rs is not service.sorry]


def _service_maps(
    service: ServiceDecision, env: Environment, tables: _Reuse
) -> dict[str, tuple[Any, ...]]:
    """The elements of every map of the service, in the order ``_service_rules`` declares
    them: what a build whose structure runs already (``ServiceFragment``) still computes."""
    vs = service.vs
    maps: dict[str, tuple[Any, ...]] = {}
    if service.sticky:
        live = {rs.key for rs in service.live}
        for rs in _pinned(service):
            maps[pin_map(vs, rs)] = _pin_elements(service, rs, live)
    name, elements = _selector_map(service, env, tables)
    maps[name] = elements
    if vs.forwarding is Forwarding.dsr:
        for rs in service.members:
            maps[mac_map(vs, rs)] = _mac_elements(service, rs, env)
    return maps


def _selector(
    table: TableCommands, service: ServiceDecision, env: Environment, tables: _Reuse
) -> list[Json]:
    """Declare the service's scheduling map and return the rule's expressions that look it up.

    The rule depends on the structure only (the key: numgen's or Maglev's modulus, the
    protocol); who is up and how much they weigh are the map's elements. No live server:
    an empty map, the lookup misses and the packet goes on unbalanced (to the VIP itself).
    """
    vs = service.vs
    proto = vs.protocol.value
    name, elements = _selector_map(service, env, tables)
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


def _service_rules(
    table: TableCommands, service: ServiceDecision, env: Environment, tables: _Reuse
) -> _CounterRefs:
    """Declare and fill the service's chains; return its counters (name -> (rs key, kind)).

    Every member gets its chain, counters and persistence rule whether it is up or not, so
    that a change of state, health or MAC changes map elements only (a map update).
    """
    vs = service.vs
    persistent = service.sticky
    key_type = "ipv4_addr" if service.family == "ip" else "ipv6_addr"
    source = _source_key(vs, service.family)
    counters: dict[str, tuple[str, str]] = {}
    chain = vs_chain(vs)
    table.chain(chain)
    # every server this VIP can ever reach (not those of the other family of a dual-stack
    # NAT service): each keeps its persistence set, whose entries outlive a down spell
    reachable = [
        rs for rs in vs.real_servers if service.excluded.get(rs.key) is not Exclusion.other_family
    ]
    if persistent:
        live = {rs.key for rs in service.live}
        for rs in reachable:
            table.persistence_set(persistence_set(vs, rs), key_type)
        for rs in _pinned(service):
            # A known client goes back to its server only while the server is live: its pin
            # map holds "protocol -> goto" then, and nothing (a miss: go on) otherwise.
            pin = pin_map(vs, rs)
            table.map(pin, "inet_proto", "verdict", _pin_elements(service, rs, live))
            hit = match(source, f"@{persistence_set(vs, rs)}")
            by_protocol = {"key": {"meta": {"key": "l4proto"}}, "data": f"@{pin}"}
            table.rule(chain, hit, {"vmap": by_protocol})
    table.rule(chain, *_selector(table, service, env, tables))
    # whose clients a persistent member's rules forget (part of its key, by their keys)
    forgets = tuple(reachable) if persistent else ()
    keys = tuple(rs.key for rs in forgets)
    for rs in service.members:
        counters.update(_member(table, service, rs, env, (forgets, keys), tables))
    return counters


def _member(
    table: TableCommands,
    service: ServiceDecision,
    rs: RealServer,
    env: Environment,
    reachable: tuple[tuple[RealServer, ...], tuple[str, ...]],
    tables: _Reuse,
) -> _CounterRefs:
    """Add one member's declarations, chain and rules to ``table``: those built for the
    ruleset that runs when built from the same key (``MemberFragment``), else built now;
    return its counters. A DSR member's MAC map elements are computed either way.
    ``reachable``: the servers whose persistence sets its rules forget the client from,
    and their keys (none without persistence)."""
    sorry = rs is service.sorry
    key = (_structural(rs), sorry, () if sorry else reachable[1])
    fragment = tables.members_before.get(rs.key)
    if fragment is None or fragment.key != key:
        own = TableCommands(table.family)
        counters = _member_rules(own, service, rs, env, reachable[0])
        fragment = MemberFragment(
            key=key,
            declarations=tuple(own.declarations),
            chains=tuple(own.chains),
            rules=tuple(own.rules),
            counters=counters,
        )
    table.declarations.extend(fragment.declarations)
    table.chains.extend(fragment.chains)
    table.rules.extend(fragment.rules)
    if service.vs.forwarding is Forwarding.dsr:
        table.maps[mac_map(service.vs, rs)] = _mac_elements(service, rs, env)
    tables.members[rs.key] = fragment
    return dict(fragment.counters)


def _member_rules(
    table: TableCommands,
    service: ServiceDecision,
    rs: RealServer,
    env: Environment,
    reachable: tuple[RealServer, ...],
) -> _CounterRefs:
    """Declare one member's counters (and DSR MAC map), its chain and rules; ``reachable``:
    the servers whose persistence sets its rules forget the client from (none without
    persistence). Return its counters."""
    vs = service.vs
    proto = vs.protocol.value
    counters: _CounterRefs = {}
    name = rs_chain(vs, rs)
    table.chain(name)
    if service.selection.maglev and vs.forwarding is Forwarding.nat:
        table.rule(name, {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 0}})
    if service.sticky and rs is not service.sorry:  # the sorry server pins no client
        source = _source_key(vs, service.family)
        for other in reachable:
            if other.key != rs.key:
                table.rule(
                    name,
                    {
                        "set": {
                            "op": "delete",
                            "elem": source,
                            "set": f"@{persistence_set(vs, other)}",
                        }
                    },
                )
        elem = {"elem": {"val": source, "timeout": vs.persistence.timeout}}
        table.rule(
            name, {"set": {"op": "update", "elem": elem, "set": f"@{persistence_set(vs, rs)}"}}
        )
    new = counter_name(vs, rs, "new")
    if vs.forwarding is Forwarding.nat:
        # the nat chains see the first packet of a connection only (conntrack)
        table.counter(new)
        counters[new] = (rs.key, "new")
        table.rule(name, {"counter": new})
        table.rules.extend(_dnat(table, name, vs, rs))
        return counters
    traffic = counter_name(vs, rs, "traffic")
    table.counter(traffic)
    counters[traffic] = (rs.key, "traffic")
    if proto == "tcp":  # UDP has no connection start to count at ingress
        table.counter(new)
        counters[new] = (rs.key, "new")
        syn_only = match({"&": [payload("tcp", "flags"), ["syn", "ack"]]}, "syn")
        table.rule(name, syn_only, {"counter": new})
    # The MAC is a map element (empty while unknown) so that a refresh refills it.
    mac = mac_map(vs, rs)
    table.map(mac, "inet_proto", "ether_addr", _mac_elements(service, rs, env))
    interface = vs.interface or env.interface
    table.rule(
        name,
        {"counter": traffic},
        {"mangle": {"key": payload("ether", "saddr"), "value": env.lb_mac}},
        {
            "mangle": {
                "key": payload("ether", "daddr"),
                "value": {"map": {"key": {"meta": {"key": "l4proto"}}, "data": f"@{mac}"}},
            }
        },
        {"fwd": {"dev": interface}},
    )
    return counters


def _dnat(table: TableCommands, chain: str, vs: VirtualService, rs: RealServer) -> list[Json]:
    """DNAT to the server: the main port onto the server's port, extra ports kept as they are."""
    ref = {"family": table.family, "table": TABLE, "chain": chain}
    address = str(ipaddress.ip_address(rs.address))
    rules: list[Json] = []
    if rs.port != vs.port:
        main = match(payload(vs.protocol.value, "dport"), vs.port)
        nat = {"dnat": {"addr": address, "port": rs.port}}
        rules.append({"add": {"rule": {**ref, "expr": [main, nat]}}})
        if len(vs.port_ranges) == 1:
            return rules
    rules.append({"add": {"rule": {**ref, "expr": [{"dnat": {"addr": address}}]}}})
    return rules


def _server_ports(vs: VirtualService, rs: RealServer) -> Any:
    """The ports a NAT real server receives on: its own for the main port, extras unchanged."""
    extras = _port_items(vs.port_ranges[1:])
    if not extras:
        return rs.port
    if any(r.first <= rs.port <= r.last for r in vs.port_ranges[1:]):
        return {"set": extras}  # an extra range already holds it (nft refuses overlaps)
    return {"set": [rs.port, *extras]}


def _nat_table(
    family: str, services: Sequence[ServiceDecision], inputs: L4Inputs, tables: _Reuse
) -> tuple[TableCommands, _CountersByService]:
    table = TableCommands(family)
    for name, kind, hook, prio in (
        ("prerouting", "nat", "prerouting", PRIORITY_DSTNAT),
        ("postrouting", "nat", "postrouting", PRIORITY_SRCNAT),
    ):
        table.chain(name, type=kind, hook=hook, prio=prio, policy="accept")
    if family == "ip6":
        # IPv6 has no send_redirects sysctl (machine.py turns IPv4's off): a routed NAT
        # server's reply to a client on the same link would earn it an ICMPv6 redirect
        # (RFC 4861 8.2), and it would then answer the client directly, from its own
        # address, which the client never asked. The load balancer sends none.
        table.chain("redirects", type="filter", hook="output", prio=0, policy="accept")
        table.rule("redirects", match(payload("icmpv6", "type"), "nd-redirect"), {"drop": None})
    counters: _CountersByService = {}
    for service in services:
        counters[service.vs.name] = _service_structure(
            table, service, inputs.environment, tables, _nat_service
        )
    _dispatch(table, "prerouting", {dispatch_map(family): services}, tables)
    return table, counters


def _nat_service(
    table: TableCommands, service: ServiceDecision, env: Environment, tables: _Reuse
) -> _CounterRefs:
    """One NAT VIP's commands: its chains and maps, one-armed source NAT."""
    vs, family = service.vs, table.family
    counters = _service_rules(table, service, env, tables)
    if nat_topology(vs) is NatTopology.one_armed:
        version = 4 if family == "ip" else 6
        source = env.source_addresses.get(version)
        snat: Json = {"snat": {"addr": source}} if source else {"masquerade": None}
        from_vip = [
            match({"ct": {"key": "status"}}, "dnat", op="in"),
            match({"ct": {"key": "daddr", "dir": "original", "family": family}}, vs.address),
        ]
        proto = vs.protocol.value
        for rs in service.members:
            # Matched on the packets' own (translated) headers: the server's address and the
            # ports it listens on, plus conntrack's memory of the VIP they were sent to.
            to_this_server = [
                match(payload(family, "daddr"), str(ipaddress.ip_address(rs.address))),
                match(payload(proto, "dport"), _server_ports(vs, rs)),
                *from_vip,
            ]
            table.rule("postrouting", *to_this_server, snat)
    return counters


def _dsr_table(
    services: Sequence[ServiceDecision], env: Environment, tables: _Reuse
) -> tuple[TableCommands, _CountersByService]:
    table = TableCommands("netdev")
    counters: _CountersByService = {}
    by_interface: dict[str, dict[str, list[ServiceDecision]]] = {}
    for service in services:
        interface = service.vs.interface or env.interface
        maps = by_interface.setdefault(interface, {})
        maps.setdefault(dispatch_map(service.family, interface), []).append(service)
    for interface in sorted(by_interface):
        table.chain(
            f"ingress/{interface}",
            type="filter",
            hook="ingress",
            dev=interface,
            prio=PRIORITY_INGRESS,
            policy="accept",
        )
    for service in services:
        counters[service.vs.name] = _service_structure(table, service, env, tables, _service_rules)
    for interface, maps in sorted(by_interface.items()):
        _dispatch(table, f"ingress/{interface}", dict(sorted(maps.items())), tables)
    return table, counters


def _structure_key(service: ServiceDecision, env: Environment) -> tuple[Any, ...]:
    """What a VIP's structure is built from (``ServiceFragment.key``): its ``base`` (the
    service without its servers, the machine's facts but the DSR servers' MACs), and its
    servers but their weights and states (``engines.with_runtime`` copies only the servers
    whose runtime differs, so this copies those alone)."""
    vs = service.vs
    base = (
        service.table,
        service.service,
        vs.model_copy(update={"real_servers": []}),
        replace(env, server_macs={}),
    )
    return (base, tuple(_structural(rs) for rs in vs.real_servers))


def _structural(rs: RealServer) -> RealServer:
    """``rs`` as its rules see it: without its weight and state (the maps' business)."""
    if rs.weight == 1 and rs.state is RealServerState.enabled:
        return rs
    return rs.model_copy(update={"weight": 1, "state": RealServerState.enabled})


def _service_structure(
    table: TableCommands,
    service: ServiceDecision,
    env: Environment,
    tables: _Reuse,
    build: Callable[[TableCommands, ServiceDecision, Environment, _Reuse], _CounterRefs],
) -> _CounterRefs:
    """Add one VIP's commands to ``table``: its structure reused from the ruleset that runs
    when it was built from the same key (its map elements computed again), else ``build``
    run; return its counters."""
    name = service.vs.name
    key = _structure_key(service, env)
    fragment = tables.fragments_before.get(name)
    if fragment is not None and fragment.key == key:
        table.maps.update(_service_maps(service, env, tables))
    else:
        # the same service with other servers: the members that did not change are reused
        same_base = fragment is not None and fragment.base == key[0]
        tables.members_before = fragment.members if fragment is not None and same_base else {}
        tables.members = {}
        own = TableCommands(table.family)
        counters = build(own, service, env, tables)
        table.maps.update(own.maps)
        fragment = ServiceFragment(
            key=key,
            declarations=tuple(own.declarations),
            chains=tuple(own.chains),
            rules=tuple(own.rules),
            typeof_maps=dict(own.typeof_maps),
            counters=counters,
            members=tables.members,
            dispatch=_dispatch_elements(service),
        )
    table.declarations.extend(fragment.declarations)
    table.chains.extend(fragment.chains)
    table.rules.extend(fragment.rules)
    table.typeof_maps.update(fragment.typeof_maps)
    tables.fragments[name] = fragment
    return dict(fragment.counters)


def build_ruleset(
    config: Configuration, inputs: L4Inputs, previous: Ruleset | None = None
) -> Ruleset:
    """The whole transaction for the L4 services of ``config``; raise ViewError when it cannot.

    ``previous``: the ruleset that runs, whose scheduling maps the new one starts from
    (``SlotTable``), so that a change moves as few slots as it can; without it every map is
    built afresh.
    """
    services = decide(config, inputs)
    tables = _Reuse(
        previous=previous.slot_tables if previous else {},
        built={},
        fragments_before=previous.fragments if previous else {},
    )
    commands: list[Json] = []
    maps: dict[MapRef, tuple[Any, ...]] = {}
    prelude: dict[MapRef, str] = {}
    views: dict[str, ServiceView] = {}
    scheduling: dict[MapRef, SlotTable] = {}
    kept: list[str] = []
    for family in FAMILIES:
        mine = [s for s in services if s.table == family]
        if not mine:
            commands += drop_table(family)  # an earlier apply may have made it
            continue
        if family == "netdev":
            table, counters = _dsr_table(mine, inputs.environment, tables)
        else:
            table, counters = _nat_table(family, mine, inputs, tables)
        commands += table.commands()
        maps.update({(family, name): tuple(elements) for name, elements in table.maps.items()})
        prelude.update({(family, name): text for name, text in table.typeof_maps.items()})
        kept.append(family)
        for service in mine:
            built = tables.built.get(service.vs.name)
            if built is not None:
                scheduling[(family, sched_map(service.vs))] = built
            views[service.vs.name] = ServiceView(
                name=service.vs.name,
                service=service.service,
                family=service.family,
                forwarding=service.vs.forwarding,
                table=family,
                selection=service.selection,
                weights=dict(service.weights),
                excluded=dict(service.excluded),
                counters=counters[service.vs.name],
            )
    structure = tuple(commands)
    if previous is not None and previous.structure == structure:
        # a runtime change (most commands the very same objects: a quick comparison): the
        # structure that runs, whose index ``transaction.in_place`` then need not compare
        structure = previous.structure
    ruleset = Ruleset(
        structure=structure,
        maps=maps,
        prelude=prelude,
        services=views,
        tables=tuple(kept),
        slot_tables=tables.built,
        fragments=tables.fragments,
        scheduling=scheduling,
    )
    if previous is not None and structure is previous.structure and "index" in vars(previous):
        vars(ruleset)["index"] = previous.index  # the cached_property, made once
    return ruleset
