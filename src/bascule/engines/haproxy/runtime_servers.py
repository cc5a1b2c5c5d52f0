"""Real servers added and removed at runtime (``add server``/``del server``), no reload.

Where it sits: the engine's answer to the planner's ``ChangeServers`` (``server_changes``)
and its execution: the edits are decided by dynamic.py (pure) from the views of each changed
service, sent through the shell, and the configuration file is rewritten to match by
splicing the changed services into the installed text; servers added so call for a deferred
reload (deferred_reload.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from bascule.engines.haproxy import runtime
from bascule.engines.haproxy.deferred_reload import DeferredReload
from bascule.engines.haproxy.descriptors import Descriptors, DescriptorShortage
from bascule.engines.haproxy.dynamic import ServerEdits, server_edits, spliced
from bascule.engines.haproxy.installation import Installed
from bascule.engines.haproxy.persistence import table_names
from bascule.engines.haproxy.render import render
from bascule.engines.haproxy.view import HaproxyView, build_view, proxy_name
from bascule.errors import EngineError
from bascule.model import Configuration, VirtualService
from bascule.reconcile.actions import ChangeServers
from bascule.reconcile.planner import ServerRef, changed_services, structure_changed

log = logging.getLogger("bascule.haproxy")


# How long a real server removed at runtime may keep connections before the engine reloads
# instead, and how HAProxy 2.6 refuses "del server" meanwhile (cli_parse_delete_server).
DELETE_WAIT_S = 1.0
STILL_CONNECTED = "still has connections attached"


class RuntimeServers(DeferredReload):
    """Real servers changed in the running worker (see the module's doc)."""

    def server_changes(
        self, running: Configuration, desired: Configuration
    ) -> ChangeServers | None:
        """The planner's question (``ChangesServers``): can HAProxy go from ``running`` to
        ``desired`` by adding and removing real servers at runtime? Why not is logged.
        Never unless ``dynamic_servers`` (the constructor)."""
        if not self.dynamic_servers:
            return None
        edits = self.runtime_edits(running, desired)
        if isinstance(edits, str):
            log.debug("a structural change reloads", extra={"reason": edits})
            return None
        added: list[ServerRef] = []
        removed: list[ServerRef] = []
        for new, old in changed_services(desired, running) or ():
            before, after = _refs(old), _refs(new)
            added += [ref for ref in after if ref not in before]
            removed += [ref for ref in before if ref not in after]
        return ChangeServers(
            config=desired,
            added=tuple(added),
            removed=tuple(removed),
            reload_follows=True,
        )

    def runtime_edits(
        self, running: Configuration | None, desired: Configuration
    ) -> ServerEdits | str:
        """The runtime edits that take HAProxy from ``running`` to ``desired`` without a
        reload (dynamic.py), or why it must reload. Only from the configuration this engine
        gave the running worker itself, rendered with the same settings."""
        views = self._changed_views(running, desired)
        if isinstance(views, str):
            return views
        tables = {proxy_name(pool) for vs, _, _ in views for pool in vs.pools if table_names(pool)}
        edits = ServerEdits()
        for _, old_view, new_view in views:
            found = server_edits(old_view, new_view, tables=tables)
            if isinstance(found, str):
                return found
            edits += found
        if edits.empty:
            return "no real server added or removed"
        return edits

    def _changed_views(
        self, running: Configuration | None, desired: Configuration
    ) -> list[tuple[VirtualService, HaproxyView, HaproxyView]] | str:
        """Each changed service of ``desired``, with the views of its running and desired
        self, each alone (a service's view does not depend on the others')."""
        installed = self._installed
        if running is None or installed is None:
            return "HAProxy runs a configuration this engine did not give it"
        # the reconciler's record of it may be another object (an engine's share of the
        # same document) with the very same services: compared at the cost of what differs
        if installed.config is not running and structure_changed(installed.config, running):
            return "HAProxy runs a configuration this engine did not give it"
        if installed.globals != self.globals:
            return "the engine's settings changed"
        changed = changed_services(desired, running)
        if changed is None:
            return "more than services changed"
        return [(new, self._alone(running, old), self._alone(desired, new)) for new, old in changed]

    def _alone(self, config: Configuration, vs: VirtualService) -> HaproxyView:
        return build_view(config.model_copy(update={"virtual_services": [vs]}), self.globals)

    async def _edit_servers(self, running: Configuration | None, desired: Configuration) -> bool:
        """Apply ``desired`` by runtime edits when only real servers were added or removed,
        then rewrite the configuration file (no reload). False: it must reload (not
        eligible, or a command failed: the reload then converges from where it stopped)."""
        edits = await asyncio.to_thread(self.runtime_edits, running, desired)
        installed = self._installed
        if isinstance(edits, str) or installed is None or not await self.shell.is_running():
            return False
        try:
            text, descriptors, maxconn = await asyncio.to_thread(
                self._spliced, installed, running, desired
            )
        except (DescriptorShortage, EngineError):
            return False  # the reload refuses the first with its reason; the second: a race
        try:
            if edits.added or self._pending is not None:
                self._defer_reload()  # a removal alone leaves no runtime server: no reload
            self._installed = None
            if maxconn < installed.maxconn:  # the new servers' checks hold descriptors
                await self.shell.runtime(runtime.set_global_maxconn(maxconn))
            await self.shell.runtime_many(edits.add_commands())
            await self.shell.runtime_many(edits.maint_commands())
            for command in edits.delete_commands():
                await self._delete_server(command)
        except (EngineError, OSError) as exc:
            log.warning(
                "real servers could not be changed at runtime, reloading",
                extra={"error": str(exc)},
            )
            return False
        await asyncio.to_thread(self.shell.rewrite, text)
        self._installed = Installed(
            config=desired,
            globals=installed.globals,
            text=text,
            descriptors=descriptors,
            maxconn=min(maxconn, installed.maxconn),
        )
        self._forget_prepared()
        log.info(
            "real servers changed at runtime, no reload",
            extra={
                "added": [f"{a.backend}/{a.server}" for a in edits.added],
                "removed": [f"{backend}/{server}" for backend, server in edits.removed],
            },
        )
        return True

    def _spliced(
        self, installed: Installed, running: Configuration | None, desired: Configuration
    ) -> tuple[str, Descriptors, int]:
        """The text of ``desired`` from the installed one, with its descriptors and maxconn,
        at the cost of the changed services (dynamic.spliced); DescriptorShortage as
        ``view``'s."""
        views = self._changed_views(running, desired)
        if isinstance(views, str):
            raise EngineError(views)  # runtime_edits said otherwise a moment ago
        checks = sum(new.descriptors.checks - old.descriptors.checks for _, old, new in views)
        descriptors = dataclasses.replace(
            installed.descriptors, checks=installed.descriptors.checks + checks
        )
        maxconn = self.globals.maxconn
        if self.globals.descriptor_limit is not None:
            maxconn = descriptors.fit(self.globals.descriptor_limit, ceiling=maxconn)
        text = spliced(installed.text, [render(new) for _, _, new in views], maxconn)
        return text, descriptors, maxconn

    async def _delete_server(self, command: str) -> None:
        """``del server``, again for up to ``DELETE_WAIT_S`` while HAProxy still counts
        connections (its idle ones close as the server enters maintenance, a moment after
        the command); a server still busy then is an EngineError: the engine reloads, and
        the old worker finishes its sessions, as with any reload."""
        deadline = asyncio.get_running_loop().time() + DELETE_WAIT_S
        while True:
            try:
                await self.shell.runtime(command)
                return
            except EngineError as exc:
                if STILL_CONNECTED not in str(exc):
                    raise
                if asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(0.02)


def _refs(vs: VirtualService) -> list[ServerRef]:
    """Each real server of ``vs`` and of its sub-services, by (pool name, key)."""
    return [(pool.name, rs.key) for pool in vs.pools for rs in pool.real_servers]
