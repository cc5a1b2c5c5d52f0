"""The nftables engine's state, and a ruleset built, checked and applied.

Where it sits: under the engine (engine.py), over the shell (shell.py). ``Installation``
holds what the engine applied (the document, every real server's runtime weight and state)
with the inputs the model does not hold (health verdicts, least-connection weights, the
machine's facts), builds the ruleset from them (``rules.build_ruleset``, starting from the
scheduling maps that run), checks it (``check``: ``nft -c``) and applies what differs from
what runs in one transaction, or the whole ruleset (``_apply``, ``_in_place``); it reads
conntrack for the least-connection weights and the NAT servers' traffic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from bascule.engines.base import Health, HealthReport, HealthSource
from bascule.engines.nftables.conntrack import (
    Traffic,
    TrafficLedger,
    active_connections,
    least_connection_weights,
)
from bascule.engines.nftables.machine import Machine
from bascule.engines.nftables.maglev import DEFAULT_TABLE_SIZE
from bascule.engines.nftables.nft import Json
from bascule.engines.nftables.rules import Ruleset, build_ruleset
from bascule.engines.nftables.shell import NftablesShell
from bascule.engines.nftables.transaction import in_place, table_guard
from bascule.engines.nftables.view import Exclusion, L4Inputs, ViewError, l4_services
from bascule.errors import ApplyFailed, EngineError, EngineRejected
from bascule.model import Configuration, Forwarding
from bascule.model import VirtualService as VirtualServiceModel
from bascule.net.shell import Runner
from bascule.reconcile.planner import ServerRef, ServerRuntime, desired_runtime

log = logging.getLogger("bascule.nftables")


def with_runtime(
    config: Configuration, runtime: Mapping[ServerRef, ServerRuntime]
) -> Configuration:
    """``config`` with every real server's weight and state replaced by its runtime one."""
    services = []
    for vs in config.virtual_services:
        servers = []
        for rs in vs.real_servers:
            now = runtime.get((vs.name, rs.key))
            if now is not None and (now.weight, now.state) != (rs.weight, rs.state):
                rs = rs.model_copy(update={"weight": now.weight, "state": now.state})
            servers.append(rs)
        services.append(vs.model_copy(update={"real_servers": servers}))
    return config.model_copy(update={"virtual_services": services})


@dataclass(frozen=True, kw_only=True)
class Applied:
    """What runs in the kernel and what it was built from (to skip an apply that changes
    nothing)."""

    config: Configuration  # with runtime weights and states
    inputs: L4Inputs
    ruleset: Ruleset


@dataclass(frozen=True, kw_only=True)
class Checked(Applied):
    """What ``check`` built, and on which running ruleset: the apply of the same document
    on the same running ruleset, with the same inputs, sends it instead of building it
    again (a 100-server service's rules, the slot tables)."""

    base: Ruleset | None


