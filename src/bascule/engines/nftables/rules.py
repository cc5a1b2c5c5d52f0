"""The decided L4 services -> the nft JSON ruleset of Bascule's tables, as data.

Where this sits in the flow of a change: ``view.py`` decides, per service, the table, the
selection and the real servers in the maps; ``build_ruleset`` spells it as one nft
transaction (the ``nft -j`` schema, libnftables-json(5)) with the vocabulary of ``nft.py``;
``transaction.py`` fits it to what runs and ``shell.py`` checks it with ``nft -c`` and
applies it with ``nft -f``. Nothing here does I/O, reads settings or the clock.

This module builds the tables (NAT's ``ip``/``ip6``, with one-armed source NAT; DSR's
``netdev``, its ingress chains per interface) and the ``Ruleset``; each VIP's chains are
``chains.py``'s, their scheduling maps ``slot_tables.py``'s, the lookup that finds the VIP
``dispatch.py``'s, and what a build reuses of the ruleset that runs ``fragments.py``'s.

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

from bascule.engines.nftables.chains import CounterRefs, service_maps, service_rules, structural
from bascule.engines.nftables.dispatch import dispatch, dispatch_elements, port_items
from bascule.engines.nftables.fragments import Reuse, ServiceFragment, SlotTable
from bascule.engines.nftables.nft import (
    FAMILIES,
    Json,
    TableCommands,
    dispatch_map,
    drop_table,
    fill,
    match,
    payload,
    sched_map,
)
from bascule.engines.nftables.scheduling import Selection
from bascule.engines.nftables.view import (
    Environment,
    Exclusion,
    L4Inputs,
    NatTopology,
    ServiceDecision,
    decide,
    nat_topology,
)
from bascule.model import Configuration, Forwarding, RealServer, VirtualService

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


_CountersByService = dict[str, CounterRefs]


def _server_ports(vs: VirtualService, rs: RealServer) -> Any:
    """The ports a NAT real server receives on: its own for the main port, extras unchanged."""
    extras = port_items(vs.port_ranges[1:])
    if not extras:
        return rs.port
    if any(r.first <= rs.port <= r.last for r in vs.port_ranges[1:]):
        return {"set": extras}  # an extra range already holds it (nft refuses overlaps)
    return {"set": [rs.port, *extras]}


def _nat_table(
    family: str, services: Sequence[ServiceDecision], inputs: L4Inputs, tables: Reuse
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
    dispatch(table, "prerouting", {dispatch_map(family): services}, tables)
    return table, counters


def _nat_service(
    table: TableCommands, service: ServiceDecision, env: Environment, tables: Reuse
) -> CounterRefs:
    """One NAT VIP's commands: its chains and maps, one-armed source NAT."""
    vs, family = service.vs, table.family
    counters = service_rules(table, service, env, tables)
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
    services: Sequence[ServiceDecision], env: Environment, tables: Reuse
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
        counters[service.vs.name] = _service_structure(table, service, env, tables, service_rules)
    for interface, maps in sorted(by_interface.items()):
        dispatch(table, f"ingress/{interface}", dict(sorted(maps.items())), tables)
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
    return (base, tuple(structural(rs) for rs in vs.real_servers))


def _service_structure(
    table: TableCommands,
    service: ServiceDecision,
    env: Environment,
    tables: Reuse,
    build: Callable[[TableCommands, ServiceDecision, Environment, Reuse], CounterRefs],
) -> CounterRefs:
    """Add one VIP's commands to ``table``: its structure reused from the ruleset that runs
    when it was built from the same key (its map elements computed again), else ``build``
    run; return its counters."""
    name = service.vs.name
    key = _structure_key(service, env)
    fragment = tables.fragments_before.get(name)
    if fragment is not None and fragment.key == key:
        table.maps.update(service_maps(service, env, tables))
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
            dispatch=dispatch_elements(service),
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
    tables = Reuse(
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
