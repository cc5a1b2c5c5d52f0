"""The HAProxy engine as the daemon sees it: the Engine contract over view, render, runtime.

Sits between the daemon's executor and the HAProxy shell (shell.py): it turns a desired
``Configuration`` into config text (view.py, render.py), a plan's runtime actions into
runtime-API commands (runtime.py), and HAProxy's own reports (``show servers state``,
``show stat``) back into observations keyed by virtual service and real server.

``HaproxyEngine`` is made of one part per noun, each in its module: ``Installation``
(installation.py: the engine's state, a configuration prepared, written and reloaded),
``DeferredReload`` (deferred_reload.py), ``RuntimeServers`` (runtime_servers.py: real servers
added and removed without a reload), ``DrainTimer`` (drain_timer.py), ``StickTables``
(stick_tables.py: persistence entries and client loads) and ``RuntimeFiles``
(runtime_files.py: certificates, ACME answers and cache generations swapped in); listeners.py
tries a configuration's binds before a reload. What stays here is the contract's own
methods: check, adopt, info, execute, observe, stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

from bascule.engines.base import EngineObservation
from bascule.engines.haproxy import observation, runtime, workers
from bascule.engines.haproxy.drain_timer import DrainTimer
from bascule.engines.haproxy.dynamic import PendingReload
from bascule.engines.haproxy.listeners import unbindable_listeners
from bascule.engines.haproxy.runtime_files import RuntimeFiles
from bascule.engines.haproxy.runtime_servers import RuntimeServers
from bascule.engines.haproxy.servers import MAX_WEIGHT, server_name
from bascule.engines.haproxy.stick_tables import StickTables
from bascule.engines.haproxy.view import proxy_name
from bascule.errors import EngineError, EngineRejected
from bascule.model import Configuration, Mode, RealServerState
from bascule.reconcile.actions import Action, ChangeServers, ReplaceConfig, SetState, SetWeight

log = logging.getLogger("bascule.haproxy")


ADMIN_STATE = {
    RealServerState.enabled: runtime.AdminState.READY,
    RealServerState.drain: runtime.AdminState.DRAIN,
    RealServerState.disabled: runtime.AdminState.MAINT,
}


class HaproxyEngine(RuntimeServers, DrainTimer, StickTables, RuntimeFiles):
    """Engine contract implementation for HAProxy (see engines/base.py)."""

    name = "haproxy"
    mode = Mode.l7
    max_weight = MAX_WEIGHT

    async def remote_peers(self) -> dict[str, str]:
        """Each remote peer's last status as HAProxy's ``show peers`` says it (``ESTA``:
        connected, the tables flow); empty when HAProxy does not run or has none."""
        try:
            return runtime.remote_peers(await self.shell.runtime("show peers"))
        except EngineError:
            return {}

    async def check(self, config: Configuration) -> None:
        # Rendering a large configuration takes a second: in a worker thread, off the loop.
        await self.shell.check(await asyncio.to_thread(self._prepare, config))
        busy = await asyncio.to_thread(unbindable_listeners, config)
        if busy:
            raise EngineRejected(
                "haproxy",
                "; ".join(f"cannot bind {where}: {why}" for where, why in busy)
                + " (another program holds it; HAProxy could not listen there)",
            )

    async def adopt(self) -> bool:
        adopted = await self.shell.adopt()
        if not adopted:
            self.paths.reload_pending.unlink(missing_ok=True)  # a start reads the whole file
        if adopted:
            log.info("adopted the running HAProxy", extra={"pids": await self.worker_pids()})
            if self.paths.reload_pending.exists():
                # the previous daemon added servers at runtime and died before their reload
                self._pending = PendingReload.starting(
                    time.monotonic(), delay=self.reload_delay, max_delay=self.reload_max_delay
                )
                log.info(
                    "servers added at runtime by the previous daemon: reload deferred",
                    extra={"due_in_s": self.reload_delay},
                )
            for number in self.shell.missing_inherited():
                # e.g. a master started by a version that sent request logs to a socket: its
                # reloads keep what it was started with, so only its restart gives it the pipe
                log.warning(
                    "the running HAProxy does not hold the request log pipe: request logs "
                    "are lost until HAProxy is restarted (`bascule stop --data-plane`, then "
                    "`bascule run`)",
                    extra={"descriptor": number},
                )
        return adopted

    async def worker_pids(self) -> list[int]:
        return await self.shell.worker_pids()

    async def info(self) -> dict[str, Any]:
        running = await self.shell.is_running()
        if self._version is None:  # `haproxy -v` once, not a process on every status read
            self._version = await self.shell.version()
        info: dict[str, Any] = {
            "version": self._version,
            "running": running,
            "worker_pids": await self.shell.worker_pids() if running else [],
            "config": str(self.paths.config),
            # each service's cache, as the last full observe read it (HAProxy's counters
            # start again from zero when it reloads)
            "caches": dict(self._caches),
            "reload_pending": self.pending_reload(),
        }
        if running:
            # the effective limits, as the worker reports them (descriptors.py sized maxconn)
            with contextlib.suppress(EngineError):
                limits = workers.parse_limits(await self.shell.runtime(workers.SHOW_INFO))
                info["limits"] = dataclasses.asdict(limits)
        return info

    async def execute(self, actions: Sequence[Action], applied: Configuration | None) -> None:
        commands: list[str] = []
        for action in actions:
            if isinstance(action, ReplaceConfig | ChangeServers):
                await self._flush(commands)
                # a change of real servers the worker refused reloads, as any other change
                if isinstance(action, ChangeServers) and await self._edit_servers(
                    applied, action.config
                ):
                    applied = action.config
                    continue
                await self._reload(action.config, applied)
                applied = action.config
            elif isinstance(action, SetWeight):
                backend, server = _names(applied, action.vs, action.server)
                commands.append(runtime.set_weight(backend, server, action.weight))
            elif isinstance(action, SetState):
                backend, server = _names(applied, action.vs, action.server)
                commands.append(runtime.set_state(backend, server, ADMIN_STATE[action.state]))
                self._time_drain(applied, action)
        await self._flush(commands)

    async def _flush(self, commands: list[str]) -> None:
        if commands:
            await self.shell.runtime_many(list(commands))
            commands.clear()

    async def observe(
        self, applied: Configuration | None, *, counters: bool = True
    ) -> EngineObservation:
        if not await self.shell.is_running():
            return EngineObservation(running=False, detail="HAProxy is not running")
        if applied is None:
            return EngineObservation(running=True)
        index = self._server_index(applied)
        servers_state = await self.shell.runtime("show servers state")
        # Planning needs runtime weights and states only; "show stat" (health, counters) is
        # the costly read on a large configuration.
        stat = await self.shell.runtime("show stat") if counters else None
        # 10,000 servers' rows: read in a worker thread, as their parse always was
        seen = await asyncio.to_thread(observation.observed, index, servers_state, stat)
        # What HAProxy reports: a server drained by a reload or before a restart of the
        # daemon starts its clock now; one that is no longer drained stops it.
        self._drains.seen(seen.drained, asyncio.get_running_loop().time())
        self._wake_drain_timer()
        if counters:
            self._caches = seen.caches
        return seen.observation

    def _server_index(self, applied: Configuration) -> observation.ServerIndex:
        """The index of ``applied``'s servers (observation.py), kept for the running
        document (10,000 servers are observed every few seconds: issue 15)."""
        kept = self._index
        if kept is not None and kept[0] is applied:
            return kept[1]
        index = observation.server_index(applied)
        self._index = (applied, index)
        return index

    async def stop(self, *, grace: float) -> None:
        await self.shell.stop(grace=grace)


def _names(applied: Configuration | None, vs_name: str, key: str) -> tuple[str, str]:
    vs = applied.pool(vs_name) if applied else None
    rs = vs.real_server(key) if vs else None
    if vs is None or rs is None:
        raise EngineError(f"HAProxy runs no real server {key} in {vs_name}")
    return proxy_name(vs), server_name(rs)
