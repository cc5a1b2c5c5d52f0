"""Desired vs observed -> a Plan of actions (pure; the daemon executes it).

Detect and decide, never act: ``plan`` compares the desired ``Configuration`` with what the
engine reports and returns the smallest set of actions that converges them:

* a *structural* change (anything but real-server weights and states) needs the engine's
  configuration replaced (render, check, swap, seamless reload); the rendered config carries
  every weight and state, so no runtime action follows it in the same plan;
* unless only real servers came and went and the engine can add and remove them at runtime
  (``ChangesServers``: HAProxy's dynamic servers): then a ``ChangeServers`` and the weights
  and states of the pools it changes, with no reload;
* otherwise weights, enable/disable and drain go through the runtime API, with no reload;
* VIP addresses are added before the engine needs them and removed after it stops using them.

Dynamic schedulers (``adaptive``, ``weighted_response_time``) decide weights at run time. Their
decisions reach the planner as ``overrides`` (``WeightOverride`` per real server): the desired
runtime state is the document's with those weights, so the reconcile loop keeps them instead
of setting the document's weights back, and converges on them when they change.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bascule.errors import EngineError
from bascule.model import Configuration, RealServerState, Scheduler, VirtualService
from bascule.model.weights import engine_weights
from bascule.reconcile.actions import (
    Action,
    ChangeServers,
    EnsureVip,
    RemoveVip,
    ReplaceConfig,
    SetState,
    SetWeight,
    describe,
)
from bascule.reconcile.status import ServerStatus

#: Why a plan reloads an engine whose configuration changed beyond weights and states.
STRUCTURE_CHANGED = "the configuration changed beyond weights and states"

ServerRef = tuple[str, str]
"""(virtual service name, real server key ``address:port``)"""

ServerChanges = Callable[[Configuration, Configuration], ChangeServers | None]
"""An engine's judgement of a structural change (running, desired): the real servers it adds
and removes at runtime instead of reloading, or None (it reloads)."""


@dataclass(frozen=True, kw_only=True)
class ServerRuntime:
    """A real server's runtime state in engine terms: engine weight and admin state."""

    weight: int
    state: RealServerState


@dataclass(frozen=True, kw_only=True)
class WeightOverride:
    """A real server's weight as a dynamic scheduler decided it at run time.

    ``weight`` is in engine units (1..max_weight). ``out`` takes the server out of rotation
    at runtime (the engine disables it) without changing the document: ``ServerStatus.down``
    or ``ServerStatus.disabled``, the status the server then shows. ``reason`` says why, for
    the status. Overrides apply to servers the document enables; drain and disabled in the
    document win.
    """

    weight: int
    out: ServerStatus | None = None
    reason: str = ""


Overrides = Mapping[ServerRef, WeightOverride]


@dataclass(frozen=True, kw_only=True)
class Observed:
    """What is running: the document the engine's config came from, its servers, our VIPs."""

    applied: Configuration | None
    servers: Mapping[ServerRef, ServerRuntime] = field(default_factory=dict)
    vips: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True)
class Plan:
    actions: tuple[Action, ...]

    @property
    def reloads(self) -> bool:
        return any(isinstance(a, ReplaceConfig) for a in self.actions)

    @property
    def replaces(self) -> bool:
        """Whether the engine runs the plan's configuration after it (reloaded or not)."""
        return any(isinstance(a, ReplaceConfig | ChangeServers) for a in self.actions)

    @property
    def empty(self) -> bool:
        return not self.actions


