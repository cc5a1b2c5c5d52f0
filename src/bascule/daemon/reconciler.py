"""The reconciler: converges the engines and the VIPs on a desired document, and records how.

Where it sits in the flow of a change: after a commit (daemon/changes.py) and every few
seconds from the repair loop (daemon/runner.py). It observes each engine, plans with the pure
planner (``reconcile/planner.py``: one ``Plan`` per engine on its share of the document, the
VIPs once, gathered in a ``FullPlan``) and executes: VIPs added first, then each engine's
actions in the daemon's order, then unused VIPs removed. Up to three passes, so that drift an
engine reports right after a reload is corrected at once. After a commit, the first pass is
the plan the change pipeline previewed under the same lock (``Planned``), not planned again;
when the engines ran the head as committed, that plan and the next passes leave alone the
engines whose share of the document the change did not touch (``plan``'s ``converged``): a
server added to an L4 service plans nftables alone. The repair loop plans every engine.

The outcome goes to the store's applied state: success makes the head the last good revision;
a failure keeps the previous last good one with the engine's message and converges on it, so
a half-applied change (the VIPs, one engine out of two) is undone and a daemon that starts on
a failing revision serves the last good one.

It owns the lock that serialises everything that changes the engines (changes, reconciles,
clearing persistence tables, deferred reloads), the document each engine runs (``running``),
and the parsed document of the newest revision (parsed once per revision: a revision never
changes).

Deferred reloads (``run_deferred_reloads``): an engine that applied a change at runtime and
makes it permanent with a reload later (``DefersReloads``: HAProxy's servers added at runtime)
says when that reload is due; the reconciler runs it then, under the lock, so a change that
arrives meanwhile waits for it and then applies as usual.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bascule.daemon.vips import FollowsDocument, VipManager
from bascule.engines.base import ChangesServers, DefersReloads, Engine, share_of
from bascule.errors import ApplyFailed, EngineError, InvalidConfiguration
from bascule.model import Configuration, parse_document
from bascule.reconcile.actions import Action, EnsureVip, RemoveVip, describe
from bascule.reconcile.planner import (
    FullPlan,
    Observed,
    Overrides,
    Plan,
    plan_engine,
    plan_reload,
    plan_vips,
)
from bascule.store.revisions import Revision, RevisionStore

log = logging.getLogger("bascule.service")

# A reload renders every weight and state; more passes correct any drift the engine reports
# afterwards (for instance a state restored from the state file).
PASSES = 3
# The longest the deferred reloads' loop sleeps between two looks at the engines.
DEFERRED_TICK = 0.5
DEFERRED_MIN_WAIT = 0.05

AfterReconcile = Callable[[Configuration], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class Planned:
    """A plan made under the lock, from what the engines ran (the change pipeline's preview):
    the document it converges on, the plan, and the ``converged`` document it was planned
    with (``Reconciler.plan``)."""

    desired: Configuration
    plan: FullPlan
    converged: Configuration | None


class Reconciler:
    """The engines and the VIPs, converged on the store's current revision."""

    def __init__(
        self,
        *,
        store: RevisionStore,
        engines: Sequence[Engine],
        vips: VipManager,
        after_reconcile: AfterReconcile | None = None,
        overrides: Callable[[], Overrides] | None = None,
    ) -> None:
        """``after_reconcile`` is awaited with the desired document after every reconcile
        (the daemon points the L4 health checker at its real servers). ``overrides`` gives
        the weights dynamic schedulers decided (daemon/dynamic.py): the planner keeps them."""
        if not engines:
            raise ValueError("the reconciler needs at least one engine")
        self.store = store
        self.engines = tuple(engines)
        self.vips = vips
        self.overrides = overrides or dict
        self.lock = asyncio.Lock()
        self._after_reconcile = after_reconcile
        self._running: dict[str, Configuration | None] = {e.name: None for e in self.engines}
        # Parsed documents by revision number: the head's, and the next one's while it is being
        # committed (the change pipeline tells it before the commit is visible, and a reader of
        # the head meanwhile, the L4 checker or the dynamic schedulers, must find the current
        # one rather than parse 10,000 servers on the event loop: issue 15).
        self._parsed: dict[int, Configuration] = {}

    # -- the desired and the running documents ------------------------------------------------

    def desired_of(self, head: Revision | None) -> Configuration:
        """The parsed document of ``head`` (validated once per revision: status() is polled
        by the WUI and the statistics, and would otherwise re-validate it every time)."""
        if head is None:
            return Configuration()
        known = self._parsed.get(head.number)
        if known is None:
            known = parse_document(head.document)
            self._keep(head.number, known)
        for older in [number for number in self._parsed if number < head.number]:
            del self._parsed[older]  # the head moved on: one document of 10,000 servers kept
        return known

    async def load_desired(self, head: Revision | None) -> Configuration:
        """``desired_of`` for the event loop: a revision not parsed yet is parsed in a worker
        thread (a large document takes a second or more to validate)."""
        if head is not None and head.number not in self._parsed:
            config = await asyncio.to_thread(parse_document, head.document)
            self._keep(head.number, config)
        return self.desired_of(head)

    def parsed(self, head: Revision) -> Configuration | None:
        """``head``'s parsed document if it is parsed already, else ``None``."""
        return self._parsed.get(head.number)

    def committed(self, number: int, config: Configuration) -> None:
        """Revision ``number`` was just committed from ``config``: no need to parse it again."""
        self._keep(number, config)

    def forget(self, number: int | None = None) -> None:
        """Revision ``number`` was not committed after all (``committed`` was told early);
        without one, every revision (the pair replaced the history after a fork: the same
        numbers now hold other documents)."""
        if number is None:
            self._parsed.clear()
        else:
            self._parsed.pop(number, None)

    def _keep(self, number: int, config: Configuration) -> None:
        self._parsed[number] = config
        for old in sorted(self._parsed)[:-2]:
            del self._parsed[old]

    def running(self, engine: str) -> Configuration | None:
        """The document ``engine``'s running state was built from (``None``: nothing yet)."""
        return self._running[engine]

    def adopt(self, engine: str, running: Configuration | None) -> None:
        """Tell the reconciler which document a running engine was started from."""
        self._running[engine] = running

    # -- deferred reloads ---------------------------------------------------------------------

    def reloads(self) -> int:
        """The reloads the engines that count them made so far (a change compares it before
        and after, to say honestly whether it reloaded)."""
        return sum(e.reloads for e in self.engines if isinstance(e, DefersReloads))

    def reload_pending(self) -> bool:
        """Whether an engine awaits a deferred reload."""
        return any(e.reload_in() is not None for e in self.engines if isinstance(e, DefersReloads))

    async def reload_deferred(self) -> None:
        """Each engine's deferred reload that is due: prepared without the lock, run under
        it (checked again there: a change may have come first and done it, or moved it)."""
        for engine in self.engines:
            if not isinstance(engine, DefersReloads):
                continue
            due = engine.reload_in()
            if due is None or due > 0:
                continue
            await engine.prepare_reload()
            async with self.lock:
                due = engine.reload_in()
                if due is not None and due <= 0:
                    await engine.reload_deferred(self._running[engine.name])

    async def run_deferred_reloads(self) -> None:
        """Forever: each deferred reload when it is due (the engines log their failures
        and try again later)."""
        while True:
            try:
                await self.reload_deferred()
            except (ApplyFailed, EngineError, OSError) as exc:
                log.error("deferred reload failed", extra={"error": str(exc)})
            waits = [
                due
                for e in self.engines
                if isinstance(e, DefersReloads) and (due := e.reload_in()) is not None
            ]
            await asyncio.sleep(min([DEFERRED_TICK, *(max(DEFERRED_MIN_WAIT, w) for w in waits)]))

    # -- planning -----------------------------------------------------------------------------

    async def plan(
        self, desired: Configuration, *, converged: Configuration | None = None
    ) -> FullPlan:
        """What converging on ``desired`` takes, from what each engine reports now.

        ``converged``: a document every engine runs as planned (the head, when its last
        apply succeeded: the change pipeline's case). An engine whose share of ``desired``
        is its share of ``converged`` then has nothing to do: it is neither observed nor
        planned, and its plan is empty (a server added to an L4 service plans nftables
        alone, not HAProxy's ``show servers state``: issue 15). Drift in such an engine is
        the repair loop's, which plans every engine."""
        # The planner is pure; on a large document it takes a noticeable time: in a worker
        # thread, so the event loop keeps serving meanwhile. One thread for what needs no
        # observation (a thread each cost a new server a millisecond under load), then one
        # per engine that must be observed.
        if isinstance(self.vips, FollowsDocument):
            self.vips.follow(desired)  # a paired node's VIPs are keepalived's
        running = [self._running[engine.name] for engine in self.engines]
        overrides = self.overrides()
        ensure, remove, known = await asyncio.to_thread(
            self._plan_unobserved, desired, converged, running, self.vips.owned(), overrides
        )
        per_engine: list[tuple[str, Plan]] = []
        for engine, applied, (share, engine_plan) in zip(self.engines, running, known, strict=True):
            if engine_plan is None:  # structurally the same: the engine says what runs
                observation = await engine.observe(applied, counters=False)
                observed = Observed(
                    applied=applied if observation.running else None,
                    servers=observation.runtime(),
                )
                engine_plan = await asyncio.to_thread(
                    plan_engine,
                    share,
                    observed,
                    max_weight=engine.max_weight,
                    overrides=overrides,
                )
            per_engine.append((engine.name, engine_plan))
        return FullPlan(ensure=ensure, engines=tuple(per_engine), remove=remove)

    def _plan_unobserved(
        self,
        desired: Configuration,
        converged: Configuration | None,
        running: Sequence[Configuration | None],
        vips: frozenset[str],
        overrides: Overrides,
    ) -> tuple[
        tuple[EnsureVip, ...], tuple[RemoveVip, ...], list[tuple[Configuration, Plan | None]]
    ]:
        """``plan``'s part known without observing the engines (pure; in a worker thread):
        the VIPs, and each engine's share with its plan when the share is ``converged``'s
        (empty) or its structure changed (``plan_reload``); ``None`` where the engine must be
        observed."""
        ensure, remove = plan_vips(desired, vips)
        plans: list[tuple[Configuration, Plan | None]] = []
        for engine, applied in zip(self.engines, running, strict=True):
            share = share_of(engine, desired)
            if converged is not None and share == share_of(engine, converged):
                plans.append((share, Plan(actions=())))
                continue
            # a reload is known without observing 10,000 servers
            changes = engine.server_changes if isinstance(engine, ChangesServers) else None
            reload = plan_reload(
                share,
                applied,
                server_changes=changes,
                max_weight=engine.max_weight,
                overrides=overrides,
            )
            plans.append((share, reload))
        return ensure, remove, plans

    # -- reconciling --------------------------------------------------------------------------

    async def reconcile(self, *, retry_failed: bool = True) -> tuple[bool, str]:
        """Converge the engines on the current revision; returns (ok, error message).

        The periodic repair loop passes ``retry_failed=False``: a revision the engines could
        not apply is not retried again and again (each failed attempt means a reload and a
        rollback); instead the loop keeps the last good revision running — it restarts a
        dead engine and repairs drift towards it — until a new change, a rollback or a
        restart of the daemon tries the current revision again.
        """
        if not retry_failed and await self._converged():
            return True, ""
        async with self.lock:
            if not retry_failed:
                head, applied = self.store.head_number(), self.store.applied()
                if applied is not None and applied.last_attempt == head and not applied.ok:
                    if applied.last_good is not None:
                        await self._converge_on_last_good(applied.last_good)
                    return False, applied.message
            return await self.reconcile_locked()

    async def _converged(self) -> bool:
        """Whether the engines run the head as it was applied and their plan is empty,
        found without the lock: the repair loop's check of a large configuration takes a
        second or more, and changes (a weight: milliseconds) no longer wait behind it. What
        the check finds to do is done under the lock, planned again there."""
        if self.lock.locked():
            return False
        head, applied = self.store.head(), self.store.applied()
        if head is None or applied is None or not applied.ok or applied.last_good != head.number:
            return False
        return (await self.plan(await self.load_desired(head))).empty

    async def reconcile_locked(self, *, planned: Planned | None = None) -> tuple[bool, str]:
        """``reconcile`` for a caller that holds ``lock`` (the change pipeline, after a
        commit); the ``after_reconcile`` hook runs whatever the outcome. ``planned``: the
        change pipeline's preview; when the head is its document, the first pass executes
        it, and the next ones leave alone the engines it left alone."""
        head = self.store.head()
        desired = await self.load_desired(head)
        if planned is not None and planned.desired is not desired:
            planned = None
        try:
            return await self._reconcile_on(head, desired, planned)
        finally:
            if self._after_reconcile is not None:
                await self._after_reconcile(desired)

    async def execute_runtime(
        self,
        head: Revision,
        desired: Configuration,
        plans: Sequence[tuple[Engine, Sequence[Action]]],
    ) -> tuple[bool, str]:
        """Converge on ``head`` (``desired``) by each engine's runtime ``plans`` alone: the
        operate path (daemon/operations.py) planned the pools it touched, on engines that
        ran the previous head. For a caller that holds ``lock``. A command that fails is
        followed by a whole reconcile, which records and reports it as any failed apply; the
        repair loop corrects any drift the plans did not see."""
        try:
            for engine, actions in plans:
                if actions:
                    log.info("executing plan", extra={"actions": [describe(a) for a in actions]})
                    await engine.execute(actions, self._running[engine.name])
        except (ApplyFailed, EngineError, OSError) as exc:
            log.warning("runtime commands failed, reconciling", extra={"error": str(exc)})
            return await self.reconcile_locked()
        try:
            self.store.record_applied(head.number, ok=True, message="")
        finally:
            if self._after_reconcile is not None:
                await self._after_reconcile(desired)
        return True, ""

    async def _reconcile_on(
        self, head: Revision | None, desired: Configuration, planned: Planned | None = None
    ) -> tuple[bool, str]:
        try:
            await self._converge(desired, planned)
        except (ApplyFailed, EngineError, OSError) as exc:
            message = str(exc)
            log.error("apply failed", extra={"error": message})
            if head is not None:
                self.store.record_applied(head.number, ok=False, message=message)
                # Nothing may be running at all (a daemon restarted on a revision HAProxy
                # refuses): make sure the last good revision serves meanwhile.
                applied = self.store.applied()
                if applied is not None and applied.last_good is not None:
                    await self._converge_on_last_good(applied.last_good)
            return False, message
        if head is not None:
            applied = self.store.applied()
            if applied is None or applied.last_attempt != head.number or not applied.ok:
                self.store.record_applied(head.number, ok=True, message="")
        return True, ""

    async def _converge_on_last_good(self, number: int) -> None:
        try:
            last_good = await asyncio.to_thread(parse_document, self.store.get(number).document)
            await self._converge(last_good)
        except (ApplyFailed, EngineError, OSError, InvalidConfiguration) as exc:
            log.error("could not restore the last good revision", extra={"error": str(exc)})

    async def _converge(self, desired: Configuration, planned: Planned | None = None) -> None:
        """Up to ``PASSES`` plans of ``desired`` executed; ``planned``: the first one, known."""
        converged = planned.converged if planned is not None else None
        for attempt in range(PASSES):
            if attempt == 0 and planned is not None:
                current = planned.plan
            else:
                current = await self.plan(desired, converged=converged)
            if current.empty:
                break
            log.info("executing plan", extra={"actions": list(current.descriptions())})
            await self._execute(current, desired)
            if current.settles:  # real servers changed at runtime: 10,000 not observed again
                break

    async def _execute(self, plan: FullPlan, desired: Configuration) -> None:
        engines = {engine.name: engine for engine in self.engines}
        for ensure in plan.ensure:
            await self.vips.ensure(ensure.address, ensure.interface)
        for name, engine_plan in plan.engines:
            if engine_plan.empty:
                continue
            engine = engines[name]
            await engine.execute(engine_plan.actions, self._running[name])
            if engine_plan.replaces:
                self._running[name] = share_of(engine, desired)
        for remove in plan.remove:
            await self.vips.remove(remove.address)
