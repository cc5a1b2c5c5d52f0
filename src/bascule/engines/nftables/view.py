"""Model + health + environment facts -> the nft JSON ruleset of Bascule's L4 tables, as data.

Where this sits in the flow of a change: the reconciler hands a validated ``Configuration``
to the nftables engine, together with the health of every real server and the facts of the
machine that are not in the model (the MAC addresses of DSR real servers, the load balancer's
own MAC and source address). ``build_ruleset`` turns them into one nft transaction (the
``nft -j`` schema, libnftables-json(5)) that ``shell.py`` checks with ``nft -c`` and applies
with ``nft -f``. Nothing here does I/O, reads settings or the clock.

What the ruleset looks like (one table per family that is needed, all named ``bascule``)::

    table ip bascule                         NAT for IPv4 VIPs (ip6 bascule for IPv6)
      chain prerouting   nat, dstnat          ip daddr VIP tcp dport {80, 8000-8010} goto vs/web
      chain vs/web                            persistence hits (@pin/... maps), then
                                              numgen inc mod 5040 vmap @sched/web
      chain rs/web/198.18.0.11/80             forget other servers' persistence, count, dnat
      chain postrouting  nat, srcnat          one-armed: snat the server side to the LB
      chain traffic      filter, forward      per real server packets and bytes: one counter
                                              map lookup per direction (@count/...)
      chain clients      filter, prerouting   per virtual service packets and bytes
    table netdev bascule                      DSR, both families
      chain ingress/eth0 filter, ingress      ip daddr VIP tcp dport 80 goto vs/web
      chain vs/web                            persistence hits, then jhash(flow) vmap @sched
      chain rs/web/...                        ether saddr/daddr (@mac/... map) set, fwd

Structure and data: every rule depends on the document only (services, real servers, ports,
forwarding, persistence) and on facts of the machine that do not move (interface, the load
balancer's MAC and address). Everything that changes at run time (weights, states, health,
conntrack-derived weights, the real servers' MACs) lives in named maps' elements: the
scheduling map (``sched/…``, or ``fixed/…`` for fixed_weighting), one ``pin/…`` map per
server that lets its persistent clients back in while it is live, one ``mac/…`` map per DSR
server. ``map_update`` compares two rulesets and, when their structure is the same, returns
the transaction that only flushes and refills the maps whose elements differ: no rule is
re-added, so rule handles, numgen's position, counters and persistence entries stay.

Atomicity and ownership: for a structural change each table is brought to its desired state
inside one transaction by ``add table`` (idempotent), ``flush table`` (drops every rule,
keeps sets, maps and counters), then re-adding declarations and rules, then flushing and
refilling every map. Persistence sets are only declared, never flushed, so clients stay on
their server across applies; counters keep counting. The numgen maps are keyed by a bare
integer, which nft 1.0.6 declares only in its text syntax (``typeof``), so ``prelude``
creates them, empty, before the first transaction that uses them. Maglev (jhash) maps go
through the packet mark instead: nft 1.0.6 crashes printing a ``typeof jhash`` map, which
would make ``nft list ruleset`` crash for the administrator. A family that is not needed
is removed by ``add table`` + ``delete table``. Objects of a service that left are removed by
``transaction``, which needs the current listing (the engine reads it). No other table is
ever named.

Scheduling (NAT, where conntrack remembers each connection's choice): ``numgen inc`` over a
smooth weighted sequence stretched over a fixed number of slots (``ROUND_ROBIN_SLOTS``) for
the round robin family and the least connection family (whose weights the daemon derives
from conntrack counts and passes in), the single highest-weight
server for ``fixed_weighting``, Maglev on the source address for ``source_ip_hash``. DSR has no
connection tracking at the ingress hook, so every method becomes weighted Maglev on a hash of
the flow (``DSR_SCHEDULING`` says which, and ``ServiceView.selection`` carries it to the
status).

Left out of the maps: a real server that is drained, disabled, down, standing by (the
fixed_weighting family), without a known MAC (DSR) or that the tables cannot hold (another
address family, a DSR port change) is in ``ServiceView.excluded`` with an ``Exclusion``; the
text a person reads is the member's value, taken at the edge (status, ``bascule status``).
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bascule.engines.nftables.maglev import DEFAULT_TABLE_SIZE, lookup_table
from bascule.engines.nftables.nft import (
    TABLE,
    Json,
    TableCommands,
    counter_name,
    fill,
    fixed_map,
    goto,
    mac_map,
    match,
    payload,
    persistence_set,
    pin_map,
    refill,
    rs_chain,
    sched_map,
    vs_chain,
)
from bascule.model import (
    Configuration,
    Forwarding,
    Mode,
    PersistenceMethod,
    RealServer,
    RealServerState,
    Scheduler,
    VirtualService,
)
from bascule.model.weights import engine_weights

# Hook priorities, nft(8) "CHAINS": dstnat -100, srcnat 100, mangle -150. DSR runs at the
# ingress hook before anything else on the interface.
PRIORITY_DSTNAT = -100
PRIORITY_SRCNAT = 100
PRIORITY_COUNT = -150
PRIORITY_INGRESS = -500

# The numgen sequence of the round robin family is at most this long; weights are scaled
# (keeping their ratios, see model/weights.py) so that their sum fits.
MAX_SEQUENCE = 4096
# The round robin map always has this many slots, so that ``numgen inc mod`` (in a rule) stays
# the same when weights change and only the map's elements do. 5040 is divisible by every
# number up to 10 (and by 12, 14, 15, 16...): equal or small weights fill it exactly.
ROUND_ROBIN_SLOTS = 5040


class NatTopology(enum.StrEnum):
    """How replies from NAT real servers come back to the load balancer.

    ``routed``: the real servers route through the load balancer (it is their gateway), so
    only the destination is rewritten and they see the client's address. ``one_armed``: they
    may answer the client directly, so the source is rewritten to the load balancer's
    address too (LoadMaster's "subnet originating requests"); they see the load balancer.
    """

    routed = "routed"
    one_armed = "one_armed"


def nat_topology(vs: VirtualService) -> NatTopology:
    """The model says it: ``subnet_originating: true`` is the one-armed case."""
    return NatTopology.one_armed if vs.subnet_originating else NatTopology.routed


class Selection(enum.StrEnum):
    """How a service picks a real server, as the status shows it."""

    round_robin = "numgen inc over the weighted sequence"
    fixed = "the highest-weight real server that is up"
    source_maglev = "Maglev on jhash(source address)"
    flow_maglev = "Maglev on jhash(source address, source port, destination port)"


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
# Whether each persistence method the model allows on l4 pins a client to its server by its
# (masked) source address: a persistence set per real server, consulted before scheduling.
STICKY: dict[PersistenceMethod, bool] = {
    PersistenceMethod.none: False,
    PersistenceMethod.source_ip: True,
}


class Exclusion(enum.Enum):
    """Why a real server is not in its service's maps; the value is what a person reads."""

    other_family = "its address family differs from the VIP's"
    dsr_port = "DSR cannot change the port: the real server port must be the VIP's"
    drain = "drain"
    disabled = "disabled"
    down = "down"
    no_mac = "no MAC address known for it (DSR needs the server on the same segment)"
    standby = "fixed_weighting: a higher-weight server is up"

    @property
    def faulty(self) -> bool:
        """Left out for a fact of the machine or of the tables, not for its state, its health
        or standing by: the status then shows the server down with this reason."""
        return self in _FAULTS


_FAULTS = frozenset({Exclusion.other_family, Exclusion.dsr_port, Exclusion.no_mac})
_STATE_EXCLUSIONS = {
    RealServerState.drain: Exclusion.drain,
    RealServerState.disabled: Exclusion.disabled,
}


class ViewError(ValueError):
    """The desired L4 state cannot be expressed (an L7-only method, a missing fact...)."""


@dataclass(frozen=True, kw_only=True)
class Environment:
    """Facts of the machine that are not in the model, found by the engine shell.

    ``interface``: the load balancer's interface on the real servers' segment (DSR ingress
    and egress), unless a service names its own. ``lb_mac``: that interface's MAC (the DSR
    frames' new source). ``server_macs``: real server address -> MAC (DSR destinations; a
    server without one is left out and reported). ``source_addresses``: family (4 or 6) ->
    the load balancer's address for one-armed NAT; without one, ``masquerade`` picks the
    outgoing interface's address. ``maglev_size``: a prime, 65537 in production.
    """

    interface: str = "eth0"
    lb_mac: str | None = None
    server_macs: Mapping[str, str] = field(default_factory=dict)
    source_addresses: Mapping[int, str] = field(default_factory=dict)
    maglev_size: int = DEFAULT_TABLE_SIZE
    round_robin_slots: int = ROUND_ROBIN_SLOTS


@dataclass(frozen=True, kw_only=True)
class L4Inputs:
    """Everything ``build_ruleset`` needs besides the model.

    ``health``: (virtual service name, real server key) -> up; a pair that is missing counts
    as up (an unchecked server). ``weights``: (vs, rs key) -> weight overriding the model's
    for the least connection family (the daemon turns conntrack counts into these).
    The NAT topology is the model's: ``subnet_originating`` means one-armed (``nat_topology``).
    """

    environment: Environment = field(default_factory=Environment)
    health: Mapping[tuple[str, str], bool] = field(default_factory=dict)
    weights: Mapping[tuple[str, str], int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ServiceView:
    """What the status shows about one L4 service: how it picks, whom, and who is left out."""

    name: str
    family: str  # "ip" | "ip6"
    forwarding: Forwarding
    table: str  # "ip" | "ip6" | "netdev": the family of the table holding it
    selection: Selection
    weights: Mapping[str, int]  # rs key -> effective weight of the servers in the maps
    excluded: Mapping[str, Exclusion]  # rs key -> why it is not in the maps
    counters: Mapping[str, tuple[str, str]]  # counter name -> (rs key or "", kind)


MapRef = tuple[str, str]  # (table family, map name)


@dataclass(frozen=True, kw_only=True)
class Ruleset:
    """The transaction that brings Bascule's tables to the desired state, and its summary.

    ``structure`` is every command but the maps' elements: tables, declarations, chains and
    rules. ``maps`` holds each named map's elements; runtime changes (weights, states, health,
    MACs) only ever change these, which ``map_update`` turns into a transaction of their own.
    ``prelude`` holds the nft text declarations of the maps that the JSON cannot declare
    (``TableCommands.integer_map``); the engine runs it first for those that do not exist.
    """

    structure: tuple[Json, ...]
    maps: Mapping[MapRef, tuple[Any, ...]]
    prelude: Mapping[MapRef, str]
    services: Mapping[str, ServiceView]
    tables: tuple[str, ...]  # families of the tables kept ("ip", "netdev"...)

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

    def objects(self) -> set[tuple[str, str, str]]:
        """(family, kind, name) of every set, map, counter and chain the ruleset declares."""
        found = {(family, "map", name) for family, name in self.prelude}
        for command in self.structure:
            for kind, body in command.get("add", {}).items():
                if kind in {"set", "map", "counter", "chain"}:
                    found.add((body["family"], kind, body["name"]))
        return found


def _ports(vs: VirtualService) -> Any:
    ranges = vs.port_ranges
    items: list[Any] = [
        r.first if r.first == r.last else {"range": [r.first, r.last]} for r in ranges
    ]
    return items[0] if len(items) == 1 else {"set": items}


def _family(address: str) -> str:
    return "ip" if ipaddress.ip_address(address).version == 4 else "ip6"


def _source_key(vs: VirtualService, family: str) -> Any:
    """The client address as persistence sees it: masked to ``source_mask`` bits."""
    bits = 32 if family == "ip" else 128
    prefix = min(vs.persistence.source_mask, bits)
    saddr = payload(family, "saddr")
    if prefix == bits:
        return saddr
    network = ipaddress.ip_network(f"{'0.0.0.0' if family == 'ip' else '::'}/{prefix}")
    return {"&": [saddr, str(network.netmask)]}


def _seed(vs: VirtualService) -> int:
    # jhash's seed: fixed per service so every apply (and every process) hashes alike.
    return int.from_bytes(hashlib.blake2b(vs.name.encode(), digest_size=4).digest(), "big")


_CounterRefs = dict[str, tuple[str, str]]  # counter name -> (rs key or "", kind)
_CountersByService = dict[str, _CounterRefs]


# -- decisions ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Service:
    vs: VirtualService
    family: str
    table: str
    selection: Selection
    sticky: bool
    members: tuple[RealServer, ...]  # with chains and counters: all but structural misfits
    live: tuple[RealServer, ...]  # in the maps, in document order
    weights: Mapping[str, int]
    excluded: Mapping[str, Exclusion]


def l4_services(config: Configuration) -> tuple[VirtualService, ...]:
    """The enabled ``mode: l4`` services, in document order."""
    return tuple(vs for vs in config.virtual_services if vs.mode is Mode.l4 and vs.enabled)


def _decide(vs: VirtualService, inputs: L4Inputs) -> _Service:
    sticky = STICKY.get(vs.persistence.method)
    if sticky is None:
        raise ViewError(
            f"{vs.name}: persistence {vs.persistence.method.value} needs L7; an l4 service "
            f"offers {' or '.join(method.value for method in STICKY)}"
        )
    table_of = {Forwarding.nat: _family(vs.address), Forwarding.dsr: "netdev"}
    selections = NAT_SCHEDULING if vs.forwarding is Forwarding.nat else DSR_SCHEDULING
    selection = selections.get(vs.scheduler)
    if selection is None:
        raise ViewError(f"{vs.name}: scheduler {vs.scheduler.value} needs L7")
    family = _family(vs.address)
    excluded: dict[str, Exclusion] = {}
    candidates: list[RealServer] = []
    members: list[RealServer] = []
    env = inputs.environment
    for rs in vs.real_servers:
        misfit = _misfit(vs, rs, family)
        if misfit is not None:
            excluded[rs.key] = misfit
            continue
        members.append(rs)
        reason = _exclusion(vs, rs, inputs)
        if reason is None and vs.forwarding is Forwarding.dsr and rs.address not in env.server_macs:
            reason = Exclusion.no_mac
        if reason is None:
            candidates.append(rs)
        else:
            excluded[rs.key] = reason
    if vs.forwarding is Forwarding.dsr and members and env.lb_mac is None:
        raise ViewError(f"{vs.name}: DSR needs the load balancer's MAC address")
    weights = _effective_weights(vs, selection, candidates, inputs)
    live = tuple(rs for rs in candidates if rs.key in weights)
    for rs in candidates:
        if rs.key not in weights:
            excluded[rs.key] = Exclusion.standby
    return _Service(
        vs=vs,
        family=family,
        table=table_of[vs.forwarding],
        selection=selection,
        sticky=sticky,
        members=tuple(members),
        live=live,
        weights=weights,
        excluded=excluded,
    )


def _misfit(vs: VirtualService, rs: RealServer, family: str) -> Exclusion | None:
    """Why the document itself keeps a server out of the tables (no chain at all)."""
    if _family(rs.address) != family:
        return Exclusion.other_family
    if vs.forwarding is Forwarding.dsr and rs.port != vs.port:
        return Exclusion.dsr_port
    return None


def _exclusion(vs: VirtualService, rs: RealServer, inputs: L4Inputs) -> Exclusion | None:
    """Why a server with chains is out of the maps for now (state or health)."""
    if rs.state is not RealServerState.enabled:
        # Drain: conntrack keeps existing NAT connections on it; new ones go elsewhere.
        return _STATE_EXCLUSIONS[rs.state]
    if not inputs.health.get((vs.name, rs.key), True):
        return Exclusion.down
    return None


def _effective_weights(
    vs: VirtualService, selection: Selection, servers: Sequence[RealServer], inputs: L4Inputs
) -> dict[str, int]:
    if not servers:
        return {}
    if selection is Selection.fixed:
        top = max(servers, key=lambda rs: rs.weight)  # first in document order among equals
        return {top.key: 1}
    # The least connection family is weighted by the daemon's conntrack-derived weights
    # (``inputs.weights``), which both members honour; until they arrive (and always in DSR,
    # which has none) an unweighted scheduler counts every server 1, as in LoadMaster.
    scheduler = vs.scheduler
    given = {
        rs.key: inputs.weights.get((vs.name, rs.key), rs.weight if scheduler.weighted else 1)
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
    current = dict.fromkeys(weights, 0)
    total = sum(weights.values())
    order: list[str] = []
    for _ in range(total):
        for name, weight in weights.items():
            current[name] += weight
        chosen = max(current, key=lambda name: current[name])  # first among equals
        current[chosen] -= total
        order.append(chosen)
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


def _vmap_elements(sequence: Sequence[str], chains: Mapping[str, str]) -> list[Any]:
    # One element per slot, never ranges: nft 1.0.6 needs minutes to load a 65537-slot
    # Maglev table as an interval map, and under a second as a plain (hash) one.
    return [[slot, goto(chains[key])] for slot, key in enumerate(sequence)]


# -- rules --------------------------------------------------------------------------------------


def _dispatchmatch(service: _Service) -> list[Json]:
    vs = service.vs
    proto = vs.protocol.value
    return [
        match(payload(service.family, "daddr"), str(ipaddress.ip_address(vs.address))),
        match(payload(proto, "dport"), _ports(vs)),
    ]


def _selector(table: TableCommands, service: _Service, env: Environment) -> list[Json]:
    """Declare the service's scheduling map and return the rule's expressions that look it up.

    The rule depends on the structure only (the key: numgen's or Maglev's modulus, the
    protocol); who is up and how much they weigh are the map's elements. No live server:
    an empty map, the lookup misses and the packet goes on unbalanced (to the VIP itself).
    """
    vs, live = service.vs, service.live
    chains = {rs.key: rs_chain(vs, rs) for rs in live}
    weights = {rs.key: service.weights[rs.key] for rs in live}
    proto = vs.protocol.value
    if service.selection is Selection.fixed:
        name = fixed_map(vs)
        elements = [[proto, goto(chains[live[0].key])]] if live else []
        table.map(name, "inet_proto", "verdict", elements)
        return [{"vmap": {"key": {"meta": {"key": "l4proto"}}, "data": f"@{name}"}}]
    name = sched_map(vs)
    if service.selection is Selection.round_robin:
        size = env.round_robin_slots
        sequence = round_robin_slots(weights, size) if live else ()
        key: Json = {"numgen": {"mode": "inc", "mod": size, "offset": 0}}
        table.integer_map(name, f"numgen inc mod {size}", _vmap_elements(sequence, chains))
        return [{"vmap": {"key": key, "data": f"@{name}"}}]
    size = env.maglev_size
    sequence = lookup_table(weights, size) if live else ()
    fields: list[Json] = [payload(service.family, "saddr")]
    if service.selection is Selection.flow_maglev:
        fields += [payload(proto, "sport"), payload(proto, "dport")]
    hashed = fields[0] if len(fields) == 1 else {"concat": fields}
    key = {"jhash": {"mod": size, "seed": _seed(vs), "offset": 0, "expr": hashed}}
    # nft 1.0.6 crashes (SIGSEGV) printing a map declared ``typeof jhash ...``, so
    # ``nft list ruleset`` would crash for the administrator. The Maglev slot therefore goes
    # through the packet mark, a type JSON can declare; the server's chain clears the mark
    # again before routing (NAT), and DSR frames leave by ``fwd`` where no one reads it.
    mark = {"meta": {"key": "mark"}}
    table.map(name, "mark", "verdict", _vmap_elements(sequence, chains))
    return [{"mangle": {"key": mark, "value": key}}, {"vmap": {"key": mark, "data": f"@{name}"}}]


def _service_rules(table: TableCommands, service: _Service, env: Environment) -> _CounterRefs:
    """Declare and fill the service's chains; return its counters (name -> (rs key, kind)).

    Every member gets its chain, counters and persistence rule whether it is up or not, so
    that a change of state, health or MAC changes map elements only (``map_update``).
    """
    vs = service.vs
    persistent = service.sticky
    key_type = "ipv4_addr" if service.family == "ip" else "ipv6_addr"
    source = _source_key(vs, service.family)
    proto = vs.protocol.value
    live = {rs.key for rs in service.live}
    counters: dict[str, tuple[str, str]] = {}
    chain = vs_chain(vs)
    table.chain(chain)
    if persistent:
        for rs in vs.real_servers:  # declared for every server: entries outlive a down spell
            table.persistence_set(persistence_set(vs, rs), key_type)
        for rs in service.members:
            # A known client goes back to its server only while the server is live: its pin
            # map holds "protocol -> goto" then, and nothing (a miss: go on) otherwise.
            pin = pin_map(vs, rs)
            target = [[proto, goto(rs_chain(vs, rs))]] if rs.key in live else []
            table.map(pin, "inet_proto", "verdict", target)
            hit = match(source, f"@{persistence_set(vs, rs)}")
            by_protocol = {"key": {"meta": {"key": "l4proto"}}, "data": f"@{pin}"}
            table.rule(chain, hit, {"vmap": by_protocol})
    table.rule(chain, *_selector(table, service, env))
    marks = service.selection in {Selection.source_maglev, Selection.flow_maglev}
    for rs in service.members:
        name = rs_chain(vs, rs)
        table.chain(name)
        if marks and vs.forwarding is Forwarding.nat:
            table.rule(name, {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 0}})
        if persistent:
            for other in vs.real_servers:
                if other is not rs:
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
        else:
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
            known = env.server_macs.get(rs.address)
            table.map(mac, "inet_proto", "ether_addr", [[proto, known]] if known else [])
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
    extras = [
        r.first if r.first == r.last else {"range": [r.first, r.last]} for r in vs.port_ranges[1:]
    ]
    if not extras:
        return rs.port
    if any(r.first <= rs.port <= r.last for r in vs.port_ranges[1:]):
        return {"set": extras}  # an extra range already holds it (nft refuses overlaps)
    return {"set": [rs.port, *extras]}


def _nat_table(
    family: str, services: Sequence[_Service], inputs: L4Inputs
) -> tuple[TableCommands, _CountersByService]:
    table = TableCommands(family)
    for name, kind, hook, prio in (
        ("prerouting", "nat", "prerouting", PRIORITY_DSTNAT),
        ("postrouting", "nat", "postrouting", PRIORITY_SRCNAT),
        ("clients", "filter", "prerouting", PRIORITY_COUNT),
        ("traffic", "filter", "forward", PRIORITY_COUNT),
    ):
        table.chain(name, type=kind, hook=hook, prio=prio, policy="accept")
    counters: _CountersByService = {}
    address_type = "ipv4_addr" if family == "ip" else "ipv6_addr"
    # Per real server traffic: one lookup per direction in a map of named counters, keyed by
    # what the packet and conntrack say (nft(8) "MAPS": "counter name ... map @m").
    to_server: list[Any] = []
    from_server: list[Any] = []
    keys: set[str] = set()
    for service in services:
        vs = service.vs
        dispatch = _dispatchmatch(service)
        served = counter_name(vs, None, "in")
        table.counter(served)
        table.rule("clients", *dispatch, {"counter": served})
        table.rule("prerouting", *dispatch, goto(vs_chain(vs)))
        found = {served: ("", "in")}
        found.update(_service_rules(table, service, inputs.environment))
        one_armed = nat_topology(vs) is NatTopology.one_armed
        version = 4 if family == "ip" else 6
        source = inputs.environment.source_addresses.get(version)
        snat: Json = {"snat": {"addr": source}} if source else {"masquerade": None}
        from_vip = [
            match({"ct": {"key": "status"}}, "dnat", op="in"),
            match({"ct": {"key": "daddr", "dir": "original", "family": family}}, vs.address),
        ]
        vip = str(ipaddress.ip_address(vs.address))
        proto = vs.protocol.value
        for rs in service.members:
            address = str(ipaddress.ip_address(rs.address))
            # two counters: what the clients send (bytes in) and what the server answers
            traffic, reply = counter_name(vs, rs, "traffic"), counter_name(vs, rs, "reply")
            table.counter(traffic)
            table.counter(reply)
            found[traffic] = (rs.key, "traffic")
            found[reply] = (rs.key, "reply")
            ports = _server_ports(vs, rs)
            for port in ports["set"] if isinstance(ports, dict) else [ports]:
                key = {"concat": [proto, vip, address, port]}
                if json.dumps(key) in keys:
                    # another service of the same VIP reaches the same server port: the
                    # first one counts it (nft refuses a key twice)
                    continue
                keys.add(json.dumps(key))
                to_server.append([key, traffic])
                from_server.append([key, reply])
            if one_armed:
                # Matched on the packets' own (translated) headers: the server's address and
                # the ports it listens on, plus conntrack's memory of the VIP they were sent to.
                to_this_server = [
                    match(payload(family, "daddr"), address),
                    match(payload(proto, "dport"), _server_ports(vs, rs)),
                    *from_vip,
                ]
                table.rule("postrouting", *to_this_server, snat)
        counters[vs.name] = found
    # protocol . the VIP (conntrack's original destination) . the server's address . port
    key_type = ["inet_proto", address_type, address_type, "inet_service"]
    vip_side: list[Json] = [
        {"meta": {"key": "l4proto"}},
        # "ip daddr": the family inside the key, as nft -j lists it; the "family" member
        # is not enough inside a concatenation ("specify either ip or ip6")
        {"ct": {"key": f"{family} daddr", "dir": "original"}},
    ]
    dnatted = match({"ct": {"key": "status"}}, "dnat", op="in")
    for name, elements, side in (
        ("count/to_server", to_server, ("daddr", "dport")),
        ("count/from_server", from_server, ("saddr", "sport")),
    ):
        table.map(name, key_type, "counter", elements, flags=["interval"])
        key = {"concat": [*vip_side, payload(family, side[0]), payload("th", side[1])]}
        table.rule("traffic", dnatted, {"counter": {"map": {"key": key, "data": f"@{name}"}}})
    return table, counters


def _dsr_table(
    services: Sequence[_Service], env: Environment
) -> tuple[TableCommands, _CountersByService]:
    table = TableCommands("netdev")
    counters: _CountersByService = {}
    interfaces = sorted({service.vs.interface or env.interface for service in services})
    for interface in interfaces:
        table.chain(
            f"ingress/{interface}",
            type="filter",
            hook="ingress",
            dev=interface,
            prio=PRIORITY_INGRESS,
            policy="accept",
        )
    for service in services:
        vs = service.vs
        served = counter_name(vs, None, "in")
        table.counter(served)
        chain = f"ingress/{vs.interface or env.interface}"
        table.rule(chain, *_dispatchmatch(service), {"counter": served}, goto(vs_chain(vs)))
        found = {served: ("", "in")}
        found.update(_service_rules(table, service, env))
        counters[vs.name] = found
    return table, counters


def build_ruleset(config: Configuration, inputs: L4Inputs) -> Ruleset:
    """The whole transaction for the L4 services of ``config``; raise ViewError when it cannot."""
    services = [_decide(vs, inputs) for vs in l4_services(config)]
    commands: list[Json] = []
    maps: dict[MapRef, tuple[Any, ...]] = {}
    prelude: dict[MapRef, str] = {}
    views: dict[str, ServiceView] = {}
    kept: list[str] = []
    for family in ("ip", "ip6", "netdev"):
        mine = [s for s in services if s.table == family]
        ref = {"family": family, "name": TABLE}
        if not mine:
            # add + delete: removes the table if an earlier apply made it, and never fails
            commands += [{"add": {"table": ref}}, {"delete": {"table": ref}}]
            continue
        if family == "netdev":
            table, counters = _dsr_table(mine, inputs.environment)
        else:
            table, counters = _nat_table(family, mine, inputs)
        commands += table.commands()
        maps.update({(family, name): tuple(elements) for name, elements in table.maps.items()})
        prelude.update({(family, name): text for name, text in table.typeof_maps.items()})
        kept.append(family)
        for service in mine:
            views[service.vs.name] = ServiceView(
                name=service.vs.name,
                family=service.family,
                forwarding=service.vs.forwarding,
                table=family,
                selection=service.selection,
                weights=dict(service.weights),
                excluded=dict(service.excluded),
                counters=counters[service.vs.name],
            )
    return Ruleset(
        structure=tuple(commands), maps=maps, prelude=prelude, services=views, tables=tuple(kept)
    )


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


def prelude(ruleset: Ruleset, listing: Json) -> str | None:
    """nft text that creates the tables and the integer-keyed maps (``TableCommands.
    integer_map``) that ``listing`` does not show yet, or None when they all exist.

    Running it first is harmless: it only adds empty tables and maps that no rule uses yet.
    """
    existing = {
        (body["family"], body["name"])
        for item in _listed(listing)
        for kind, body in item.items()
        if kind == "map" and body.get("table") == TABLE
    }
    missing = [(ref, text) for ref, text in ruleset.prelude.items() if ref not in existing]
    if not missing:
        return None
    families = sorted({family for (family, _), _ in missing})
    lines = [f"add table {family} {TABLE}" for family in families]
    lines += [text for _, text in missing]
    return "\n".join(lines) + "\n"


def transaction(ruleset: Ruleset, listing: Json) -> Json:
    """The ``nft -j -f`` input that brings the running tables, as ``listing`` shows them, to
    ``ruleset``.

    ``listing`` is ``nft -j list table <family> bascule`` output for our tables (empty when
    there are none). Two differences from ``ruleset.document()``:

    - a persistence set that exists already is not declared again: nft 1.0.6's JSON cannot
      spell the ``dynamic`` flag that the set acquired from its ``update`` rules, so the
      kernel would refuse the declaration as a different set (EEXIST); keeping it keeps its
      clients too;
    - objects of our tables that the ruleset no longer declares are deleted at the end (the
      flush has emptied every chain by then, so nothing refers to them); chains before sets.
    """
    existing = {
        (body["family"], kind, body["name"])
        for item in _listed(listing)
        for kind, body in item.items()
        if kind in _PRUNE_ORDER and body.get("table") == TABLE
    }
    commands = [
        command
        for command in ruleset.commands
        if not (
            "set" in command.get("add", {}) and _identity("set", command["add"]["set"]) in existing
        )
    ]
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


# Maps first: their elements may name stale chains and counters (rules are flushed already).
_PRUNE_ORDER = {"map": 0, "chain": 1, "set": 2, "counter": 3}


def _identity(kind: str, body: Json) -> tuple[str, str, str]:
    return (body["family"], kind, body["name"])


def _listed(listing: Json) -> Iterable[Json]:
    items = listing.get("nftables", [])
    return [item for item in items if isinstance(item, dict)]