@dataclass(frozen=True, kw_only=True)
class FullPlan:
    """The plan of a whole document over several engines: VIPs to add, each engine's plan
    (by engine name, in the daemon's order), VIPs to remove; executed in that order."""

    ensure: tuple[EnsureVip, ...]
    engines: tuple[tuple[str, Plan], ...]
    remove: tuple[RemoveVip, ...]

    @property
    def empty(self) -> bool:
        return not self.ensure and not self.remove and all(p.empty for _, p in self.engines)

    @property
    def reloads(self) -> bool:
        return any(p.reloads for _, p in self.engines)

    @property
    def settles(self) -> bool:
        """Whether the engines run the plan as planned once it is executed, with no pass to
        verify it: real servers changed at runtime with their pools' weights, no reload (a
        reloaded engine's runtime state comes from its server-state file, which the next
        pass corrects). The repair loop still verifies it within its interval."""
        return not self.reloads and any(
            isinstance(a, ChangeServers) for _, p in self.engines for a in p.actions
        )

    def descriptions(self) -> tuple[str, ...]:
        """One line per action, each engine's prefixed with its name, as a person reads it."""
        lines = [describe(a) for a in self.ensure]
        for engine, engine_plan in self.engines:
            lines.extend(f"{engine}: {describe(a)}" for a in engine_plan.actions)
        lines.extend(describe(a) for a in self.remove)
        return tuple(lines)


def plan(
    desired: Configuration,
    observed: Observed,
    *,
    max_weight: int,
    overrides: Overrides | None = None,
) -> Plan:
    """The actions that take one engine and the VIPs from ``observed`` to ``desired``."""
    ensure, remove = plan_vips(desired, observed.vips)
    engine = plan_engine(desired, observed, max_weight=max_weight, overrides=overrides)
    return Plan(actions=(*ensure, *engine.actions, *remove))


def plan_engine(
    desired: Configuration,
    observed: Observed,
    *,
    max_weight: int,
    overrides: Overrides | None = None,
) -> Plan:
    """The engine's actions: replace its configuration, or change weights and states."""
    reason = _structural_reason(desired, observed)
    if reason is not None:
        return Plan(actions=(ReplaceConfig(config=desired, reason=reason),))
    return Plan(
        actions=tuple(
            _runtime_actions(desired, observed, max_weight=max_weight, overrides=overrides)
        )
    )


def plan_reload(
    desired: Configuration,
    applied: Configuration | None,
    *,
    server_changes: ServerChanges | None = None,
    max_weight: int = 1,
    overrides: Overrides | None = None,
) -> Plan | None:
    """The plan of an engine whose running configuration (``applied``, as the reconciler
    recorded it) differs from ``desired`` beyond weights and states: a reload, known without
    observing the engine (what the reloaded engine does not run as desired, the next pass
    corrects), or the engine's ``server_changes`` when it adds and removes the real servers
    at runtime instead, followed by the weights and states of the pools it changes
    (``max_weight``, ``overrides``: the engine's, as ``plan_engine`` takes them). ``None``:
    the engine must be observed to plan (``plan_engine``)."""
    if applied is None or desired is applied:
        return None
    changed = changed_services(desired, applied)  # structure_changed's, kept
    if changed is not None and not changed:
        return None
    if server_changes is not None:
        change = server_changes(applied, desired)
        if change is not None:
            runtime = _changed_pools_runtime(
                changed or (), max_weight=max_weight, overrides=overrides
            )
            return Plan(actions=(change, *runtime))
    return Plan(actions=(ReplaceConfig(config=desired, reason=STRUCTURE_CHANGED),))


def _changed_pools_runtime(
    changed: Iterable[tuple[VirtualService, VirtualService]],
    *,
    max_weight: int,
    overrides: Overrides | None,
) -> list[Action]:
    """After ``ChangeServers``: the weights (and states) the servers of the ``changed``
    services' pools take (desired, applied pairs), the kept ones from what the applied one
    gave them (as the operate path plans: the engine ran it), the new ones as the engine
    creates them (their desired weight and state)."""
    actions: list[Action] = []
    for new, old in changed:
        previous = {pool.name: pool for pool in old.pools}
        for pool in new.pools:
            wanted = pool_runtime(pool, max_weight=max_weight, overrides=overrides)
            before = previous.get(pool.name)
            have = dict(wanted)
            if before is not None:
                kept = pool_runtime(before, max_weight=max_weight, overrides=overrides)
                have |= {ref: runtime for ref, runtime in kept.items() if ref in wanted}
            actions.extend(runtime_actions(wanted, have))
    return sorted(actions, key=_capacity_order)


