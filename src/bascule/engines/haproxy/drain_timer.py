"""Drain time: the sessions of a drained real server closed when its drain time runs out.

Where it sits: fed by the engine's runtime state changes (``execute``) and by what HAProxy
reports (``observe``); the deadlines are drains.py's ``DrainClock`` (pure), this is the task
that waits for them and sends ``shutdown sessions server`` through the shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bascule.engines.haproxy import observation, runtime
from bascule.engines.haproxy.installation import Installation
from bascule.engines.haproxy.servers import server_name
from bascule.engines.haproxy.view import proxy_name
from bascule.errors import EngineError
from bascule.model import Configuration, RealServerState
from bascule.reconcile.actions import SetState

log = logging.getLogger("bascule.haproxy")


class DrainTimer(Installation):
    """The task that closes drained servers' sessions (see the module's doc)."""

    def _time_drain(self, applied: Configuration | None, action: SetState) -> None:
        """A runtime state change: a drain starts its server's clock, anything else stops it."""
        pool = applied.pool(action.vs) if applied else None
        rs = pool.real_server(action.server) if pool else None
        if pool is None or rs is None:
            return
        key = (proxy_name(pool), server_name(rs))
        if action.state is RealServerState.drain:
            self._drains.drained(key, pool.drain_time, asyncio.get_running_loop().time())
        else:
            self._drains.undrained(key)
        self._wake_drain_timer()

    def _wake_drain_timer(self) -> None:
        if self._drains.next_deadline() is None and self._drain_timer is None:
            return
        if self._drain_timer is None or self._drain_timer.done():
            self._drain_timer = asyncio.create_task(self._close_drained(), name="drain-time")
        self._drains_changed.set()

    async def _close_drained(self) -> None:
        """Wait for the next deadline (or a change of them); close the sessions of each
        server whose drain time has run out and that HAProxy still reports drained."""
        loop = asyncio.get_running_loop()
        while True:
            self._drains_changed.clear()
            deadline = self._drains.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drains_changed.wait(), timeout)
            due = self._drains.due(loop.time())
            if not due:
                continue
            try:
                states = {(s.backend, s.server): s for s in await self.shell.show_servers_state()}
                drained = RealServerState.drain
                commands = [
                    runtime.shutdown_sessions(*key)
                    for key in due
                    if key in states and observation.admin_state(states[key]) is drained
                ]
                if commands:
                    await self.shell.runtime_many(commands)
            except (EngineError, OSError) as exc:
                log.warning("could not close drained servers' sessions", extra={"error": str(exc)})
                continue
            if commands:
                log.info("drain time over: sessions closed", extra={"commands": commands})
