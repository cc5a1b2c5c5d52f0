"""One L4 VIP's chains: the service chain and each member's, with their maps and counters.

Where this sits in the flow of a change: ``rules.py`` builds each table of the ruleset; for
each VIP it calls ``service_rules`` here (a NAT VIP's one-armed source NAT is ``rules.py``'s).
The service chain (``vs/…``) sends a persistent client back to its server while it is live
(the ``pin/…`` maps, looked up by the masked source address in the ``persist/…`` sets), then
schedules (``slot_tables.selector``); each member's chain (``rs/…``) forgets the client's
other servers, counts, and DNATs (NAT) or rewrites the MACs from its ``mac/…`` map and
forwards (DSR). Every member gets its chain whether it is live or not, so a change of state,
health or MAC changes map elements only (``service_maps``: what a build whose structure runs
still computes). A member built from the same key as in the ruleset that runs is reused
(``fragments.MemberFragment``). Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from bascule.engines.nftables.fragments import MemberFragment, Reuse
from bascule.engines.nftables.nft import (
    TABLE,
    Json,
    TableCommands,
    counter_name,
    goto,
    mac_map,
    match,
    payload,
    persistence_set,
    pin_map,
    rs_chain,
    vs_chain,
)
from bascule.engines.nftables.slot_tables import selector, selector_map
from bascule.engines.nftables.view import Environment, Exclusion, ServiceDecision
from bascule.model import Forwarding, RealServer, RealServerState, VirtualService


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


CounterRefs = dict[str, tuple[str, str]]  # counter name -> (rs key or "", kind)


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


def service_maps(
    service: ServiceDecision, env: Environment, tables: Reuse
) -> dict[str, tuple[Any, ...]]:
    """The elements of every map of the service, in the order ``service_rules`` declares
    them: what a build whose structure runs already (``ServiceFragment``) still computes."""
    vs = service.vs
    maps: dict[str, tuple[Any, ...]] = {}
    if service.sticky:
        live = {rs.key for rs in service.live}
        for rs in _pinned(service):
            maps[pin_map(vs, rs)] = _pin_elements(service, rs, live)
    name, elements = selector_map(service, env, tables)
    maps[name] = elements
    if vs.forwarding is Forwarding.dsr:
        for rs in service.members:
            maps[mac_map(vs, rs)] = _mac_elements(service, rs, env)
    return maps


def service_rules(
    table: TableCommands, service: ServiceDecision, env: Environment, tables: Reuse
) -> CounterRefs:
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
    table.rule(chain, *selector(table, service, env, tables))
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
    tables: Reuse,
) -> CounterRefs:
    """Add one member's declarations, chain and rules to ``table``: those built for the
    ruleset that runs when built from the same key (``MemberFragment``), else built now;
    return its counters. A DSR member's MAC map elements are computed either way.
    ``reachable``: the servers whose persistence sets its rules forget the client from,
    and their keys (none without persistence)."""
    sorry = rs is service.sorry
    key = (structural(rs), sorry, () if sorry else reachable[1])
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
) -> CounterRefs:
    """Declare one member's counters (and DSR MAC map), its chain and rules; ``reachable``:
    the servers whose persistence sets its rules forget the client from (none without
    persistence). Return its counters."""
    vs = service.vs
    proto = vs.protocol.value
    counters: CounterRefs = {}
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


def structural(rs: RealServer) -> RealServer:
    """``rs`` as its rules see it: without its weight and state (the maps' business)."""
    if rs.weight == 1 and rs.state is RealServerState.enabled:
        return rs
    return rs.model_copy(update={"weight": 1, "state": RealServerState.enabled})
