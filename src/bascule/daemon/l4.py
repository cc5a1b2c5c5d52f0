"""The daemon's L4 side: Bascule's health checker wired to the nftables engine.

Where it sits: the engines may not import the health checker (they are siblings, see
docs/architecture.md), so the daemon connects them. ``L4Supervisor`` gives the checker its
targets (the ``mode: l4`` real servers of the current revision) after every reconcile and once
a second, turns each verdict flip into ``NftablesEngine.health_changed`` (the server leaves or
joins the maps at once), hands the engine the checker's last results for the status
(``HealthReport``), and calls the engine's ``tick`` (least-connection weights from conntrack,
DSR MAC addresses) once a second.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable

from bascule.engines.base import HealthReport
from bascule.engines.nftables.engine import NftablesEngine
from bascule.errors import BasculeError
from bascule.health.checker import HealthChecker, TargetRef, TargetStatus, targets_for
from bascule.health.results import CheckResult
from bascule.model import Configuration, Mode

log = logging.getLogger("bascule.daemon.l4")

TICK = 1.0  # seconds between two rounds of targets + engine.tick


def health_report(status: TargetStatus | None) -> HealthReport | None:
    """The checker's view of one target, in the engine's words (None: not a target)."""
    if status is None:
        return None
    last = status.last
    if last is None:
        # Known (an adopted server starts up) but not checked yet.
        return HealthReport(up=status.up, detail=f"{status.state}: waiting for its first check")
    return HealthReport(
        up=status.up,
        result="ok" if last.ok else "failed",
        code=last.code,
        duration_ms=round(last.duration_ms),
        detail=last.detail,
    )


class L4Supervisor:
    """Owns the health checker of the L4 services and feeds the nftables engine."""

    def __init__(self, engine: NftablesEngine, checker: HealthChecker | None = None) -> None:
        self.engine = engine
        self.checker = checker or HealthChecker(self._changed)
        engine.set_health_source(self.report)

    def report(self, ref: tuple[str, str]) -> HealthReport | None:
        return health_report(self.checker.status(TargetRef(vs=ref[0], server=ref[1])))

    async def _changed(self, ref: TargetRef, up: bool, result: CheckResult) -> None:
        await self.engine.health_changed((ref.vs, ref.server), up)

    async def adopted(self, config: Configuration) -> None:
        """The tables of a previous daemon serve ``config``: its servers start up, so that a
        restart drops none of them while their first checks run (results.initial_state).
        The next ``follow`` replaces these targets by the plain ones; the checker then keeps
        their verdict (results.carry_over)."""
        await self.checker.update(
            dataclasses.replace(target, initial_up=True) for target in targets_for(config)
        )

    async def follow(self, desired: Configuration) -> None:
        """Check the real servers of ``desired``'s L4 services."""
        await self.checker.update(targets_for(desired, modes=(Mode.l4,)))

    async def run(self, desired: Callable[[], Configuration]) -> None:
        """Once a second: targets from the current revision, then the engine's tick."""
        while True:
            await asyncio.sleep(TICK)
            try:
                await self.follow(desired())
                await self.engine.tick()
            except (BasculeError, OSError) as exc:
                log.error("L4 refresh failed", extra={"error": str(exc)})

    async def stop(self) -> None:
        await self.checker.stop()