class Installation:
    """The nftables engine's state and how it builds and applies a ruleset (see the
    module's doc)."""

    max_weight: int  # the engine's (engine.py: MAX_WEIGHT)

    def __init__(
        self,
        *,
        runner: Runner | None = None,
        netns: str | None = None,
        interface: str | None = None,
        maglev_size: int = DEFAULT_TABLE_SIZE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.shell = NftablesShell(runner=runner, netns=netns)
        self.machine = Machine(self.shell, interface=interface, clock=clock)
        self._maglev_size = maglev_size
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._config: Configuration | None = None  # the l4 document applied (or adopted)
        self._runtime: dict[ServerRef, ServerRuntime] = {}
        self._health_source: HealthSource | None = None
        self._health: dict[ServerRef, bool] = {}  # verdicts given through health_changed
        self._lc_weights: dict[ServerRef, int] = {}
        self._applied: Applied | None = None
        self._checked: Checked | None = None  # what the last check built
        self._ledger = TrafficLedger()  # NAT traffic, from conntrack's accounting
        self._ledger_lock = asyncio.Lock()  # the ledger reads conntrack's snapshots in order

    async def _present(self) -> set[str]:
        """The families of our tables; none when nft cannot be asked (an L7-only machine
        without nftables must still run: only an L4 service needs nft)."""
        try:
            return set(await self.shell.tables())
        except (EngineError, OSError) as exc:
            log.debug("cannot list nftables tables", extra={"error": str(exc)})
            return set()

    async def check(self, config: Configuration) -> None:
        if not l4_services(config):
            return  # nothing of ours to check: the tables only go away
        await self.machine.check(config)
        async with self._lock:
            await self.machine.resolve_macs(config, refresh=False)
            # what an apply of ``config`` builds: its document's runtime weights and states
            effective = with_runtime(config, desired_runtime(config, max_weight=self.max_weight))
            inputs = self._inputs(config)
            running = self._applied.ruleset if self._applied is not None else None
            try:
                ruleset = build_ruleset(effective, inputs, running)
            except ViewError as exc:
                raise EngineRejected("nftables", str(exc)) from exc
            self._checked = Checked(config=effective, inputs=inputs, ruleset=ruleset, base=running)
            # What runs can take this ruleset in place: no ``nft -c`` of it. The apply that
            # follows (the change pipeline checks, the reconcile applies) sends this very
            # transaction, which the kernel validates as it commits it (27 ms of a new
            # server's, a second time): a refused one changes nothing, and the apply then
            # sends the whole ruleset, ``nft -c``'d first, or fails with nft's word, the
            # previous rules still running. What cannot go in place is checked whole.
            if self._in_place(running, ruleset) is not None:
                return
        await self.shell.check_ruleset(ruleset)

    def _report(self, ref: ServerRef) -> HealthReport | None:
        return self._health_source(ref) if self._health_source is not None else None

    def _verdict(self, ref: ServerRef) -> bool:
        """Up for the maps. Without any word yet: up when no checker is attached (the engine
        alone), down when one is (in the kernel a server proves itself before it gets
        traffic, see health/results.py; the daemon starts adopted servers up)."""
        report = self._report(ref)
        if report is not None:
            return report.up
        return self._health.get(ref, self._health_source is None)

    def _health_word(
        self, vs: VirtualServiceModel, ref: ServerRef, report: HealthReport | None
    ) -> tuple[Health, str | None]:
        if not vs.checked:
            return Health.unchecked, None
        if report is None and ref not in self._health and self._health_source is not None:
            return Health.down, "waiting for its first checks"
        health = Health.up if self._verdict(ref) else Health.down
        return health, report.detail if report else None

    def _inputs(self, config: Configuration) -> L4Inputs:
        health: dict[ServerRef, bool] = {}
        weights: dict[ServerRef, int] = {}
        for vs in l4_services(config):
            for rs in vs.real_servers:
                ref = (vs.name, rs.key)
                if vs.checked:
                    health[ref] = self._verdict(ref)
                if vs.scheduler.counts_connections and ref in self._lc_weights:
                    weights[ref] = self._lc_weights[ref]
        environment = self.machine.environment(maglev_size=self._maglev_size)
        return L4Inputs(environment=environment, health=health, weights=weights)

    def _ruleset_now(self, config: Configuration) -> Ruleset | None:
        """The ruleset that runs: the last applied, or (adopted) the one the document makes."""
        if self._applied is not None:
            return self._applied.ruleset
        try:
            return build_ruleset(with_runtime(config, self._runtime), self._inputs(config))
        except ViewError:
            return None

    async def _refresh(self) -> None:
        """Re-apply when health, weights or facts changed (the lock is held)."""
        if self._config is not None:
            await self._apply(self._config, self._runtime, force=False)

    async def _apply(
        self,
        config: Configuration,
        runtime: dict[ServerRef, ServerRuntime],
        *,
        force: bool,
    ) -> None:
        """Build and apply; on success this becomes the state (the lock is held)."""
        effective = with_runtime(config, runtime)
        inputs = self._inputs(config)
        if (
            not force
            and self._applied is not None
            and self._applied.config == effective
            and self._applied.inputs == inputs
        ):
            return
        running = self._applied.ruleset if self._applied is not None else None
        checked, self._checked = self._checked, None
        if (
            checked is not None
            and checked.base is running
            and checked.inputs == inputs
            and checked.config == effective
        ):
            ruleset = checked.ruleset  # the change pipeline's check built it just now
        else:
            try:
                ruleset = build_ruleset(effective, inputs, running)
            except ViewError as exc:
                raise ApplyFailed(f"nftables: {exc}") from exc
        await self.machine.prepare_nat(config)
        update = self._in_place(running, ruleset, guarded=force)
        if update is not None:
            try:
                await self.shell.update(update)
            except (EngineRejected, ApplyFailed) as exc:
                # What runs is not what we applied last (changed by hand?): the whole
                # ruleset puts it right.
                log.warning("the in-place update failed, applying whole", extra={"error": str(exc)})
                update = None
        if update is None:
            await self.shell.apply(ruleset)
        await self.machine.account_flows(config)
        self._config, self._runtime = config, runtime
        self._applied = Applied(config=effective, inputs=inputs, ruleset=ruleset)
        log.info(
            "updated the L4 ruleset in place" if update is not None else "applied the L4 ruleset",
            extra={
                "services": len(ruleset.services),
                "excluded": {
                    name: reasons(view.excluded)
                    for name, view in ruleset.services.items()
                    if view.excluded
                },
            },
        )

    @staticmethod
    def _in_place(
        running: Ruleset | None, ruleset: Ruleset, *, guarded: bool = True
    ) -> Json | None:
        """The in-place transaction from ``running`` to ``ruleset``, or None for the whole one.

        ``guarded`` (not for a runtime change, which trusts that our tables are there): the
        transaction starts with a guard (``table_guard``) that nft refuses when one of our
        tables is gone (deleted by hand), so that the caller falls back to the whole ruleset,
        which puts it back: the same as listing the tables first, without an ``nft`` more.
        """
        if running is None:
            return None
        update = in_place(running, ruleset)
        if update is None or not guarded:
            return update
        guard = table_guard(running)
        if guard is None:
            return None
        return {"nftables": [*guard, *update["nftables"]]}

    # -- conntrack ------------------------------------------------------------------------------

    async def _active(self, config: Configuration) -> dict[ServerRef, int]:
        return (await self._nat_flows(config))[0]

    async def _nat_flows(
        self, config: Configuration
    ) -> tuple[dict[ServerRef, int], dict[ServerRef, Traffic]]:
        """One read of conntrack: the open connections and the traffic of each NAT server."""
        nat = l4_services(config, Forwarding.nat)
        if not nat:
            return {}, {}
        async with self._ledger_lock:
            try:
                connections = await self.shell.connections()
            except EngineError:
                return {}, {}
            return active_connections(connections, nat), self._ledger.read(connections, nat)

    async def _count_connections(self, config: Configuration) -> None:
        """Least-connection weights from conntrack (the lock is held)."""
        nat = l4_services(config, Forwarding.nat)
        least = [vs for vs in nat if vs.scheduler.counts_connections]
        if not least:
            self._lc_weights = {}
            return
        active = active_connections(await self.shell.connections(), least)
        weights = {ref: runtime.weight for ref, runtime in self._runtime.items()}
        self._lc_weights = least_connection_weights(least, active, weights)


def reasons(excluded: Mapping[str, Exclusion]) -> dict[str, str]:
    """rs key -> why it is left out, as a person reads it (the status, the log)."""
    return {key: reason.value for key, reason in excluded.items()}
