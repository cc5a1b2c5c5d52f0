"""What HAProxy reports, turned into the engine's observation: pure, no I/O.

The status & stats end of the flow of a change: the engine (engine.py) reads ``show servers
state`` and ``show stat`` through its shell and hands both texts here, with the index of the
running document's servers (``ServerIndex``, kept while that document runs); ``observed``
returns the ``EngineObservation`` the daemon reads, the servers HAProxy reports drained and
the caches' counters.

10,000 real servers are read every 10 s (issue 15): the rows are read one at a time and
written into the columns of ``ServerColumns`` (engines/base.py) at each server's position in
the index, so a reading keeps a few arrays, not 20,000 objects made among the temporaries of
the parse (docs/performance.md, section 17).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from bascule.engines.base import EngineObservation, Health, ServerColumns, ServiceObservation
from bascule.engines.haproxy import server_states, server_stats
from bascule.engines.haproxy.drains import ServerKey
from bascule.engines.haproxy.servers import server_name
from bascule.engines.haproxy.view import proxy_name
from bascule.model import Configuration, RealServerState
from bascule.reconcile.planner import ServerRef

_STATE_CODES = {state: code for code, state in enumerate(ServerColumns.STATES)}
_HEALTH_CODES = {health: code for code, health in enumerate(ServerColumns.HEALTHS)}


@dataclass(frozen=True, kw_only=True, slots=True)
class Backend:
    """One HAProxy backend of the running document: its pool's drain time, and its servers'
    positions by HAProxy's server name."""

    drain_time: int
    servers: dict[str, int]


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerIndex:
    """The running document's servers as HAProxy names them: each backend (``backends``),
    each server's position (``positions``, the reconciler's reference -> the same position),
    and the backends whose rows count a sub-service's cache (their pool's name)."""

    backends: dict[str, Backend]
    positions: dict[ServerRef, int]
    cached: dict[str, str]


def server_index(applied: Configuration) -> ServerIndex:
    """``applied``'s index. An IPv4 server's name is the interned ``RealServer.key`` it equals
    (HAProxy's name is the key's text): 10,000 servers held 2.8 MiB in flat maps by (backend,
    server) tuple, 1.4 in a dict per backend (docs/performance.md, section 14)."""
    backends: dict[str, Backend] = {}
    positions: dict[ServerRef, int] = {}
    for pool in applied.pools():  # each service, then its sub-services ("site/api")
        servers: dict[str, int] = {}
        for rs in pool.real_servers:
            key = rs.key
            name = server_name(rs)
            position = positions[(pool.name, key)] = len(positions)
            servers[key if name == key else name] = position
        backends[proxy_name(pool)] = Backend(drain_time=pool.drain_time, servers=servers)
    cached = {
        proxy_name(pool): pool.name
        for vs in applied.virtual_services
        for pool in vs.pools[1:]
        if pool.cache is not None
    }
    return ServerIndex(backends=backends, positions=positions, cached=cached)


@dataclass(frozen=True, kw_only=True, slots=True)
class Observed:
    """A reading of HAProxy: the observation, each server it holds drained (with its pool's
    drain time) and each service's cache counters (by service or sub-service name)."""

    observation: EngineObservation
    drained: dict[ServerKey, int]
    caches: dict[str, dict[str, Any]]


