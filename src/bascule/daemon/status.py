"""Status as the API and the WUI report it, built from the document and the engine's view.

Pure: takes the running configuration, the engine's observation and the last apply outcome,
returns a StatusReport. The control plane's status (``apply_error``) and the data plane's
(``up``/``down``...) are kept apart as DESIGN.md asks.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Mapping
from typing import Any, TypedDict

from bascule.daemon.results import RealServerStatus, StatusReport, VirtualServiceStatus
from bascule.engines.base import (
    EngineObservation,
    Health,
    ServerObservation,
    ServiceObservation,
)
from bascule.model import Configuration, RealServer, RealServerState, VirtualService
from bascule.model.sub_service import POOL_SEPARATOR, pool_name
from bascule.reconcile.planner import ServerRef, WeightOverride
from bascule.reconcile.status import ServerStatus, ServiceStatus

#: The networks of the load balancer's own addresses (``ip -j address show``): a real server
#: in one of them is reached directly, without a router between (``Subnets`` reads them).
ConnectedNetworks = frozenset[ipaddress.IPv4Network | ipaddress.IPv6Network]

# What a critical real server may be without taking its service down: HAProxy's srv_is_up
# (the critical rule, see engines/haproxy/view.py) is true for a drained server whose checks
# pass, so draining a critical server keeps the service up.
_CRITICAL_OK = frozenset({ServerStatus.up, ServerStatus.unchecked, ServerStatus.drain})


class _Counters(TypedDict):
    """The counters a status carries, as the engine observed them."""

    current_connections: int
    total_connections: int
    bytes_in: int
    bytes_out: int
    packets: int
    total_requests: int


def _counters(seen: ServerObservation | ServiceObservation | None) -> _Counters:
    """The counters of a real server or a service; all 0 when the engine did not see it."""
    seen = seen or ServiceObservation()
    return _Counters(
        current_connections=seen.current_connections,
        total_connections=seen.total_connections,
        bytes_in=seen.bytes_in,
        bytes_out=seen.bytes_out,
        packets=seen.packets,
        total_requests=seen.total_requests,
    )


def build_status(
    config: Configuration,
    observation: EngineObservation,
    *,
    revision: int | None,
    applied_revision: int | None,
    apply_ok: bool,
    apply_message: str,
    engine: dict[str, Any],
    overrides: Mapping[ServerRef, WeightOverride] | None = None,
    connected: ConnectedNetworks = frozenset(),
    rows: ServiceRows | None = None,
) -> StatusReport:
    """``overrides``: the weights dynamic schedulers decided, shown with their reasons;
    ``connected``: the networks of the load balancer's addresses (for ``route_back_warning``);
    ``rows``: the rows of the reports before, reused for every service whose inputs are the
    same objects as then."""
    rows = rows if rows is not None else ServiceRows()
    overrides = overrides or {}
    by_service: dict[str, list[tuple[ServerRef, WeightOverride]]] = {}
    for ref, override in overrides.items():
        by_service.setdefault(ref[0].split(POOL_SEPARATOR, 1)[0], []).append((ref, override))
    services = tuple(
        rows.row(
            vs,
            observation,
            apply_ok=apply_ok,
            apply_message=apply_message,
            overrides=tuple(by_service.get(vs.name, ())),
            connected=connected,
        )
        for vs in config.virtual_services
    )
    rows.keep({vs.name for vs in config.virtual_services})
    return StatusReport(
        revision=revision,
        applied_revision=applied_revision,
        apply_ok=apply_ok,
        apply_message=apply_message,
        engine=engine,
        virtual_services=services,
    )


class ServiceRows:
    """The status row of each virtual service as last built, with what it was built from.

    At 1,000 x 10 a report is 11,000 rows and its building most of ``GET /status`` after a
    change or a new reading (issue 15); a weight or state change (the operate path) shares
    every untouched service's model object with the revision before, and most services read
    the same from one reading to the next (no traffic, no check result moved), so a row is
    built again only when its service object, what the engines observed of it (``observed``),
    the apply outcome, the service's weight overrides or the connected networks are not the
    ones it was built from. A row kept is the same object, so its JSON is kept too
    (api/routes/status.py).
    """

    def __init__(self) -> None:
        # per service: (its model object, the reading, what it observed of the service, the
        # other inputs), the row
        self._rows: dict[str, tuple[tuple[Any, ...], VirtualServiceStatus]] = {}
        self._lock = threading.Lock()  # reports are built in worker threads

    def row(
        self,
        vs: VirtualService,
        observation: EngineObservation,
        *,
        apply_ok: bool,
        apply_message: str,
        overrides: tuple[tuple[ServerRef, WeightOverride], ...],
        connected: ConnectedNetworks,
    ) -> VirtualServiceStatus:
        with self._lock:
            made = self._rows.get(vs.name)
        inputs = (apply_ok, apply_message, overrides, connected)
        seen = None
        if made is not None:
            (was_vs, was_observation, was_seen, *was_inputs), status = made
            if was_vs is vs and tuple(was_inputs) == inputs:
                if was_observation is observation:
                    return status  # (a report after a change: the same reading)
                seen = observed(vs, observation)
                if seen == was_seen:
                    # kept with the new reading's objects, so the old reading's can go
                    with self._lock:
                        self._rows[vs.name] = ((vs, observation, seen, *inputs), status)
                    return status
        status = _service_status(
            vs,
            observation,
            apply_ok=apply_ok,
            apply_message=apply_message,
            overrides=dict(overrides),
            connected=connected,
        )
        if seen is None:
            seen = observed(vs, observation)
        with self._lock:
            self._rows[vs.name] = ((vs, observation, seen, *inputs), status)
        return status

    def keep(self, names: set[str]) -> None:
        """Forget the rows of services that are gone."""
        with self._lock:
            for name in self._rows.keys() - names:
                del self._rows[name]


def observed(vs: VirtualService, observation: EngineObservation) -> tuple[Any, ...]:
    """What ``observation`` says of ``vs`` and its sub-services, all a row reads of it: equal
    from one reading to the next while nothing moved (10,000 real servers compared in ~20 ms,
    a row built in ~30 us each)."""
    pools = (
        (vs.name, vs.real_servers),
        *((pool_name(vs.name, sub.name), sub.real_servers) for sub in vs.sub_services),
    )
    return (
        observation.running,
        observation.detail,
        *(
            (
                observation.services.get(name),
                *(observation.servers.get((name, rs.key)) for rs in servers),
            )
            for name, servers in pools
        ),
    )


def _service_status(
    vs: VirtualService,
    observation: EngineObservation,
    *,
    apply_ok: bool,
    apply_message: str,
    overrides: Mapping[ServerRef, WeightOverride],
    connected: ConnectedNetworks,
) -> VirtualServiceStatus:
    servers = tuple(
        _server_status(
            vs,
            rs,
            observation.servers.get((vs.name, rs.key)),
            overrides.get((vs.name, rs.key)),
            connected,
        )
        for rs in vs.real_servers
    )
    up = sum(1 for s in servers if s.status is ServerStatus.up)
    status, message = _service_verdict(vs, servers, observation)
    if not apply_ok:
        status, message = ServiceStatus.apply_error, apply_message
    return VirtualServiceStatus(
        name=vs.name,
        address=vs.address,
        address6=vs.address6,
        ports=",".join(str(r) for r in vs.port_ranges),
        protocol=vs.protocol.value,
        type=vs.type.value,
        mode=vs.mode.value,
        scheduler=vs.scheduler.value,
        status=status,
        message=message,
        up=up,
        total=len(servers),
        real_servers=servers,
        sub_services=tuple(
            _service_status(
                pool,
                observation,
                apply_ok=apply_ok,
                apply_message=apply_message,
                overrides=overrides,
                connected=connected,
            )
            for pool in vs.pools[1:]
        ),
        **_counters(observation.services.get(vs.name)),
    )


def _service_verdict(
    vs: VirtualService, servers: tuple[RealServerStatus, ...], observation: EngineObservation
) -> tuple[ServiceStatus, str]:
    if not vs.enabled:
        return ServiceStatus.disabled, "the virtual service is disabled"
    if not observation.running:
        return ServiceStatus.down, observation.detail or "the engine is not running"
    for status in servers:
        if status.critical and status.status not in _CRITICAL_OK:
            return ServiceStatus.down, f"critical real server {status.key} is {status.status}"
    serving = [s for s in servers if s.state is RealServerState.enabled]
    if not serving:
        return ServiceStatus.down, "no enabled real server"
    if not vs.checked:
        return ServiceStatus.unchecked, "no health check"
    healthy = [s for s in serving if s.status is ServerStatus.up]
    if len(healthy) == len(serving):
        return ServiceStatus.up, ""
    if healthy:
        down = len(serving) - len(healthy)
        return ServiceStatus.degraded, f"{down} of {len(serving)} real servers down"
    if vs.not_available is not None:
        return ServiceStatus.sorry, "no real server is up: not_available answers"
    return ServiceStatus.down, "no real server is up"


def _server_status(
    vs: VirtualService,
    rs: RealServer,
    seen: ServerObservation | None,
    override: WeightOverride | None = None,
    connected: ConnectedNetworks = frozenset(),
) -> RealServerStatus:
    status = _server_verdict(vs, rs, seen)
    if override is not None and override.out and rs.state is RealServerState.enabled:
        status = override.out  # the agent took it out (101 down, 102 disabled)
    return RealServerStatus(
        key=rs.key,
        address=rs.address,
        port=rs.port,
        weight=rs.weight,
        engine_weight=seen.weight if seen else None,
        state=rs.state,
        status=status,
        check_result=seen.check_result if seen else None,
        check_code=seen.check_code if seen else None,
        check_duration_ms=seen.check_duration_ms if seen else None,
        check_detail=seen.check_detail if seen else None,
        critical=rs.critical,
        effective_weight=override.weight if override else None,
        weight_reason=override.reason if override else None,
        warning=transparency_warning(vs, status, seen)
        or route_back_warning(vs, rs, seen, connected),
        **_counters(seen),
    )


def transparency_warning(
    vs: VirtualService, status: ServerStatus, seen: ServerObservation | None
) -> str | None:
    """A transparent (TPROXY) service's server whose checks pass (they come from the load
    balancer's own address) while the connections HAProxy opens from the clients' addresses
    fail: its replies to those addresses do not come back through the load balancer. Said
    when at least half of its connection attempts failed (HAProxy's ``econ`` and ``wretr``
    against ``stot``)."""
    if not vs.transparent or seen is None or status is not ServerStatus.up:
        return None
    failed, total = seen.connection_errors, max(seen.total_connections, 1)
    if failed == 0 or failed * 2 < total:
        return None
    return (
        f"transparent: {failed} of {max(seen.total_connections, failed)} connection attempts from "
        "the clients' addresses failed while the checks (from the load balancer's address) "
        "pass: this real server does not route its replies back through the load balancer; "
        "make the load balancer its gateway to the clients, or set transparent: false"
    )


def route_back_warning(
    vs: VirtualService,
    rs: RealServer,
    seen: ServerObservation | None,
    connected: ConnectedNetworks,
) -> str | None:
    """A transparent service's real server on a network the load balancer is directly
    connected to: its replies to the clients' own addresses go to its default gateway, so
    that gateway must be the load balancer, or the clients' connections hang. Said until the
    traffic shows it routes back (connections from the clients' addresses opened, at most a
    few failed: ``transparency_warning``'s counters)."""
    if not vs.transparent:
        return None
    address = ipaddress.ip_address(rs.address)
    network = next((n for n in connected if n.prefixlen < n.max_prefixlen and address in n), None)
    if network is None:
        return None
    routes_back = seen is not None and seen.connection_errors * 2 < seen.total_connections
    if routes_back:
        return None  # connections from the clients' addresses work
    return (
        f"transparent: {rs.address} is on {network}, a network the load balancer is directly "
        "connected to: its default route must point back through the load balancer (clients "
        "on that network itself cannot be served transparently), or set transparent: false"
    )


def _server_verdict(
    vs: VirtualService, rs: RealServer, seen: ServerObservation | None
) -> ServerStatus:
    if rs.state is RealServerState.disabled:
        return ServerStatus.disabled
    if seen is None:
        return ServerStatus.down if vs.enabled else ServerStatus.disabled
    if not vs.checked:
        return ServerStatus.drain if rs.state is RealServerState.drain else ServerStatus.unchecked
    if seen.health is Health.down:
        return ServerStatus.down
    if rs.state is RealServerState.drain:
        return ServerStatus.drain
    if seen.health in {Health.up, Health.drain}:
        return ServerStatus.up
    if seen.health is Health.unchecked:
        return ServerStatus.unchecked
    # The engine holds the server in maintenance although the document enables it (drift
    # the reconciler is about to repair): it takes no traffic.
    return ServerStatus.down
