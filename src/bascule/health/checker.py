"""The health checker: every real server of the L4 services probed on its own interval.

Where it sits: the daemon hands the checker its targets (``targets_for(configuration)``) after
every change and gets ``on_change(ref, up, result)`` whenever a real server's verdict flips;
it then takes the server out of (or puts it back into) the engine's maps. The checker keeps
the last result of every target for ``bascule status``.

One asyncio task per target: a slow or black-holed server delays nobody else, and a check
never overlaps the previous one of the same target (``timeout <= interval``, and the next
check starts ``interval`` after the previous one started, or at once if it overran). The
first check of a new target waits a random fraction of its interval so that a thousand
targets do not all fire together.

The clock, the sleep, the random source and the probe are injected: tests drive the whole
checker with a fake clock and fake probes, deterministically, without a network.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from bascule.health.probes import Endpoint, ProbeFunction, endpoint_for, run_probe
from bascule.health.results import CheckResult, CheckState, advance, carry_over, initial_state
from bascule.model.capabilities import CheckType, Mode
from bascule.model.check import HealthCheck
from bascule.model.document import Configuration
from bascule.model.real_server import RealServerState

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, order=True)
class TargetRef:
    """Which real server of which virtual service: ``vs`` name and server key."""

    vs: str
    server: str

    def __str__(self) -> str:
        return f"{self.vs}/{self.server}"


@dataclass(frozen=True, kw_only=True)
class Target:
    """One real server to check: who it is, how to check it, where the probe goes.

    ``initial_up`` starts it up rather than down (results.initial_state), for a server that
    is known to be serving already.
    """

    ref: TargetRef
    check: HealthCheck
    endpoint: Endpoint
    initial_up: bool = False


@dataclass(frozen=True, kw_only=True)
class TargetStatus:
    """What the checker knows of a target, for the status pages."""

    ref: TargetRef
    state: CheckState
    last: CheckResult | None
    checks: int  # results seen since the target was added

    @property
    def up(self) -> bool:
        return self.state.up


OnChange = Callable[[TargetRef, bool, CheckResult], Awaitable[None]]


def targets_for(config: Configuration, *, modes: Iterable[Mode] = (Mode.l4,)) -> tuple[Target, ...]:
    """The targets of every enabled, checked service in ``modes``, sorted by ref.

    Disabled services and disabled real servers are not checked; a draining server is (it
    may come back to ``enabled``, and its status still shows).
    """
    wanted = frozenset(modes)
    targets = [
        Target(
            ref=TargetRef(vs=vs.name, server=rs.key),
            check=vs.check,
            endpoint=endpoint_for(vs, rs),
        )
        for vs in config.virtual_services
        if vs.mode in wanted and vs.enabled and vs.check.type is not CheckType.none
        for rs in vs.real_servers
        if rs.state is not RealServerState.disabled
    ]
    return tuple(sorted(targets, key=lambda target: target.ref))


@dataclass
class _Watch:
    """The mutable bookkeeping of one target (private: status() hands out frozen copies)."""

    target: Target
    state: CheckState
    last: CheckResult | None = None
    checks: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class HealthChecker:
    """Runs the checks of many targets concurrently and reports flips through ``on_change``.

    ``on_change`` is awaited inside the flipping target's own task, after the new state is
    recorded (so ``status()`` already shows it); an exception it raises is logged and the
    checks go on. Flips of different targets may be reported concurrently.
    """

    def __init__(
        self,
        on_change: OnChange,
        *,
        probe: ProbeFunction = run_probe,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._on_change = on_change
        self._probe = probe
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter  # a fraction in [0, 1) of the interval before the first check
        self._watches: dict[TargetRef, _Watch] = {}
        # ``update`` awaits the cancelled checks: a second caller (the once-a-second follow
        # and an apply's) must wait for the first, or both would remove the same watches
        self._updating = asyncio.Lock()

    # -- the target set --------------------------------------------------------------------

    async def update(self, targets: Iterable[Target]) -> None:
        """Make ``targets`` the checked set.

        A target equal to one already checked keeps its task and state. A target whose check
        or endpoint changed keeps its verdict (results.carry_over) and starts checking anew;
        a new one starts from ``results.initial_state``; a target no longer listed is
        stopped and forgotten.
        """
        wanted = {target.ref: target for target in targets}
        async with self._updating:
            await self._update(wanted)

    async def _update(self, wanted: dict[TargetRef, Target]) -> None:
        stale = [
            watch
            for ref, watch in self._watches.items()
            if ref not in wanted or wanted[ref] != watch.target
        ]
        await _cancel([watch.task for watch in stale if watch.task is not None])
        for watch in stale:
            del self._watches[watch.target.ref]
        for ref, target in wanted.items():
            if ref in self._watches:
                continue
            old = next((watch for watch in stale if watch.target.ref == ref), None)
            if old is not None:
                watch = _Watch(target=target, state=carry_over(old.state), last=old.last)
            else:
                watch = _Watch(target=target, state=initial_state(up=target.initial_up))
            watch.task = asyncio.create_task(self._watch(watch), name=f"health {ref}")
            self._watches[ref] = watch

    async def stop(self) -> None:
        """Stop every check and forget every target."""
        async with self._updating:
            tasks = [watch.task for watch in self._watches.values() if watch.task is not None]
            self._watches.clear()
            await _cancel(tasks)

    # -- what it knows ---------------------------------------------------------------------

    def status(self, ref: TargetRef) -> TargetStatus | None:
        watch = self._watches.get(ref)
        return None if watch is None else _status(watch)

    def statuses(self) -> Mapping[TargetRef, TargetStatus]:
        return {ref: _status(watch) for ref, watch in sorted(self._watches.items())}

    def is_up(self, ref: TargetRef) -> bool:
        """The verdict on ``ref``; False for a target the checker does not know."""
        watch = self._watches.get(ref)
        return watch is not None and watch.state.up

    # -- one target's loop -----------------------------------------------------------------

    async def _watch(self, watch: _Watch) -> None:
        interval = float(watch.target.check.interval)
        await self._sleep(self._jitter() * interval)
        while True:
            started = self._clock()
            result = await self._check(watch.target)
            await self._record(watch, result)
            await self._sleep(max(0.0, started + interval - self._clock()))

    async def _check(self, target: Target) -> CheckResult:
        try:
            return await self._probe(target.check, target.endpoint)
        except Exception as exc:  # a probe bug must not stop the checks of this target
            log.exception("health probe of %s failed", target.ref)
            return CheckResult(
                ok=False,
                code=None,
                detail=f"probe error: {type(exc).__name__}: {exc}",
                duration_ms=0.0,
                checked_at=time.time(),
            )

    async def _record(self, watch: _Watch, result: CheckResult) -> None:
        before = watch.state
        watch.state = advance(before, result, watch.target.check)
        watch.last = result
        watch.checks += 1
        if watch.state.up == before.up:
            return
        ref = watch.target.ref
        log.info("real server %s is %s: %s", ref, "up" if watch.state.up else "down", result.detail)
        try:
            await self._on_change(ref, watch.state.up, result)
        except Exception:
            log.exception("on_change for %s failed", ref)


def _status(watch: _Watch) -> TargetStatus:
    return TargetStatus(
        ref=watch.target.ref, state=watch.state, last=watch.last, checks=watch.checks
    )


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        # gather, not a suppressed await: a cancellation of the caller itself still propagates
        await asyncio.gather(*tasks, return_exceptions=True)
