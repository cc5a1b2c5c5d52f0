"""The Engine contract the daemon drives, and a FakeEngine that records what it is asked.

An engine is a data plane (HAProxy, nftables) seen by the daemon through a few verbs:
``adopt`` what a previous daemon left running, ``check`` a desired configuration with the
engine's own checker, ``execute`` the engine's share of a plan, ``observe`` what is running,
and ``stop``. The FakeEngine keeps everything in memory so the reconciler, the service layer
and the API are tested without root; it is not a substitute for the engine tests, which run
the real binaries.
"""

from __future__ import annotations

import enum
from array import array
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from bascule.errors import ApplyFailed, EngineRejected
from bascule.model import Configuration, Mode, RealServerState
from bascule.model.document import for_mode
from bascule.reconcile.actions import Action, ChangeServers, ReplaceConfig, SetState, SetWeight
from bascule.reconcile.planner import (
    ServerRef,
    ServerRuntime,
    apply_runtime_actions,
    desired_runtime,
)


class Health(enum.StrEnum):
    """A real server's health as the engine sees it (its checks and its own holds); the
    daemon's ``status.py`` turns it and the document into the server's ``ServerStatus``."""

    up = "up"  # the checks pass (HAProxy: UP, NOLB, DRAIN, OPEN)
    down = "down"  # the checks fail, or the engine cannot forward to it
    unchecked = "unchecked"  # no check (or planning asked for no health at all)
    maint = "maint"  # the engine holds it in maintenance
    drain = "drain"  # up, but drained by the engine


@dataclass(frozen=True, kw_only=True, slots=True)  # (10,000 at a time: issue 15)
class ServerObservation:
    """One real server as the engine sees it: runtime state, health and counters."""

    weight: int
    state: RealServerState
    health: Health
    check_result: str | None = None  # e.g. "L7OK", "L4CON"
    check_code: int | None = None
    check_duration_ms: int | None = None
    check_detail: str | None = None
    current_connections: int = 0
    total_connections: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    rate: int = 0
    packets: int = 0  # L4 engines: packets both ways (HAProxy counts none)
    total_requests: int = 0  # L7 HTTP: responses from this server (HAProxy's hrsp_*)
    connection_errors: int = 0  # L7: failed connection attempts (HAProxy's econ + wretr)

    @property
    def runtime(self) -> ServerRuntime:
        return ServerRuntime(weight=self.weight, state=self.state)