def plan_vips(
    desired: Configuration, held: frozenset[str]
) -> tuple[tuple[EnsureVip, ...], tuple[RemoveVip, ...]]:
    """VIPs to add before the engines change, and VIPs to remove after."""
    wanted = desired_vips(desired)
    ensure = tuple(
        EnsureVip(address=address, interface=interface)
        for address, interface in wanted.items()
        if address not in held
    )
    remove = tuple(RemoveVip(address=a) for a in sorted(held) if a not in wanted)
    return ensure, remove


def desired_vips(config: Configuration) -> dict[str, str | None]:
    """Every VIP the configuration listens on, with its named interface if any."""
    vips: dict[str, str | None] = {}
    for vs in config.virtual_services:
        for address in vs.addresses:  # both of a dual-stack service, on the same interface
            if ipaddress.ip_address(address).is_unspecified:
                continue
            if address not in vips or vips[address] is None:
                vips[address] = vs.interface
    return vips


def desired_runtime(
    config: Configuration, *, max_weight: int, overrides: Overrides | None = None
) -> dict[ServerRef, ServerRuntime]:
    """The runtime state every real server of an enabled service should have.

    ``overrides`` (dynamic schedulers) replace the weight of servers the document enables,
    and take out (runtime disabled) those marked ``out``.
    """
    result: dict[ServerRef, ServerRuntime] = {}
    for vs in config.pools():  # each service, then its sub-services ("site/api")
        result.update(pool_runtime(vs, max_weight=max_weight, overrides=overrides))
    return result


def pool_runtime(
    pool: VirtualService, *, max_weight: int, overrides: Overrides | None = None
) -> dict[ServerRef, ServerRuntime]:
    """``desired_runtime`` of one pool (a service, or a sub-service's ``site/api``): its
    engine weights are relative to one another, so a pool is the least that is planned."""
    if not pool.enabled:
        return {}
    overrides = overrides or {}
    weights = engine_weights(
        {rs.key: rs.weight for rs in pool.real_servers},
        max_weight,
        weighted=pool.scheduler.weighted,
    )
    result: dict[ServerRef, ServerRuntime] = {}
    for rs in pool.real_servers:
        runtime = ServerRuntime(weight=weights[rs.key], state=rs.state)
        override = overrides.get((pool.name, rs.key))
        if override is not None and rs.state is RealServerState.enabled:
            state = RealServerState.disabled if override.out else rs.state
            runtime = ServerRuntime(weight=min(override.weight, max_weight), state=state)
        result[(pool.name, rs.key)] = runtime
    return result


def apply_runtime_actions(
    table: Mapping[ServerRef, ServerRuntime],
    actions: Iterable[SetWeight | SetState],
    *,
    engine: str = "the engine",
) -> dict[ServerRef, ServerRuntime]:
    """``table`` (every real server's runtime weight and state) after ``actions``, as an
    engine that keeps such a table applies them; a server the table lacks is an
    ``EngineError`` naming ``engine``."""
    result = dict(table)
    for action in actions:
        ref = (action.vs, action.server)
        now = result.get(ref)
        if now is None:
            raise EngineError(f"{engine} runs no real server {action.server} in {action.vs}")
        if isinstance(action, SetWeight):
            result[ref] = replace(now, weight=action.weight)
        else:
            result[ref] = replace(now, state=action.state)
    return result


def structural_signature(config: Configuration) -> dict[str, Any]:
    """The document without what the runtime API can change (weights, states).

    Under ``fixed_weighting`` the weight *order* decides which server is active and which are
    backups, which the runtime API cannot change, so that order is part of the signature.
    """
    document = config.model_copy(update={"virtual_services": []}).to_document()
    document["virtual_services"] = [_service_signature(vs) for vs in config.virtual_services]
    return document


