"""The nftables engine as the daemon sees it: the Engine contract over the L4 modules.

Where it sits in the flow of a change: the daemon's executor hands it the ``mode: l4`` share
of a plan. It keeps what it applied (the document, every real server's runtime weight and
state) together with what the model does not hold: health verdicts (from Bascule's checker,
through ``health_changed`` and a ``HealthSource``), least-connection weights (from conntrack,
once a second in ``tick``: ``conntrack.py``) and the machine's facts (interface, MAC
addresses for DSR: ``machine.py``). Any change of these rebuilds the ruleset with
``rules.build_ruleset`` (over the decisions of ``view.py``), starting from the scheduling
maps that run (``SlotTable``: a weight change moves few round robin slots, an untouched
service's Maglev table is not computed again). What differs from what runs goes in one
transaction (``transaction.in_place``): the changed map elements only for weights, states,
health and MACs (no rule touched), and for a new document the changed chains and objects
too (a new real server: its chain, counters and slots; the other services untouched). The
whole ruleset goes (``NftablesShell.apply``) when nothing runs yet, when our tables are not
all there, when the change needs what only it can do (a new integer map, a changed hook),
or when nft refuses the in-place transaction (drift). Either way conntrack keeps every
established NAT connection where it is and no connection is reset.

Weights. ``max_weight`` is 65535, the model's own range: ``engine_weights`` then only divides
a service's weights by their common divisor (3000:1000 -> 3:1, exactly, never rounded), so
runtime weights keep the document's ratios and fixed_weighting's order. The view scales them
once more into its numgen sequence or Maglev table; the planner compares the numbers here.

``NftablesEngine`` is made of two parts: ``installation.Installation`` (its state, the
ruleset built, checked and applied, conntrack read) and, here, the daemon's verbs (health,
``tick``, adoption) and the rest of the contract (``execute``, ``server_changes``,
``observe``, ``stop``, ``info``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from bascule.engines.base import (
    EngineObservation,
    Health,
    HealthSource,
    ServerObservation,
    ServiceObservation,
)
from bascule.engines.nftables.conntrack import Traffic
from bascule.engines.nftables.installation import Installation, reasons
from bascule.engines.nftables.nft import FAMILIES
from bascule.engines.nftables.rules import ServiceView
from bascule.engines.nftables.scheduling import DSR_SCHEDULING, NAT_SCHEDULING
from bascule.engines.nftables.transaction import CounterValue
from bascule.engines.nftables.view import Exclusion, l4_services
from bascule.errors import EngineError
from bascule.model import Configuration, Forwarding, Mode, RealServerState
from bascule.reconcile.actions import Action, ChangeServers, ReplaceConfig, SetState, SetWeight
from bascule.reconcile.planner import (
    ServerRef,
    ServerRuntime,
    apply_runtime_actions,
    changed_services,
    desired_runtime,
)

log = logging.getLogger("bascule.nftables")

MAX_WEIGHT = 65535
DRAIN_POLL = 0.2


class NftablesEngine(Installation):
    """Engine contract implementation for nftables (see engines/base.py)."""

    name = "nftables"
    mode = Mode.l4
    max_weight = MAX_WEIGHT

    # -- the daemon's extra verbs ---------------------------------------------------------------

    def set_health_source(self, source: HealthSource | None) -> None:
        """Where ``observe`` and the maps read each real server's last check (the daemon's
        adapter over Bascule's health checker)."""
        self._health_source = source

    async def health_changed(self, ref: ServerRef, up: bool) -> None:
        """A real server's verdict flipped: rebuild the maps; cut its flows if so configured.

        The conntrack entries are cut after the server has left the maps, so that the next
        packet of a cut flow is not sent to it again.
        """
        was_down = self._health.get(ref) is False
        self._health[ref] = up
        async with self._lock:
            if self._config is None:
                return
            await self._refresh()
            vs = self._config.virtual_service(ref[0])
        if (
            up
            or was_down
            or vs is None
            or not vs.drop_on_failure
            or vs.forwarding is not Forwarding.nat
        ):
            return
        rs = vs.real_server(ref[1])
        if rs is None:
            return
        # conntrack -D takes one port: each single port, or any port of the VIP for ranges
        ports: list[int | None] = [r.first for r in vs.port_ranges]
        if any(r.first != r.last for r in vs.port_ranges):
            ports = [None]
        # the VIP of the server's family (a dual-stack service NATs each family to its own)
        vip = next((a for a in vs.addresses if (":" in a) == (":" in rs.address)), vs.address)
        for port in ports:
            try:
                await self.shell.flush_connections(vip, port, rs.address, vs.protocol.value)
            except EngineError as exc:
                log.error("could not cut connections", extra={"server": rs.key, "error": str(exc)})
        log.info("cut the connections of a failed real server", extra={"vs": vs.name, "rs": rs.key})

    async def tick(self) -> None:
        """About once a second: least-connection weights from conntrack, DSR MACs when due;
        re-apply only when something changed."""
        async with self._lock:
            if self._config is None:
                return
            config = self._config
            try:
                await self._count_connections(config)
                if self.machine.refresh_due():
                    await self.machine.resolve_macs(config, refresh=True)
                await self._refresh()
            except (EngineError, OSError) as exc:
                log.error("nftables refresh failed", extra={"error": str(exc)})

    async def adopt(self) -> bool:
        """Our tables exist: a previous daemon left them serving; the next observe with the
        adopted document takes them over."""
        adopted = bool(await self._present())
        if adopted:
            log.info("adopting Bascule's nftables tables")
        return adopted

    # -- the Engine contract ----------------------------------------------------------------------

    async def execute(self, actions: Sequence[Action], applied: Configuration | None) -> None:
        async with self._lock:
            config = self._config or applied
            runtime = dict(self._runtime) if self._config is not None else None
            if runtime is None and config is not None:
                runtime = desired_runtime(config, max_weight=self.max_weight)
            replaced = False
            for action in actions:
                if isinstance(action, ReplaceConfig | ChangeServers):
                    config, replaced = action.config, True
                    runtime = desired_runtime(config, max_weight=self.max_weight)
                elif isinstance(action, SetWeight | SetState) and runtime is not None:
                    runtime = apply_runtime_actions(runtime, (action,), engine="nftables")
            if config is None or runtime is None:
                return
            if not l4_services(config) and not await self._present():
                # Nothing to run and nothing to remove: no nft call at all.
                self._config, self._runtime, self._applied = config, runtime, None
                return
            if replaced:
                await self.machine.resolve_macs(config, refresh=False)
            await self._apply(config, runtime, force=replaced)

    def server_changes(
        self, running: Configuration, desired: Configuration
    ) -> ChangeServers | None:
        """The planner's question (``ChangesServers``): are real servers of running L4
        services all that changed? Then the change is no reload but the in-place update that
        adds and removes their chains, counters and slots (the other services' commands and
        the service's other servers' reused: ``rules.MemberFragment``), and the change
        pipeline does not ``check`` it: nothing in it can be refused before the kernel's
        commit, which validates it (a refused one changes nothing and the apply fails with
        nft's word). Not for a new DSR server (``check`` asks whether it is on-link) nor
        anything else (a service's own fields, services that come or go): that is a
        ``ReplaceConfig``, checked first. A new NAT server of a 100-server service skips
        ``check`` and the reconcile's second pass (every engine planned and observed again),
        which a ``ChangeServers`` plan settles without."""
        changed = changed_services(desired, running)
        if not changed:
            return None  # more than services changed
        added: list[ServerRef] = []
        removed: list[ServerRef] = []
        for new, old in changed:
            if new.model_copy(update={"real_servers": old.real_servers}) != old:
                return None  # the service itself changed
            before = {rs.key for rs in old.real_servers}
            after = {rs.key for rs in new.real_servers}
            if new.forwarding is Forwarding.dsr and not after <= before:
                return None  # a new DSR server: is it on-link? ``check`` says
            added += [(new.name, rs.key) for rs in new.real_servers if rs.key not in before]
            removed += [(old.name, rs.key) for rs in old.real_servers if rs.key not in after]
        if not added and not removed:
            return None
        return ChangeServers(config=desired, added=tuple(added), removed=tuple(removed))

    async def observe(
        self, applied: Configuration | None, *, counters: bool = True
    ) -> EngineObservation:
        # ``counters=False`` (the planner): no named counters (``nft list counters`` fetches
        # every map's elements, a second with a DSR service's 65537 Maglev slots) and no
        # conntrack; the servers' runtime weights, states and health only.
        tables = await self._present()
        async with self._lock:
            if self._config is None and applied is not None and tables:
                self._config = applied  # adopted: the previous daemon's document runs
                self._runtime = desired_runtime(applied, max_weight=self.max_weight)
                log.info("adopted Bascule's nftables tables", extra={"tables": sorted(tables)})
            config = self._config
            if config is None:
                return EngineObservation(running=False, detail="no L4 ruleset applied yet")
            ruleset = self._ruleset_now(config)
        missing = sorted(set(ruleset.tables) - tables) if ruleset else []
        if not l4_services(config):
            return EngineObservation(running=True)
        if missing:
            return EngineObservation(
                running=False,
                detail=f"Bascule's nftables table(s) {', '.join(missing)} are missing",
            )
        values: Mapping[tuple[str, str], CounterValue] = {}
        active: Mapping[ServerRef, int] = {}
        flows: Mapping[ServerRef, Traffic] = {}
        if counters:
            values = await self.shell.counter_values()
            active, flows = await self._nat_flows(config)
        servers: dict[ServerRef, ServerObservation] = {}
        services: dict[str, ServiceObservation] = {}
        for vs in l4_services(config):
            # one view per VIP (two for a dual-stack service), counted together
            all_views = ruleset.services.values() if ruleset else ()
            views = [view for view in all_views if view.service == vs.name]
            counted = _by_server_of(views, values)
            excluded = _excluded_from_all(views)
            total_active = total_new = 0
            total = Traffic()
            for rs in vs.real_servers:
                ref = (vs.name, rs.key)
                own = counted.get(rs.key, {})
                report = self._report(ref)
                health, detail = self._health_word(vs, ref, report)
                reason = excluded.get(rs.key)
                if reason is not None and reason.faulty:
                    health, detail = Health.down, f"not forwarded: {reason.value}"
                runtime = self._runtime.get(ref, ServerRuntime(weight=1, state=rs.state))
                # NAT: conntrack's accounting; DSR: the server chain's counter (no replies)
                traffic = flows.get(ref) or Traffic(
                    _packets(own, "traffic"), _bytes(own, "traffic")
                )
                servers[ref] = ServerObservation(
                    weight=runtime.weight,
                    state=runtime.state,
                    health=health,
                    check_result=report.result if report else None,
                    check_code=report.code if report else None,
                    check_duration_ms=report.duration_ms if report else None,
                    check_detail=detail,
                    current_connections=active.get(ref, 0),
                    total_connections=_packets(own, "new"),
                    bytes_in=traffic.bytes_in,
                    bytes_out=traffic.bytes_out,
                    packets=traffic.packets_in + traffic.packets_out,
                )
                total_active += active.get(ref, 0)
                total_new += _packets(own, "new")
                total += traffic
            # the service: the sum of its servers' (packets: those the clients sent)
            services[vs.name] = ServiceObservation(
                current_connections=total_active,
                total_connections=total_new,
                bytes_in=total.bytes_in,
                bytes_out=total.bytes_out,
                packets=total.packets_in,
            )
        return EngineObservation(running=True, servers=servers, services=services)

    async def stop(self, *, grace: float) -> None:
        """Take no new connections, let open NAT ones finish for up to ``grace`` seconds,
        then delete our tables (L4 traffic stops: the VIPs leave with the daemon too)."""
        async with self._lock:
            config = self._config
            present = await self._present()
            if not present:
                self._config, self._runtime, self._applied = None, {}, None
                return
            if config is not None and grace > 0:
                drained = {
                    ref: replace(rt, state=RealServerState.drain)
                    for ref, rt in self._runtime.items()
                }
                with contextlib.suppress(EngineError, OSError):
                    await self._apply(config, drained, force=False)  # a map update
                    deadline = self._clock() + grace
                    while self._clock() < deadline and any((await self._active(config)).values()):
                        await self._sleep(DRAIN_POLL)
            await self.shell.remove()
            self._config, self._runtime, self._applied = None, {}, None
            log.info("removed Bascule's nftables tables")

    async def info(self) -> dict[str, Any]:
        tables = [family for family in FAMILIES if family in await self._present()]
        ruleset = self._applied.ruleset if self._applied else None
        try:
            version = await self.shell.version()
        except EngineError:  # net's runner: nft cannot be started
            version = "not installed"
        return {
            "version": version,
            "running": bool(tables),
            # no l4 service: nothing to run, which is not a fault
            "idle": not tables and not (ruleset and ruleset.services),
            "tables": [f"{family} bascule" for family in tables],
            "dsr_scheduling": {s.value: sel.value for s, sel in DSR_SCHEDULING.items()},
            "nat_scheduling": {s.value: sel.value for s, sel in NAT_SCHEDULING.items()},
            "services": {
                name: {
                    "forwarding": view.forwarding.value,
                    "selection": view.selection.value,
                    "table": view.table,
                    "excluded": reasons(view.excluded),
                }
                for name, view in (ruleset.services.items() if ruleset else ())
            },
        }