class ServerColumns(Mapping[ServerRef, ServerObservation]):
    """An engine's real servers column-wise: one array per counter, a server's values at its
    position, which ``positions`` gives (the engine's index of the running document, kept
    from one observation to the next); read as a mapping of ``ServerObservation``, each made
    when it is read. The engine fills the columns before it hands them out; nothing writes
    them after.

    10,000 servers are observed every 10 s (issue 15): as ``ServerObservation`` values a
    sample made 20,000 objects that lived until the next one, interleaved with the
    temporaries of the reading, and pymalloc's pools could not be freed around them
    (docs/performance.md, section 17). A server is seen when
    ``health`` is set (-1: not seen), ``state`` and ``health`` hold the index of a member in
    ``STATES`` and ``HEALTHS``, and -1 in ``check_code`` and ``check_duration_ms`` is None.
    """

    STATES = tuple(RealServerState)
    HEALTHS = tuple(Health)

    def __init__(self, positions: Mapping[ServerRef, int]) -> None:
        size = max(positions.values(), default=-1) + 1
        self.positions = positions
        self.weight = array("l", [0]) * size
        self.state = array("b", [-1]) * size
        self.health = array("b", [-1]) * size
        self.check_result: list[str | None] = [None] * size
        self.check_code = array("l", [-1]) * size
        self.check_duration_ms = array("l", [-1]) * size
        self.check_detail: list[str | None] = [None] * size
        self.current_connections = array("q", [0]) * size
        self.total_connections = array("q", [0]) * size
        self.bytes_in = array("q", [0]) * size
        self.bytes_out = array("q", [0]) * size
        self.rate = array("q", [0]) * size
        self.packets = array("q", [0]) * size
        self.total_requests = array("q", [0]) * size
        self.connection_errors = array("q", [0]) * size

    def get(self, ref: ServerRef, default: Any = None) -> Any:  # Mapping's, without a raise
        position = self.positions.get(ref)
        if position is None or self.health[position] < 0:
            return default
        return self._at(position)

    def __getitem__(self, ref: ServerRef) -> ServerObservation:
        position = self.positions[ref]
        if self.health[position] < 0:
            raise KeyError(ref)
        return self._at(position)

    def __contains__(self, ref: object) -> bool:
        position = self.positions.get(ref)  # type: ignore[call-overload]
        return position is not None and self.health[position] >= 0

    def __iter__(self) -> Iterator[ServerRef]:
        health = self.health
        return (ref for ref, position in self.positions.items() if health[position] >= 0)

    def __len__(self) -> int:
        return len(self.health) - self.health.count(-1)

    def runtime(self) -> dict[ServerRef, ServerRuntime]:
        """Each seen server's runtime weight and state, for the planner."""
        states, health, weight = self.STATES, self.health, self.weight
        return {
            ref: ServerRuntime(weight=weight[position], state=states[self.state[position]])
            for ref, position in self.positions.items()
            if health[position] >= 0
        }

    def _at(self, position: int) -> ServerObservation:
        code = self.check_code[position]
        duration = self.check_duration_ms[position]
        return ServerObservation(
            weight=self.weight[position],
            state=self.STATES[self.state[position]],
            health=self.HEALTHS[self.health[position]],
            check_result=self.check_result[position],
            check_code=None if code < 0 else code,
            check_duration_ms=None if duration < 0 else duration,
            check_detail=self.check_detail[position],
            current_connections=self.current_connections[position],
            total_connections=self.total_connections[position],
            bytes_in=self.bytes_in[position],
            bytes_out=self.bytes_out[position],
            rate=self.rate[position],
            packets=self.packets[position],
            total_requests=self.total_requests[position],
            connection_errors=self.connection_errors[position],
        )


@dataclass(frozen=True, kw_only=True, slots=True)  # (1,000 at a time: issue 15)
class ServiceObservation:
    """One virtual service's front-end counters."""

    current_connections: int = 0
    total_connections: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    rate: int = 0
    requests_rate: int = 0
    packets: int = 0  # L4 engines: packets from clients
    total_requests: int = 0  # L7 HTTP: requests received (HAProxy's req_tot)


@dataclass(frozen=True, kw_only=True)
class HealthReport:
    """A health checker's last word on one real server, as an engine shows it in ``observe``.

    Engines run with a checker they may not import (bascule.health is their sibling): the
    daemon adapts the checker's status into these and hands the engine a ``HealthSource``.
    ``result`` is a short word ("tcp ok", "http failed"), ``code`` the HTTP status or DNS
    RCODE when there is one.
    """

    up: bool
    result: str | None = None
    code: int | None = None
    duration_ms: int | None = None
    detail: str | None = None


HealthSource = Callable[[tuple[str, str]], "HealthReport | None"]
"""(virtual service name, real server key) -> the last report, None when not checked yet."""


@dataclass(frozen=True, kw_only=True)
class EngineObservation:
    running: bool
    servers: Mapping[ServerRef, ServerObservation] = field(default_factory=dict)
    services: Mapping[str, ServiceObservation] = field(default_factory=dict)
    detail: str = ""

    def runtime(self) -> dict[ServerRef, ServerRuntime]:
        if isinstance(self.servers, ServerColumns):
            return self.servers.runtime()
        return {ref: obs.runtime for ref, obs in self.servers.items()}


