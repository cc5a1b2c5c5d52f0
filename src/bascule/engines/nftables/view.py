"""Model + health + facts of the machine -> what the L4 tables hold for each service, decided.

Where this sits in the flow of a change: the nftables engine hands a validated
``Configuration`` here together with the health of every real server, the least-connection
weights and the facts of the machine that are not in the model (``Environment``: the MAC
addresses of DSR real servers, the load balancer's own MAC and source address). ``decide``
says, for each enabled ``mode: l4`` service, which table holds it, how it selects
(``scheduling.py``), which real servers get chains and which are in the maps with what weight;
``rules.py`` spells those decisions as the nft ruleset and ``transaction.py`` brings the running
tables to it. Nothing here does I/O, reads settings or the clock.

Left out of the maps: a real server that is drained, disabled, down, standing by (the
fixed_weighting family), without a known MAC (DSR) or that the tables cannot hold (another
address family, a DSR port change) is in ``ServiceDecision.excluded`` with an ``Exclusion``;
the text a person reads is the member's value, taken at the edge (status, ``bascule status``).

A NAT service's sorry server (``not_available.sorry_server``) is a member whose chain is always
there; it is in the maps, alone, only while no real server is (``ServiceDecision.sorry``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from bascule.engines.nftables.maglev import DEFAULT_TABLE_SIZE
from bascule.engines.nftables.nft import family_of
from bascule.engines.nftables.scheduling import (
    ROUND_ROBIN_SLOTS,
    Selection,
    effective_weights,
    selection_of,
)
from bascule.model import (
    Configuration,
    Forwarding,
    Mode,
    PersistenceMethod,
    RealServer,
    RealServerState,
    VirtualService,
)


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
    """Facts of the machine that are not in the model, found by the engine (``machine.py``).

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
    """Everything ``decide`` (and ``rules.build_ruleset``) needs besides the model.

    ``health``: (virtual service name, real server key) -> up; a pair that is missing counts
    as up (an unchecked server). ``weights``: (vs, rs key) -> weight overriding the model's
    for the least connection family (the daemon turns conntrack counts into these).
    The NAT topology is the model's: ``subnet_originating`` means one-armed (``nat_topology``).
    """

    environment: Environment = field(default_factory=Environment)
    health: Mapping[tuple[str, str], bool] = field(default_factory=dict)
    weights: Mapping[tuple[str, str], int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ServiceDecision:
    """What the tables hold for one VIP of an L4 service: where, how it selects, and whom.

    ``vs`` is the service as that VIP sees it: a single-stack service itself; for a
    dual-stack one (``address6``), one decision per VIP, the second named ``<name>.v6``
    (``halves``), so that every nft object of its IPv6 VIP has a name of its own, even in
    the one netdev table DSR uses for both families. ``service`` is the document's name,
    under which health, weights and the status are kept.
    """

    vs: VirtualService
    service: str
    family: str  # "ip" | "ip6": the VIP's
    table: str  # "ip" | "ip6" | "netdev": the family of the table holding it
    selection: Selection
    sticky: bool  # source_ip persistence: a persistence set per real server
    members: tuple[RealServer, ...]  # with chains and counters: all but structural misfits
    live: tuple[RealServer, ...]  # in the maps, in document order
    weights: Mapping[str, int]  # rs key -> weight in the scheduling table (live servers)
    excluded: Mapping[str, Exclusion]  # rs key -> why it is not in the maps
    # not_available.sorry_server as a member (NAT): live alone while no real server is
    sorry: RealServer | None = None


def l4_services(
    config: Configuration, forwarding: Forwarding | None = None
) -> tuple[VirtualService, ...]:
    """The enabled ``mode: l4`` services (of one ``forwarding`` if given), in document order."""
    return tuple(
        vs
        for vs in config.virtual_services
        if vs.mode is Mode.l4 and vs.enabled and forwarding in {None, vs.forwarding}
    )


#: The suffix of the nft names of a dual-stack service's IPv6 VIP (model names have no '.').
IPV6_HALF = ".v6"


def halves(vs: VirtualService) -> tuple[VirtualService, ...]:
    """The service once per VIP: itself when single-stack; for a dual-stack service, its
    IPv4 VIP under its own name and its IPv6 VIP as ``<name>.v6``."""
    if vs.address6 is None:
        return (vs,)
    return (
        vs.model_copy(update={"address6": None}),
        vs.model_copy(
            update={"name": vs.name + IPV6_HALF, "address": vs.address6, "address6": None}
        ),
    )


def decide(config: Configuration, inputs: L4Inputs) -> tuple[ServiceDecision, ...]:
    """The decision for every VIP of every enabled l4 service of ``config``; raise ViewError
    when one cannot be expressed in the kernel."""
    return tuple(
        _decide(half, vs.name, inputs) for vs in l4_services(config) for half in halves(vs)
    )


def _decide(vs: VirtualService, service: str, inputs: L4Inputs) -> ServiceDecision:
    sticky = STICKY.get(vs.persistence.method)
    if sticky is None:
        raise ViewError(
            f"{vs.name}: persistence {vs.persistence.method.value} needs L7; an l4 service "
            f"offers {' or '.join(method.value for method in STICKY)}"
        )
    selection = selection_of(vs)
    if selection is None:
        raise ViewError(f"{vs.name}: scheduler {vs.scheduler.value} needs L7")
    family = family_of(vs.address)
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
        reason = _exclusion(service, rs, inputs)
        if reason is None and vs.forwarding is Forwarding.dsr and rs.address not in env.server_macs:
            reason = Exclusion.no_mac
        if reason is None:
            candidates.append(rs)
        else:
            excluded[rs.key] = reason
    if vs.forwarding is Forwarding.dsr and members and env.lb_mac is None:
        raise ViewError(f"{vs.name}: DSR needs the load balancer's MAC address")
    weights = effective_weights(vs, selection, candidates, inputs.weights, service=service)
    live = tuple(rs for rs in candidates if rs.key in weights)
    for rs in candidates:
        if rs.key not in weights:
            excluded[rs.key] = Exclusion.standby
    sorry = sorry_server(vs)
    if sorry is not None:
        members.append(sorry)
        if not live:
            live, weights = (sorry,), {sorry.key: 1}
    return ServiceDecision(
        vs=vs,
        service=service,
        family=family,
        table="netdev" if vs.forwarding is Forwarding.dsr else family,
        selection=selection,
        sticky=sticky,
        members=tuple(members),
        live=live,
        weights=weights,
        excluded=excluded,
        sorry=sorry,
    )


def sorry_server(vs: VirtualService) -> RealServer | None:
    """The service's sorry server as a real server of its tables (unchecked, never in the
    document's list), or None."""
    available = vs.not_available
    if available is None or available.sorry_server is None:
        return None
    sorry = available.sorry_server
    return RealServer(address=sorry.address, port=sorry.port)


def _misfit(vs: VirtualService, rs: RealServer, family: str) -> Exclusion | None:
    """Why the document itself keeps a server out of the tables (no chain at all).

    NAT rewrites the destination address, which must be of the VIP's family (the kernel does
    no NAT between families): a dual-stack NAT service sends each VIP's clients to the real
    servers of its family. DSR rewrites only MACs: a real server holding both VIPs serves
    both families whatever the address it is checked and reached on.
    """
    if vs.forwarding is Forwarding.nat and family_of(rs.address) != family:
        return Exclusion.other_family
    if vs.forwarding is Forwarding.dsr and rs.port != vs.port:
        return Exclusion.dsr_port
    return None


def _exclusion(service: str, rs: RealServer, inputs: L4Inputs) -> Exclusion | None:
    """Why a server with chains is out of the maps for now (state or health)."""
    if rs.state is not RealServerState.enabled:
        # Drain: conntrack keeps existing NAT connections on it; new ones go elsewhere.
        return _STATE_EXCLUSIONS[rs.state]
    if not inputs.health.get((service, rs.key), True):
        return Exclusion.down
    return None
