"""The HA pair's VRRP as the daemon sees it: the Engine contract over keepalived.

A paired node (a document with ``high_availability``) runs keepalived, which holds the VIPs
of every service while the node is the active and hands them to the peer when it fails; a
single node runs none (its VIPs are the daemon's, daemon/vips.py), nor does a pair without
a VIP yet (keepalived refuses a virtual router with none). The engine's share of a
document is the pair and the VIPs (``view.share``): a change of real servers does not reload
it. It renders with the addresses this machine holds (each node finds itself in
``nodes``), checks with ``keepalived -t``, starts keepalived or makes it re-read its file
(SIGHUP: no failover), adopts the one a previous daemon left from its pid file, and stops it
(which hands the VIPs to the peer at once).

It comes first in the daemon's order: it lets the node bind VIPs it does not hold before
HAProxy starts on them (shell.py). It has no real servers: ``observe`` says whether
keepalived runs when it should, ``vrrp`` what VRRP state it is in.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bascule.engines.base import EngineObservation
from bascule.engines.keepalived.render import render
from bascule.engines.keepalived.shell import KeepalivedPaths, KeepalivedShell
from bascule.engines.keepalived.view import (
    KeepalivedGlobals,
    build_view,
    runs_keepalived,
    share,
)
from bascule.errors import EngineError, EngineRejected
from bascule.model import Configuration, Mode
from bascule.net.processes import alive
from bascule.net.shell import Ip
from bascule.reconcile.actions import Action, ReplaceConfig

log = logging.getLogger("bascule.keepalived")

AddressSource = Callable[[], Awaitable[frozenset[str]]]
"""The addresses this machine holds (``ip address``), to find which node it is."""


async def machine_addresses() -> frozenset[str]:
    listed = await Ip().addresses()
    return frozenset(str(a.network.ip) for a in listed.addresses)


@dataclass(frozen=True, kw_only=True)
class TrackedProcess:
    """A process the active needs (the daemon, HAProxy's master), by its pid file."""

    name: str
    pid_file: Path

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if alive(pid) else None


@dataclass(frozen=True, kw_only=True)
class VrrpStatus:
    """What ``bascule ha status`` shows of VRRP on this node."""

    running: bool
    state: str  # MASTER, BACKUP, FAULT, or "unknown" before keepalived says
    priority: int | None
    standby: bool  # ``bascule ha standby`` holds this node back
    failed: list[str]  # the needed processes that do not run (the node is held back)


class KeepalivedEngine:
    """Engine contract implementation for the pair's VRRP (see engines/base.py)."""

    name = "keepalived"
    mode = Mode.l7  # unused: its share is chosen by ``share`` (SelectsServices)
    max_weight = 256  # it has no weights

    def __init__(
        self,
        run_dir: Path,
        *,
        binary: str = "keepalived",
        tracked: Sequence[TrackedProcess] = (),
        addresses: AddressSource = machine_addresses,
    ) -> None:
        self.paths = KeepalivedPaths.under(run_dir)
        self.shell = KeepalivedShell(self.paths, binary=binary)
        self.globals = KeepalivedGlobals(
            notify_script=str(self.paths.notify_script),
            alive_file=str(self.paths.alive_file),
            standby_file=str(self.paths.standby_file),
        )
        self.tracked = tuple(tracked)
        self._addresses = addresses
        self._version: str | None = None
        self._needed = False  # the applied document runs keepalived

    async def addresses(self) -> frozenset[str]:
        """The addresses this machine holds now."""
        return await self._addresses()

    def share(self, config: Configuration) -> Configuration:
        """The pair and the VIPs of ``config`` (see ``view.share``)."""
        return share(config)

    async def render(self, config: Configuration) -> str:
        return render(build_view(config, self.globals, await self._addresses()))

    async def check(self, config: Configuration) -> None:
        if not runs_keepalived(config):
            return
        try:
            text = await self.render(share(config))
        except ValueError as exc:
            raise EngineRejected(self.name, str(exc)) from exc
        await self.shell.check(text)

    async def adopt(self) -> bool:
        adopted = await self.shell.adopt()
        if adopted:
            log.info("adopted the running keepalived", extra={"pid": self.shell.pid()})
        return adopted

    async def execute(self, actions: Sequence[Action], applied: Configuration | None) -> None:
        for action in actions:
            if not isinstance(action, ReplaceConfig):
                continue
            self._needed = runs_keepalived(action.config)
            if not self._needed:
                await self.shell.stop()
                continue
            try:
                text = await self.render(action.config)
            except ValueError as exc:
                raise EngineError(f"keepalived: {exc}") from exc
            await self.shell.apply(text)
            self._watch()

    async def observe(
        self, applied: Configuration | None, *, counters: bool = True
    ) -> EngineObservation:
        if applied is None:
            return EngineObservation(running=False, detail="keepalived: nothing applied yet")
        if not runs_keepalived(applied):
            return EngineObservation(running=True)  # a single node, or no VIP yet
        if self.shell.pid() is None:
            return EngineObservation(running=False, detail="keepalived (VRRP) is not running")
        self._watch()
        return EngineObservation(running=True)

    def _watch(self) -> None:
        """The sentinel watches the tracked processes; while one is missing (HAProxy being
        restarted), the node is held back from serving."""
        pids = [process.pid() for process in self.tracked]
        self.shell.watch(None if None in pids else [pid for pid in pids if pid is not None])

    def vrrp(self) -> VrrpStatus:
        running = self.shell.pid() is not None
        state = self.shell.state() if running else None
        return VrrpStatus(
            running=running,
            state=state[0] if state else ("unknown" if running else "stopped"),
            priority=state[1] if state else None,
            standby=self.shell.standby(),
            failed=[p.name for p in self.tracked if p.pid() is None],
        )

    def set_standby(self, standby: bool) -> None:
        """Hold this node in FAULT (``True``: the peer takes the VIPs) or release it."""
        self.shell.set_standby(standby)

    async def stop(self, *, grace: float) -> None:
        await self.shell.stop(grace=min(grace, 5.0))

    async def info(self) -> dict[str, Any]:
        if self._version is None:
            try:
                self._version = await self.shell.version()
            except EngineError as exc:  # not installed: only a pair needs it
                return {
                    "version": f"unavailable ({exc})",
                    "running": False,
                    "idle": not self._needed,
                    "pid": None,
                }
        vrrp = self.vrrp()
        return {
            "version": self._version,
            "running": vrrp.running,
            "idle": not self._needed and not vrrp.running,  # a single node: nothing to run
            "pid": self.shell.pid(),
            "state": vrrp.state,
            "config": str(self.paths.config),
        }
