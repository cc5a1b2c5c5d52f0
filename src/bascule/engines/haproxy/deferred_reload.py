"""The deferred reload: servers added at runtime made ordinary servers by a later reload.

Where it sits: between the engine's runtime edits (runtime_servers.py), which call for it,
and the daemon's reconciler, which runs it under its lock when due (``reload_in``,
``reload_deferred``); the timing itself is ``dynamic.PendingReload``, pure.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from bascule.engines.haproxy.dynamic import PendingReload
from bascule.engines.haproxy.installation import Installation, write_private
from bascule.errors import EngineError
from bascule.model import Configuration
from bascule.reconcile.planner import structure_changed

log = logging.getLogger("bascule.haproxy")


class DeferredReload(Installation):
    """The deferred reload awaited, checked ahead and run (see the module's doc)."""

    def pending_reload(self) -> dict[str, Any] | None:
        """The deferred reload awaited, for the status: in how many seconds, since when,
        and why the last attempt failed; None when none is."""
        pending = self._pending
        if pending is None:
            return None
        now = time.monotonic()
        return {
            "due_in_s": round(max(0.0, pending.due - now), 3),
            "pending_for_s": round(now - pending.first, 3),
            "error": self._pending_error,
        }

    def reload_in(self) -> float | None:
        """Seconds until the deferred reload is due (0 or less: now); None: none pending."""
        return None if self._pending is None else self._pending.due - time.monotonic()

    async def prepare_reload(self) -> None:
        """Check the text the deferred reload installs, ahead of it and without the
        reconciler's lock (``haproxy -c`` of the whole text, 10,000 servers at scale: the
        reload, under the lock, then finds it accepted; a change in between makes it check
        again)."""
        installed = self._installed
        if self._pending is None or installed is None:
            return
        with contextlib.suppress(EngineError):  # the reload checks it again and says why
            await self.shell.check(installed.text)

    async def reload_deferred(self, running: Configuration | None) -> bool:
        """The deferred reload, for a caller that holds the reconciler's lock: HAProxy
        reloads the configuration it runs (``running``, the reconciler's record of it), as
        any reload does (the server state saved and read back: weights, drain, maintenance,
        health), so the servers added at runtime become ordinary ones. Whether it reloaded;
        a failure is logged, shown in the status, and tried again ``reload_max_delay`` later.
        """
        pending = self._pending
        if pending is None:
            return False
        if running is None or not await self.shell.is_running():
            # nothing to make permanent: a start (the repair loop's) reads the whole file
            self._settled()
            return False
        installed = self._installed
        # the text the worker runs, when this engine gave it: not rendered again
        same = (
            installed is not None
            and installed.globals == self.globals
            and (installed.config is running or not structure_changed(installed.config, running))
        )
        try:
            await self._reload(running, running, text=installed if same else None)
        except (EngineError, OSError) as exc:
            self._pending = pending.retried(time.monotonic())
            self._pending_error = str(exc)
            log.error(
                "the deferred reload failed: servers added at runtime stay so",
                extra={"error": str(exc), "retry_in_s": self.reload_max_delay},
            )
            return False
        log.info(
            "deferred reload done: servers added at runtime are ordinary servers",
            extra={"pending_for_s": round(time.monotonic() - pending.first, 3)},
        )
        return True

    def _defer_reload(self) -> None:
        """Servers are about to be added at runtime: a reload is due ``reload_delay`` from
        now. The marker file is written first, so a daemon that dies before the reload
        leaves it to the next one (``adopt``)."""
        now = time.monotonic()
        if self._pending is None:
            write_private(self.paths.reload_pending, f"{time.time():.3f}\n")
            self._pending = PendingReload.starting(
                now, delay=self.reload_delay, max_delay=self.reload_max_delay
            )
        else:
            self._pending = self._pending.changed(now)
