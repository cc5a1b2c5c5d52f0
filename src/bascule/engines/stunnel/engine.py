"""The STARTTLS front as the daemon sees it: the Engine contract over stunnel.

HAProxy cannot speak a protocol's greeting and STARTTLS before TLS (it has no such dialogue);
stunnel can, in server mode, for SMTP, IMAP and POP3 (``protocol = ...``). So a ``type:
starttls`` service has two engines, in the daemon's order::

    client --STARTTLS--> stunnel (VIP:port) --plain--> HAProxy (loopback relay, scheduler,
                                                        health checks) --plain--> real servers

This engine runs the front: its share of the document is the starttls services (``share``,
without their real servers, which are HAProxy's), rendered by view.py and render.py, checked,
started, reloaded (SIGHUP) and stopped by the shell; a previous daemon's stunnel is adopted
from its pid file. A certificate of the store that a starttls service serves is swapped by a
SIGHUP (stunnel reads its files again; sessions in flight continue).

It has no real servers and no counters of its own: HAProxy's relay listener reports them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bascule.engines.base import EngineObservation
from bascule.engines.stunnel.render import render
from bascule.engines.stunnel.shell import StunnelPaths, StunnelShell
from bascule.engines.stunnel.view import StunnelGlobals, build_view, share
from bascule.errors import EngineError, EngineRejected
from bascule.model import Configuration, Mode
from bascule.reconcile.actions import Action, ReplaceConfig

log = logging.getLogger("bascule.stunnel")


class StunnelEngine:
    """Engine contract implementation for the STARTTLS front (see engines/base.py)."""

    name = "stunnel"
    mode = Mode.l7
    max_weight = 256  # it has no weights: the HAProxy relay schedules

    def __init__(self, run_dir: Path, *, binary: str, certificates_dir: Path) -> None:
        self.paths = StunnelPaths.under(run_dir)
        self.shell = StunnelShell(self.paths, binary=binary)
        self.globals = StunnelGlobals(
            certificates_dir=str(certificates_dir), pid_file=str(self.paths.pid_file)
        )
        self._version: str | None = None

    def share(self, config: Configuration) -> Configuration:
        """The starttls services of ``config`` (see ``view.share``)."""
        return share(config)

    def render(self, config: Configuration, *, check: bool = False) -> str:
        return render(build_view(config, self.globals, check=check))

    async def check(self, config: Configuration) -> None:
        if not any(vs.enabled for vs in config.virtual_services):
            return
        try:
            text = self.render(config, check=True)
        except ValueError as exc:
            raise EngineRejected("stunnel", str(exc)) from exc
        await self.shell.check(text)

    async def adopt(self) -> bool:
        adopted = await self.shell.adopt()
        if adopted:
            log.info("adopted the running stunnel", extra={"pid": self.shell.pid()})
        return adopted

    async def execute(self, actions: Sequence[Action], applied: Configuration | None) -> None:
        for action in actions:
            if not isinstance(action, ReplaceConfig):
                continue  # no weights or states here: the relay's HAProxy takes them
            config = action.config
            if not any(vs.enabled for vs in config.virtual_services):
                await self.shell.stop(grace=0)
                continue
            await self.shell.apply(self.render(config))

    async def observe(
        self, applied: Configuration | None, *, counters: bool = True
    ) -> EngineObservation:
        if applied is not None and not any(vs.enabled for vs in applied.virtual_services):
            return EngineObservation(running=True)  # nothing to run, nothing missing
        if not await self.shell.is_running():
            return EngineObservation(running=False, detail="stunnel (STARTTLS) is not running")
        return EngineObservation(running=True)

    async def stop(self, *, grace: float) -> None:
        await self.shell.stop(grace=grace)

    async def info(self) -> dict[str, Any]:
        pid = self.shell.pid()
        if self._version is None:  # asked once: the status is polled
            try:
                self._version = await self.shell.version()
            except EngineError as exc:  # not installed: only starttls services need it
                return {"version": f"unavailable ({exc})", "running": False, "pid": None}
        version = self._version
        return {
            "version": version,
            "running": pid is not None,
            "pid": pid,
            "config": str(self.paths.config),
        }

    async def certificate_changed(self, applied: Configuration | None, name: str) -> bool:
        """A starttls service serves ``name``: SIGHUP, and stunnel reads the file again."""
        if applied is None or self.shell.pid() is None:
            return False
        services = applied.virtual_services
        if not any(vs.tls is not None and name in vs.tls.certificates for vs in services):
            return False
        await self.shell.reload()
        return True