def observed(index: ServerIndex, servers_state: str, stat: str | None) -> Observed:
    """What ``show servers state`` (``servers_state``) and ``show stat`` (``stat``) say of
    ``index``'s servers. ``stat`` None: the runtime weights and states only (what planning
    needs; every server then ``unchecked``). A server is observed when both report it."""
    columns = ServerColumns(index.positions)
    drained: dict[ServerKey, int] = {}
    unchecked = _HEALTH_CODES[Health.unchecked]
    reported = bytearray(len(columns.health))  # 1: in ``show servers state``
    for state in server_states.iter_servers_state(servers_state):
        backend = index.backends.get(state.backend)
        position = backend.servers.get(state.server) if backend is not None else None
        if backend is None or position is None:
            continue
        admin = admin_state(state)
        columns.weight[position] = state.uweight
        columns.state[position] = _STATE_CODES[admin]
        reported[position] = 1
        if stat is None:
            columns.health[position] = unchecked
        if admin is RealServerState.drain:
            drained[(state.backend, state.server)] = backend.drain_time
    if stat is None:
        return Observed(
            observation=EngineObservation(running=True, servers=columns),
            drained=drained,
            caches={},
        )
    services: dict[str, ServiceObservation] = {}
    caches: dict[str, dict[str, Any]] = {}
    shared: dict[str, str] = {}  # one string per check result and detail, not one per row
    for row in server_stats.iter_show_stat(stat):
        pool_name = None
        if row.kind is server_stats.StatKind.FRONTEND:
            services[row.proxy] = ServiceObservation(**counters(row))
            pool_name = row.proxy
        elif row.kind is server_stats.StatKind.BACKEND:
            pool_name = index.cached.get(row.proxy)
        if pool_name is not None:
            if row.cache_lookups:
                caches[pool_name] = _cache_counters(row)
            continue
        if row.kind is not server_stats.StatKind.SERVER:
            continue
        backend = index.backends.get(row.proxy)
        position = backend.servers.get(row.server) if backend is not None else None
        if position is None or not reported[position]:
            continue
        columns.health[position] = _HEALTH_CODES[health(row.status)]
        if row.check_status is not None:
            columns.check_result[position] = shared.setdefault(row.check_status, row.check_status)
        if row.last_chk is not None:
            columns.check_detail[position] = shared.setdefault(row.last_chk, row.last_chk)
        if row.check_code is not None:
            columns.check_code[position] = row.check_code
        if row.check_duration is not None:
            columns.check_duration_ms[position] = row.check_duration
        columns.current_connections[position] = row.scur
        columns.total_connections[position] = row.stot
        columns.bytes_in[position] = row.bin
        columns.bytes_out[position] = row.bout
        columns.rate[position] = row.rate
        columns.total_requests[position] = row.requests
        columns.connection_errors[position] = row.connection_errors
    return Observed(
        observation=EngineObservation(running=True, servers=columns, services=services),
        drained=drained,
        caches=caches,
    )


class Counters(TypedDict):
    current_connections: int
    total_connections: int
    bytes_in: int
    bytes_out: int
    rate: int
    total_requests: int


def counters(row: server_stats.ServerStat) -> Counters:
    """A ``show stat`` row's counters, for a front end and a server alike."""
    return Counters(
        current_connections=row.scur,
        total_connections=row.stot,
        bytes_in=row.bin,
        bytes_out=row.bout,
        rate=row.rate,
        total_requests=row.requests,
    )


def _cache_counters(row: server_stats.ServerStat) -> dict[str, Any]:
    return {
        "lookups": row.cache_lookups,
        "hits": row.cache_hits,
        "hit_ratio": round(row.cache_hits / row.cache_lookups, 4),
    }


def admin_state(state: server_states.ServerRuntimeState) -> RealServerState:
    """A server's runtime state in the document's terms (weight 0 is a drain)."""
    if state.maint:
        return RealServerState.disabled
    if state.drain or state.uweight == 0:
        return RealServerState.drain
    return RealServerState.enabled


def health(status: str) -> Health:
    """HAProxy's status column -> up | down | unchecked | maint."""
    word = status.split(" ", 1)[0].upper()
    if word in {"UP", "NOLB", "DRAIN", "OPEN"}:
        # "UP 1/3" is up and counting failures; DRAIN is up but drained.
        return Health.up
    if word == "DOWN":
        return Health.down
    if word == "MAINT":
        return Health.maint
    return Health.unchecked  # "no check"