def _by_server_of(
    views: Sequence[ServiceView], values: Mapping[tuple[str, str], CounterValue]
) -> dict[str, dict[str, CounterValue]]:
    """rs key ("" for the service) -> kind -> value, summed over the service's views."""
    found: dict[str, dict[str, CounterValue]] = {}
    for view in views:
        for counter, (key, kind) in view.counters.items():
            value = values.get((view.table, counter))
            if value is None:
                continue
            kinds = found.setdefault(key, {})
            seen = kinds.get(kind)
            if seen is not None:
                value = CounterValue(
                    packets=seen.packets + value.packets, bytes=seen.bytes + value.bytes
                )
            kinds[kind] = value
    return found


def _excluded_from_all(views: Sequence[ServiceView]) -> dict[str, Exclusion]:
    """rs key -> why it is in no map of any of the service's views (the first view's reason);
    a server forwarded by one VIP of a dual-stack service is not excluded."""
    if not views:
        return {}
    keys = set.intersection(*(set(view.excluded) for view in views))
    return {key: views[0].excluded[key] for key in keys}


def _packets(values: Mapping[str, CounterValue], kind: str) -> int:
    value = values.get(kind)
    return value.packets if value else 0


def _bytes(values: Mapping[str, CounterValue], kind: str) -> int:
    value = values.get(kind)
    return value.bytes if value else 0
