"""Access lists in the kernel: the document's filtering -> the nft JSON of ``inet bascule_filter``.

Where this sits in the flow of a change: the filter engine (``filter.py``) takes its share of a
validated document (``share``: the lists in use, ``block``, and each service's VIPs, ports and
``access``; no real servers, so nothing else reloads it) and hands it here with the device of
each DSR service; ``build_filter`` decides every rule and ``set_update`` says when a change
is only the lists' contents. Pure: no I/O, no settings, no clock.

The table, one for both address families (``inet``) and for l4 and l7 services alike::

    table inet bascule_filter
      set acl4/NAME, acl6/NAME              one interval set per list and family
      counter dropped/NAME                  packets dropped because of list NAME
      counter denied/SERVICE                packets dropped for being in no allowed list
      chain prerouting   filter, prerouting, priority -300 (raw: before conntrack, NAT and
                         the proxy's socket)
                         ip daddr VIP tcp dport PORTS goto svc/SERVICE     (nat and l7)
                         ip daddr {every VIP} ip saddr @acl4/BLOCKED drop  (other ports, ICMP)
      chain ingress/DEV  filter, ingress DEV, priority -510 (before the DSR chain, -500)
                         ip daddr VIP tcp dport PORTS goto svc/SERVICE     (dsr)
      chain svc/SERVICE  ip saddr @acl4/BLOCKED drop; ip saddr @acl4/DENIED drop;
                         ip saddr @acl4/ALLOWED accept; drop   (allow empty: accept)

Structure and data, as in ``rules.py``: the rules depend on which lists are used where, the
services' VIPs and ports and the DSR devices; a list's entries are its sets' elements only. So
a change of a list's entries is ``set_update``: the changed sets flushed and refilled in one
transaction, no rule touched (rule handles and counters stay). Any other change replaces the
table in one transaction (counters start again from zero).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bascule.engines.nftables.nft import Json, match, payload
from bascule.engines.nftables.rules import PRIORITY_INGRESS
from bascule.model import Configuration, Forwarding, Mode, VirtualService
from bascule.model.document import constructed
from bascule.model.filtering import used_lists

FAMILY = "inet"
TABLE = "bascule_filter"
# nft(8) "CHAINS": raw is -300, before conntrack (-200), dstnat (-100) and the local socket.
PRIORITY_PREROUTING = -300
# Before the DSR chain of the netdev table, which forwards the frame out at once.
PRIORITY_INGRESS_FILTER = PRIORITY_INGRESS - 10
# The limits of l4 NAT services count connections: after conntrack (-200), before the DNAT
# of the L4 table (dstnat, -100), where the destination is still the VIP.
PRIORITY_LIMITS = -150
# How long a client's rate meter outlives its last new connection.
METER_TIMEOUT_S = 60
METER_SIZE = 65535
#: How long a client a per-client meter dropped stays in ``held4/<service>`` (``limited`` in
#: ``bascule limits show``), from its last drop.
HELD_TIMEOUT_S = 10

_ADDRESS_FAMILY = {4: "ip", 6: "ip6"}
_KEY_TYPE = {4: "ipv4_addr", 6: "ipv6_addr"}


def set_name(list_name: str, version: int) -> str:
    """``acl4/office``: one interval set per list and address family."""
    return f"acl{version}/{list_name}"


def dropped_counter(list_name: str) -> str:
    return f"dropped/{list_name}"


def denied_counter(service: str) -> str:
    return f"denied/{service}"


def service_chain(service: str) -> str:
    return f"svc/{service}"


def limits_chain(service: str) -> str:
    return f"limits/{service}"


def limited_counter(service: str) -> str:
    return f"limited/{service}"


def meter_name(service: str, what: str, version: int) -> str:
    """``rate4/fast``: a dynamic set of one service's clients (``rate``: new connections per
    second, ``conns``: connections open, ``held``: those a meter dropped lately), per address
    family."""
    return f"{what}{version}/{service}"


def kernel_limited(vs: VirtualService) -> bool:
    """Whether the kernel limits the service: an l4 NAT one with limits (l7 services'
    limits are HAProxy's; the model refuses them on DSR)."""
    return vs.limits is not None and vs.mode is Mode.l4 and not is_dsr(vs)


def filters(config: Configuration) -> bool:
    """Whether the document filters anything: a global block, a service's access, or the
    limits of an l4 service."""
    return bool(config.block) or any(
        (vs.access is not None and vs.access.filters) or kernel_limited(vs)
        for vs in config.virtual_services
    )


def filter_lists(config: Configuration) -> tuple[str, ...]:
    """The lists the filter table holds: those in use for access, and the exempt lists of
    the services it limits."""
    names = set(used_lists(config))
    for vs in config.virtual_services:
        if kernel_limited(vs) and vs.limits is not None:
            names.update(vs.limits.exempt)
    return tuple(sorted(names))


def share(config: Configuration) -> Configuration:
    """What the filter runs of a document: the lists in use, ``block``, and each enabled
    service's VIPs, protocol, ports, forwarding, interface and ``access`` (nothing of its real
    servers, checks or rules: their changes are not the filter's). Empty when the document
    filters nothing."""
    if not filters(config):
        return constructed(Configuration, virtual_services=[])
    return constructed(
        Configuration,
        virtual_services=[
            constructed(
                VirtualService,
                name=vs.name,
                address=vs.address,
                address6=vs.address6,
                port=vs.port,
                extra_ports=vs.extra_ports,
                protocol=vs.protocol,
                mode=vs.mode,
                forwarding=vs.forwarding,
                interface=vs.interface,
                access=vs.access,
                limits=vs.limits if kernel_limited(vs) else None,
            )
            for vs in config.virtual_services
            if vs.enabled
        ],
        access_lists={name: config.access_lists[name] for name in filter_lists(config)},
        block=list(config.block),
    )


def is_dsr(vs: VirtualService) -> bool:
    """A DSR service's packets never reach prerouting: they are filtered at ingress."""
    return vs.mode is Mode.l4 and vs.forwarding is Forwarding.dsr


@dataclass(frozen=True, kw_only=True)
class FilterRuleset:
    """The filter table, decided: its structure, each set's elements, and its counters.

    ``structure``: the table, sets, counters, chains and rules (no element); ``sets``: set
    name -> elements; ``counters``: counter name -> ("list" | "service", the list's or
    the service's name)."""

    structure: tuple[Json, ...] = ()
    sets: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    counters: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.structure

    def transaction(self) -> Json:
        """The whole table in one transaction: removed (if there) and made again."""
        commands = [*removal()["nftables"], *self.structure]
        commands += [c for name, elements in self.sets.items() for c in _fill(name, elements)]
        return {"nftables": commands}


def _ref() -> Json:
    return {"family": FAMILY, "table": TABLE}


def removal() -> Json:
    """``add table`` + ``delete table``: gone, whether it was there or not."""
    ref = {"family": FAMILY, "name": TABLE}
    return {"nftables": [{"add": {"table": ref}}, {"delete": {"table": ref}}]}


def _fill(name: str, elements: Sequence[Any]) -> list[Json]:
    if not elements:
        return []
    return [{"add": {"element": {**_ref(), "name": name, "elem": list(elements)}}}]


def set_update(old: FilterRuleset, new: FilterRuleset) -> Json | None:
    """The transaction that refills the sets whose elements changed, when nothing else did
    (None: the structure differs, replace the table). An empty list of commands: nothing
    to do.

    Refilled, not patched: deleting and adding only the entries that changed was tried and
    measured against a 100,000-entry interval set, and cost the same or more (nft 1.0.6
    reads the whole interval set back from the kernel to change one element: ~1.2 s of CPU
    for one entry, ~0.8 s to flush and refill all of them)."""
    if old.empty or old.structure != new.structure:
        return None
    commands: list[Json] = []
    for name, elements in new.sets.items():
        if old.sets.get(name) == elements:
            continue
        commands.append({"flush": {"set": {**_ref(), "name": name}}})
        commands += _fill(name, elements)
    return {"nftables": commands}


def _element(entry: str) -> Any:
    """An entry as the model spells it (canonical): an address, or a prefix."""
    address, slash, length = entry.partition("/")
    if not slash:
        return address
    return {"prefix": {"addr": address, "len": int(length)}}


def _ports(vs: VirtualService) -> Any:
    items = [r.first if r.first == r.last else {"range": [r.first, r.last]} for r in vs.port_ranges]
    return items[0] if len(items) == 1 else {"set": items}


def _counter(name: str) -> Json:
    return {"counter": name}


class _Table:
    """The commands of the filter table, gathered in the order the transaction needs them."""

    def __init__(self) -> None:
        self.sets: list[Json] = []
        self.counters: list[Json] = []
        self.chains: list[Json] = []
        self.rules: list[Json] = []

    def chain(self, name: str, **hook: Any) -> None:
        self.chains.append({"add": {"chain": {**_ref(), "name": name, **hook}}})

    def rule(self, chain: str, *expr: Json) -> None:
        self.rules.append({"add": {"rule": {**_ref(), "chain": chain, "expr": list(expr)}}})

    def structure(self) -> tuple[Json, ...]:
        head = [{"add": {"table": {"family": FAMILY, "name": TABLE}}}]
        return (*head, *self.sets, *self.counters, *self.chains, *self.rules)


def _versions(vs: VirtualService) -> tuple[int, ...]:
    return tuple(ipaddress.ip_address(address).version for address in vs.addresses)


def _from_list(list_name: str, version: int) -> Json:
    return match(payload(_ADDRESS_FAMILY[version], "saddr"), f"@{set_name(list_name, version)}")


def _service_rules(table: _Table, vs: VirtualService, block: Sequence[str]) -> None:
    """The service's chain: the global block, its denied lists, then its allowed ones."""
    chain = service_chain(vs.name)
    table.chain(chain)
    access = vs.access
    deny = access.deny if access is not None else []
    allow = access.allow if access is not None else []
    versions = _versions(vs)
    for name in [*block, *deny]:
        for version in versions:
            table.rule(chain, _from_list(name, version), _counter(dropped_counter(name)), _drop())
    if not allow:
        return
    for name in allow:
        for version in versions:
            table.rule(chain, _from_list(name, version), {"accept": None})
    table.rule(chain, _counter(denied_counter(vs.name)), _drop())


def _limits_rules(table: _Table, vs: VirtualService) -> None:
    """The chain of a service's new connections: exempt clients out first, then each client's
    meters (so a flooding client is dropped before it spends the service's budget), then the
    service's own limits. Every drop counts in ``limited/<service>``."""
    limits = vs.limits
    assert limits is not None
    chain = limits_chain(vs.name)
    table.chain(chain)
    versions = _versions(vs)
    dropped = (_counter(limited_counter(vs.name)), _drop())
    for name in limits.exempt:
        for version in versions:
            table.rule(chain, _from_list(name, version), {"accept": None})
    per_client = limits.per_client
    meters: list[tuple[str, Json, bool]] = []
    if per_client is not None and per_client.connections_per_second is not None:
        rate = {"limit": {"rate": per_client.connections_per_second, "per": "second", "inv": True}}
        meters.append(("rate", rate, True))
    if per_client is not None and per_client.connections is not None:
        meters.append(("conns", {"ct count": {"val": per_client.connections, "inv": True}}, False))
    for version in versions if meters else ():
        # the clients a meter dropped lately, for `bascule limits show` (the meters keep no
        # state a listing shows: ct count's and limit's elements carry only their limit)
        held: Json = {
            **_ref(),
            "name": meter_name(vs.name, "held", version),
            "type": _KEY_TYPE[version],
            "size": METER_SIZE,
            "flags": ["timeout"],
            "timeout": HELD_TIMEOUT_S,
        }
        table.sets.append({"add": {"set": held}})
    for what, statement, expires in meters:
        for version in versions:
            name = meter_name(vs.name, what, version)
            body: Json = {**_ref(), "name": name, "type": _KEY_TYPE[version], "size": METER_SIZE}
            # no "dynamic" flag: nft sets it itself, the rule adding to the set (nft 1.0.6's
            # JSON refuses the flag by name)
            if expires:
                body["flags"] = ["timeout"]
                body["timeout"] = METER_TIMEOUT_S
            table.sets.append({"add": {"set": body}})
            client = payload(_ADDRESS_FAMILY[version], "saddr")
            meter = {"set": {"op": "add", "elem": client, "set": f"@{name}", "stmt": [statement]}}
            hold = {
                "set": {
                    "op": "update",
                    "elem": client,
                    "set": f"@{meter_name(vs.name, 'held', version)}",
                }
            }
            table.rule(chain, _family(version), meter, hold, *dropped)
    if limits.max_connections is not None:
        table.rule(chain, {"ct count": {"val": limits.max_connections, "inv": True}}, *dropped)
    if limits.connections_per_second is not None:
        rate = {"limit": {"rate": limits.connections_per_second, "per": "second", "inv": True}}
        table.rule(chain, rate, *dropped)


def _family(version: int) -> Json:
    return match({"meta": {"key": "nfproto"}}, "ipv4" if version == 4 else "ipv6")


def _drop() -> Json:
    return {"drop": None}


def _dispatch(vs: VirtualService) -> Iterator[list[Json]]:
    """The matches of each VIP of the service (one per address family)."""
    proto = vs.protocol.value
    for address in vs.addresses:
        vip = ipaddress.ip_address(address)
        family = _ADDRESS_FAMILY[vip.version]
        if vip.is_unspecified:  # listening on every address of the family
            first = match({"meta": {"key": "nfproto"}}, "ipv4" if vip.version == 4 else "ipv6")
        else:
            first = match(payload(family, "daddr"), str(vip))
        yield [first, match(payload(proto, "dport"), _ports(vs))]


def build_filter(config: Configuration, devices: Mapping[str, str]) -> FilterRuleset:
    """The filter table for ``config`` (the filter's share); ``devices``: DSR service name
    -> the device its clients' packets arrive on. An empty ruleset: the table goes away."""
    if not filters(config):
        return FilterRuleset()
    table = _Table()
    lists = filter_lists(config)
    sets: dict[str, tuple[Any, ...]] = {}
    counters: dict[str, tuple[str, str]] = {}
    for name in lists:
        for version, entries in config.access_lists[name].by_family().items():
            set_body = {
                **_ref(),
                "name": set_name(name, version),
                "type": _KEY_TYPE[version],
                "flags": ["interval"],
            }
            table.sets.append({"add": {"set": set_body}})
            sets[set_name(name, version)] = tuple(_element(entry) for entry in entries)
        table.counters.append({"add": {"counter": {**_ref(), "name": dropped_counter(name)}}})
        counters[dropped_counter(name)] = ("list", name)
    table.chain(
        "prerouting", type="filter", hook="prerouting", prio=PRIORITY_PREROUTING, policy="accept"
    )
    ingress: dict[str, list[VirtualService]] = {}
    for vs in config.virtual_services:
        if not (config.block or (vs.access is not None and vs.access.filters)):
            continue
        if vs.access is not None and vs.access.allow:
            table.counters.append({"add": {"counter": {**_ref(), "name": denied_counter(vs.name)}}})
            counters[denied_counter(vs.name)] = ("service", vs.name)
        _service_rules(table, vs, config.block)
        if is_dsr(vs):
            ingress.setdefault(devices[vs.name], []).append(vs)
            continue
        for matches in _dispatch(vs):
            table.rule("prerouting", *matches, {"goto": {"target": service_chain(vs.name)}})
    for version in (4, 6):
        # the block for every VIP, whatever the port or protocol (ICMP too); the services'
        # own ports went to their chains above
        vips = sorted(
            {
                str(ip)
                for vs in config.virtual_services
                for address in vs.addresses
                if (ip := ipaddress.ip_address(address)).version == version
                and not ip.is_unspecified
            }
        )
        if not vips or not config.block:
            continue
        family = _ADDRESS_FAMILY[version]
        to_vip = match(payload(family, "daddr"), vips[0] if len(vips) == 1 else {"set": vips})
        for name in config.block:
            table.rule(
                "prerouting",
                to_vip,
                _from_list(name, version),
                _counter(dropped_counter(name)),
                _drop(),
            )
    limited = [vs for vs in config.virtual_services if kernel_limited(vs)]
    if limited:
        table.chain(
            "limits", type="filter", hook="prerouting", prio=PRIORITY_LIMITS, policy="accept"
        )
    for vs in limited:
        table.counters.append({"add": {"counter": {**_ref(), "name": limited_counter(vs.name)}}})
        counters[limited_counter(vs.name)] = ("limited", vs.name)
        _limits_rules(table, vs)
        for matches in _dispatch(vs):
            new_flow = match({"ct": {"key": "state"}}, "new", op="in")
            table.rule("limits", *matches, new_flow, {"goto": {"target": limits_chain(vs.name)}})
    for device in sorted(ingress):
        chain = f"ingress/{device}"
        table.chain(
            chain,
            type="filter",
            hook="ingress",
            dev=device,
            prio=PRIORITY_INGRESS_FILTER,
            policy="accept",
        )
        for vs in ingress[device]:
            for matches in _dispatch(vs):
                table.rule(chain, *matches, {"goto": {"target": service_chain(vs.name)}})
    # chains before the rules that name them, rules in the order decided
    return FilterRuleset(structure=table.structure(), sets=sets, counters=counters)