def merge_observations(
    observations: Sequence[tuple[EngineObservation, bool]],
) -> EngineObservation:
    """One view over several engines; ``bool`` says whether the engine has services to run.

    Names do not clash: virtual service names are unique across engines, so the servers are
    the engines' own mappings chained (an engine's ``ServerColumns`` read where they are).
    """
    tables = [o.servers for o, _ in observations if o.servers]
    servers: Mapping[ServerRef, ServerObservation] = (
        {} if not tables else tables[0] if len(tables) == 1 else ChainMap(*tables)  # type: ignore[arg-type]
    )
    services: dict[str, ServiceObservation] = {}
    down = [
        o.detail or "an engine is not running"
        for o, needed in observations
        if needed and not o.running
    ]
    for observation, _ in observations:
        services.update(observation.services)
    return EngineObservation(
        running=not down, servers=servers, services=services, detail="; ".join(down)
    )


class Engine(Protocol):
    """What the daemon needs from a data plane."""

    name: str
    mode: Mode  # the virtual services it runs
    max_weight: int

    async def adopt(self) -> bool:
        """At the daemon's start: take over what a previous daemon left running (a live
        HAProxy master, Bascule's nftables tables); whether there was anything. The daemon
        then tells the service layer which document that was (the last good revision's)."""

    async def check(self, config: Configuration) -> None:
        """Render ``config`` and run the engine's own checker; raise EngineRejected."""

    async def execute(self, actions: Sequence[Action], applied: Configuration | None) -> None:
        """Carry out the engine's actions of a plan; raise ApplyFailed (state restored)."""

    async def observe(
        self, applied: Configuration | None, *, counters: bool = True
    ) -> EngineObservation:
        """Report what runs, keyed by the names of ``applied`` (the running document).

        ``counters=False`` asks only for what planning needs (running, each server's runtime
        weight and state): an engine may then skip health and traffic counters, which cost
        more to read on a large configuration."""

    async def stop(self, *, grace: float) -> None:
        """Let connections finish for up to ``grace`` seconds, then stop the data plane."""

    async def info(self) -> dict[str, Any]:
        """Version and state of the data plane, for status and the System page."""


@dataclass(frozen=True, kw_only=True)
class PersistenceEntry:
    """One client the data plane keeps on a real server (a stick-table entry).

    ``table`` is "primary" (the service's method) or "fallback" (source_ip when the method's
    key is absent); ``key`` is shown as the engine prints it (hex for hashed keys).
    """

    table: str
    key: str
    real_server: str | None
    expires_in_s: float


@runtime_checkable
class PersistenceTables(Protocol):
    """An engine that keeps persistence tables the daemon can list and clear."""

    async def persistence(
        self, applied: Configuration | None, vs_name: str
    ) -> list[PersistenceEntry]:
        """The entries of ``vs_name``'s persistence tables."""

    async def clear_persistence(self, applied: Configuration | None, vs_name: str) -> int:
        """Empty ``vs_name``'s persistence tables; how many entries there were."""


class FakeEngine:
    """An in-memory engine that records every action; failures can be injected."""

    name = "fake"
    mode = Mode.l7
    max_weight = 256

    def __init__(self) -> None:
        self.executed: list[Action] = []
        self.reloads = 0
        self.running: Configuration | None = None
        self.left_running = False  # a test's "previous daemon left this engine running"
        self.servers: dict[ServerRef, ServerRuntime] = {}
        self.reject_with: str | None = None
        self.fail_apply_with: str | None = None
        self.stopped = False
        # persistence entries by virtual service, as a test puts them there
        self.persisted: dict[str, list[PersistenceEntry]] = {}

    async def adopt(self) -> bool:
        return self.left_running

    async def check(self, config: Configuration) -> None:
        if self.reject_with is not None:
            raise EngineRejected("fake", self.reject_with)

    async def execute(self, actions: Sequence[Action], applied: Configuration | None) -> None:
        for action in actions:
            if isinstance(action, ReplaceConfig):
                if self.fail_apply_with is not None:
                    raise ApplyFailed(f"fake apply failed: {self.fail_apply_with}")
                self.running = action.config
                self.servers = desired_runtime(action.config, max_weight=self.max_weight)
                self.reloads += 1
            elif isinstance(action, SetWeight | SetState):
                self.servers = apply_runtime_actions(self.servers, (action,), engine=self.name)
            else:
                continue
            self.executed.append(action)

    async def observe(
        self, applied: Configuration | None, *, counters: bool = True
    ) -> EngineObservation:
        servers = {
            ref: ServerObservation(weight=rt.weight, state=rt.state, health=Health.unchecked)
            for ref, rt in self.servers.items()
        }
        return EngineObservation(running=self.running is not None, servers=servers)

    async def info(self) -> dict[str, Any]:
        return {"version": "fake", "running": self.running is not None, "reloads": self.reloads}

    async def stop(self, *, grace: float) -> None:
        self.stopped = True
        self.running = None
        self.servers = {}

    async def persistence(
        self, applied: Configuration | None, vs_name: str
    ) -> list[PersistenceEntry]:
        return list(self.persisted.get(vs_name, []))

    async def clear_persistence(self, applied: Configuration | None, vs_name: str) -> int:
        return len(self.persisted.pop(vs_name, []))