def structure_changed(desired: Configuration, applied: Configuration) -> bool:
    """Whether ``structural_signature`` tells the two apart, found at the cost of what
    differs: a service that is the same model in both (the revisions of an edit share the
    services it left alone) is not compared again (issue 15)."""
    if desired is applied:
        return False
    changed = changed_services(desired, applied)
    return changed is None or bool(changed)


def changed_services(
    desired: Configuration, applied: Configuration
) -> list[tuple[VirtualService, VirtualService]] | None:
    """The services whose ``structural_signature`` differs, as (desired, applied) pairs of
    the same name, found at the cost of what differs (a service that is the same model in
    both is not compared again: issue 15). ``None``: more than services changed (the
    document outside them, or which services there are, or their order)."""
    if len(desired.virtual_services) != len(applied.virtual_services):
        return None
    outside: dict[str, Any] = {"virtual_services": []}
    if structural_signature(desired.model_copy(update=outside)) != structural_signature(
        applied.model_copy(update=outside)
    ):
        return None
    changed: list[tuple[VirtualService, VirtualService]] = []
    for new, old in zip(desired.virtual_services, applied.virtual_services, strict=True):
        if new is old:
            continue
        if new.name != old.name:
            return None
        if _service_signature(new) != _service_signature(old):
            changed.append((new, old))
    return changed


def _service_signature(vs: VirtualService) -> dict[str, Any]:
    vs_doc = vs.model_dump(mode="json")
    pool_docs = [vs_doc, *vs_doc["sub_services"]]
    for pool_doc, pool in zip(pool_docs, vs.pools, strict=True):
        for rs_doc in pool_doc["real_servers"]:
            rs_doc.pop("weight")
            rs_doc.pop("state")
        if pool.scheduler is Scheduler.fixed_weighting:
            pool_doc["fixed_weighting_order"] = fixed_weighting_order(pool)
    return vs_doc


def fixed_weighting_order(vs: VirtualService) -> list[str]:
    """Real server keys by descending weight, document order on ties: active first."""
    ranked = sorted(enumerate(vs.real_servers), key=lambda item: (-item[1].weight, item[0]))
    return [rs.key for _, rs in ranked]


def _structural_reason(desired: Configuration, observed: Observed) -> str | None:
    if observed.applied is None:
        return "no configuration is running yet"
    if structure_changed(desired, observed.applied):
        return STRUCTURE_CHANGED
    for ref in desired_runtime(desired, max_weight=1):
        if ref not in observed.servers:
            return f"the engine does not know real server {ref[1]} of {ref[0]}"
    return None


def _runtime_actions(
    desired: Configuration, observed: Observed, *, max_weight: int, overrides: Overrides | None
) -> list[Action]:
    wanted = desired_runtime(desired, max_weight=max_weight, overrides=overrides)
    return runtime_actions(wanted, observed.servers)


def runtime_actions(
    wanted: Mapping[ServerRef, ServerRuntime], have: Mapping[ServerRef, ServerRuntime]
) -> list[Action]:
    """The weight and state commands that take each server of ``wanted`` from ``have``."""
    actions: list[Action] = []
    for (vs, server), want in wanted.items():
        now = have[(vs, server)]
        if want.state is not now.state:
            actions.append(SetState(vs=vs, server=server, state=want.state))
        # A weight only matters to a server that takes new traffic.
        if want.state is RealServerState.enabled and want.weight != now.weight:
            actions.append(SetWeight(vs=vs, server=server, weight=want.weight))
    return sorted(actions, key=_capacity_order)


def _capacity_order(action: Action) -> int:
    """Servers taking traffic again first, weights next, servers leaving last.

    An engine applies runtime changes one after the other: in document order, "drain rs1,
    enable rs3" of a pool whose rs2 is drained would leave it no server between the two,
    and a request arriving then gets a 503 (the chaos bench saw two). The sort is stable,
    so a server's own state comes before its weight, as the document orders them.
    """
    if isinstance(action, SetState):
        return 0 if action.state is RealServerState.enabled else 2
    return 1