@dataclass(frozen=True, kw_only=True)
class ClientLoad:
    """One client of a service with per-client limits: its counters now (connections at
    once, new connections and HTTP requests over the last second) and whether a limit holds
    it."""

    client: str
    connections: int
    connections_per_second: int
    requests_per_second: int
    limited: bool


@runtime_checkable
class ClientLimits(Protocol):
    """An engine that counts each client of a service with per-client limits."""

    async def client_loads(
        self, applied: Configuration | None, vs_name: str, *, top: int, rule: str | None = None
    ) -> list[ClientLoad]:
        """The ``top`` busiest clients of ``vs_name`` (a service or a sub-service's pool),
        or of its content rule ``rule``, busiest first."""


@runtime_checkable
class CertificateUpdates(Protocol):
    """An engine that serves certificates of the store and can take a new one without a
    reload (HAProxy's SSL transactions; the STARTTLS front's SIGHUP)."""

    async def certificate_changed(self, applied: Configuration | None, name: str) -> bool:
        """The store rewrote ``name``'s file: serve it now if ``applied`` uses it; whether
        the engine did (False: not running, or not used)."""


@runtime_checkable
class ChallengeResponder(Protocol):
    """An engine that answers ACME's HTTP-01 challenges on port 80 of the VIPs."""

    async def set_challenge(self, path: str, answer: str) -> None:
        """Answer GET ``path`` (``/.well-known/acme-challenge/<token>``) with ``answer``."""

    async def clear_challenge(self, path: str) -> None:
        """Stop answering ``path``."""


@runtime_checkable
class SelectsServices(Protocol):
    """An engine whose share of a document is not simply the services of its mode (the
    STARTTLS front runs the ``type: starttls`` services of ``l7``, beside HAProxy)."""

    def share(self, config: Configuration) -> Configuration:
        """What the engine runs of ``config``."""


@runtime_checkable
class ChangesServers(Protocol):
    """An engine that can add and remove real servers of running pools without reloading
    (HAProxy's dynamic servers: engines/haproxy/dynamic.py)."""

    def server_changes(
        self, running: Configuration, desired: Configuration
    ) -> ChangeServers | None:
        """The runtime change from ``running`` to ``desired``, or None: it must reload."""


@runtime_checkable
class DefersReloads(Protocol):
    """An engine whose runtime changes are made permanent by a reload it defers (HAProxy:
    servers added at runtime reuse no idle connection until a reload makes them ordinary
    ones, engines/haproxy/engine.py). The daemon's reconciler runs that reload when it is
    due, under the lock every change takes."""

    reloads: int  # the reloads (and starts) it made since the daemon started

    def reload_in(self) -> float | None:
        """Seconds until the deferred reload is due (0 or less: now); None: none pending."""

    async def prepare_reload(self) -> None:
        """Whatever the reload can do ahead, without the lock (HAProxy: its check)."""

    async def reload_deferred(self, running: Configuration | None) -> bool:
        """Reload now what runs (``running``: the reconciler's record); whether it did."""


def share_of(engine: Engine, config: Configuration) -> Configuration:
    """The part of ``config`` that ``engine`` runs: the services of its mode, or what it
    selects itself (``SelectsServices``)."""
    if isinstance(engine, SelectsServices):
        return engine.share(config)
    return for_mode(config, engine.mode)
