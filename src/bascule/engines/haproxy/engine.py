"""The HAProxy engine as the daemon sees it: the Engine contract over view, render, runtime.

Sits between the daemon's executor and the HAProxy shell (shell.py): it turns a desired
``Configuration`` into config text (view.py, render.py), a plan's runtime actions into
runtime-API commands (runtime.py), and HAProxy's own reports (``show servers state``,
``show stat``) back into observations keyed by virtual service and real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bascule.engines.base import (
    ClientLoad,
    EngineObservation,
    PersistenceEntry,
)
from bascule.engines.haproxy import limits, observation, runtime, transparency
from bascule.engines.haproxy import transactions as tx
from bascule.engines.haproxy.caching import FIRST_GENERATION, generation_key
from bascule.engines.haproxy.descriptors import Descriptors, DescriptorShortage
from bascule.engines.haproxy.drains import DrainClock
from bascule.engines.haproxy.dynamic import PendingReload, ServerEdits, server_edits, spliced
from bascule.engines.haproxy.logs import REQUEST_LOG_FD
from bascule.engines.haproxy.peers import PeersListener
from bascule.engines.haproxy.persistence import table_names
from bascule.engines.haproxy.render import render
from bascule.engines.haproxy.shell import HaproxyPaths, HaproxyShell
from bascule.engines.haproxy.tls import TlsPaths
from bascule.engines.haproxy.view import (
    MAX_WEIGHT,
    PEERS,
    HaproxyGlobals,
    HaproxyView,
    build_view,
    proxy_name,
    server_name,
)
from bascule.errors import EngineError, EngineRejected
from bascule.model import Configuration, Mode, RealServerState, ServiceType, VirtualService
from bascule.model.offload import HTTP_PORT
from bascule.net.addresses import host_port
from bascule.reconcile.actions import Action, ChangeServers, ReplaceConfig, SetState, SetWeight
from bascule.reconcile.planner import ServerRef, changed_services, structure_changed

log = logging.getLogger("bascule.haproxy")


# The longest a reload waits for the running worker's initial stick-table resync (two 5 s
# steps: from the previous worker, then from remote peers, of which there are none).
PEERS_RESYNC_WAIT = 11.0
# How long the text of a configuration just prepared (checked) is installed as it is.
PREPARED_FOR_S = 30.0

# How long a real server removed at runtime may keep connections before the engine reloads
# instead, and how HAProxy 2.6 refuses "del server" meanwhile (cli_parse_delete_server).
DELETE_WAIT_S = 1.0
STILL_CONNECTED = "still has connections attached"

# Servers added at runtime are made ordinary servers by a reload this long after the last
# runtime change, and at most this long after the first (dynamic.PendingReload; the
# settings' haproxy_deferred_reload_delay and haproxy_deferred_reload_max_delay).
DEFERRED_RELOAD_DELAY_S = 3.0
DEFERRED_RELOAD_MAX_DELAY_S = 30.0

ADMIN_STATE = {
    RealServerState.enabled: runtime.AdminState.READY,
    RealServerState.drain: runtime.AdminState.DRAIN,
    RealServerState.disabled: runtime.AdminState.MAINT,
}


class HaproxyEngine:
    """Engine contract implementation for HAProxy (see engines/base.py)."""

    name = "haproxy"
    mode = Mode.l7
    max_weight = MAX_WEIGHT

    def __init__(
        self,
        run_dir: Path,
        *,
        binary: str,
        maxconn: int,
        nbthread: int,
        descriptor_limit: int | None = None,
        cpus: tuple[int, ...] = (),
        peers: bool = True,
        peers_listener: PeersListener | None = None,
        certificates_dir: Path | None = None,
        request_log_pipe: int | None = None,
        pages_dir: Path | None = None,
        dynamic_servers: bool = True,
        reload_delay: float = DEFERRED_RELOAD_DELAY_S,
        reload_max_delay: float = DEFERRED_RELOAD_MAX_DELAY_S,
    ) -> None:
        """``peers``: keep the stick tables (persistence) across reloads through HAProxy's
        local peer, listening on a unix socket in ``run_dir`` (only root reaches it), or on
        ``peers_listener`` (``ip:port`` with TLS, for the HA pair); see peers.py.
        ``certificates_dir``: where the certificate store writes ``<name>.pem`` and
        ``<name>.ca.pem`` (default: ``certificates`` beside ``run_dir``).
        ``descriptor_limit``: the file descriptors HAProxy may open; maxconn is then sized
        from what each configuration holds (descriptors.py), at most ``maxconn``.
        ``request_log_pipe``: the write end of the daemon's request log pipe, which the master
        inherits as ``REQUEST_LOG_FD`` (logs.py) when this engine starts it.
        ``dynamic_servers``: real servers added and removed with ``add server``/``del server``
        (dynamic.py) rather than a reload (the settings' ``haproxy_dynamic_servers``). HAProxy
        2.6.12's dynamic servers open a server connection per request (``show stat``:
        ``reuse`` 0 under keep-alive, 28k against 73k req/s in one A/B), so servers added so
        are made ordinary ones by a *deferred* reload of the file already written,
        ``reload_delay`` seconds after the last such change and at most ``reload_max_delay``
        after the first (``reload_in``, ``reload_deferred``: the daemon's reconciler runs it
        under its lock)."""
        self.paths = HaproxyPaths.under(run_dir)
        self.dynamic_servers = dynamic_servers
        self.reload_delay = reload_delay
        self.reload_max_delay = reload_max_delay
        # servers added at runtime since the last reload (their marker file is on disk), the
        # last deferred reload's failure, and the reloads and starts done since this start
        self._pending: PendingReload | None = None
        self._pending_error: str | None = None
        self.reloads = 0
        local_peer = None
        if peers:
            local_peer = peers_listener or PeersListener(address=str(self.paths.peers_socket))
        self._local_peer = local_peer
        inherit = {} if request_log_pipe is None else {REQUEST_LOG_FD: request_log_pipe}
        self.shell = HaproxyShell(self.paths, binary=binary, inherit=inherit)
        self.server_state = self.paths.run_dir / "server-state"
        self._version: str | None = None
        self._caches: dict[str, dict[str, Any]] = {}  # service -> its cache counters
        self.crt_lists = self.paths.run_dir / "crt-lists"
        self.acme_map = self.paths.run_dir / "acme.map"
        # the services' cache generations (caching.py): a purge gives a service a new one
        self.cache_generations = self.paths.run_dir / "cache-generations.map"
        self._generations: dict[str, str] = {}
        self.certificates_dir = certificates_dir or run_dir.parent / "certificates"
        self.globals = HaproxyGlobals(
            stats_socket=str(self.paths.stats_socket),
            maxconn=maxconn,
            nbthread=nbthread,
            descriptor_limit=descriptor_limit,
            server_state_file=str(self.server_state),
            cpus=cpus,
            local_peer=local_peer,
            tls_paths=TlsPaths(
                certificates_dir=str(self.certificates_dir),
                crt_list_dir=str(self.crt_lists),
                acme_map=str(self.acme_map),
            ),
            request_log_pipe=request_log_pipe is not None,
            pages_dir=str(pages_dir or run_dir.parent / "pages"),
            cache_generations_map=str(self.cache_generations),
        )
        self.transparency = transparency.Transparency()
        # ACME HTTP-01 answers (path -> key authorization), kept in the map file too so that a
        # reload during a challenge keeps answering it
        self._challenges: dict[str, str] = {}
        # drain_time: the deadlines of drained servers, and the task that closes their
        # sessions when one runs out (started with the first drain it has to time)
        self._drains = DrainClock()
        self._drains_changed = asyncio.Event()
        self._drain_timer: asyncio.Task[None] | None = None
        self._prepared: _Prepared | None = None
        # what the running worker was given by this engine (a reload or runtime edits), the
        # settings it was rendered with and its maxconn; None: unknown (adopted, failed)
        self._installed: _Installed | None = None
        self._index: tuple[Configuration, observation.ServerIndex] | None = None

    def render(self, config: Configuration) -> str:
        return render(self.view(config))

    def view(self, config: Configuration) -> HaproxyView:
        """``config``'s view; EngineRejected when its descriptors leave no room for
        connections (nothing is touched: the document is refused like ``haproxy -c`` would)."""
        try:
            return build_view(config, self.globals)
        except DescriptorShortage as exc:
            raise EngineRejected("haproxy", str(exc)) from None

    def set_local_peer(self, listener: PeersListener | None) -> bool:
        """The peers section from now on: the HA pair's (daemon/pair_state.py), or ``None``
        for the one given at start. Whether it changed (the caller then reloads HAProxy)."""
        wanted = listener or self._local_peer
        if wanted == self.globals.local_peer:
            return False
        self.globals = dataclasses.replace(self.globals, local_peer=wanted)
        return True

    def set_http_users(self, hashes: Mapping[str, str]) -> bool:
        """The HTTP user store's users (name -> crypt(3) hash) the services' basic auth reads
        (authentication.py) from now on. Whether they changed (the caller then reloads
        HAProxy when a service names one: HAProxy reads its userlists at load only)."""
        wanted = tuple(sorted(hashes.items()))
        if wanted == self.globals.http_users:
            return False
        self.globals = dataclasses.replace(self.globals, http_users=wanted)
        return True

    async def remote_peers(self) -> dict[str, str]:
        """Each remote peer's last status as HAProxy's ``show peers`` says it (``ESTA``:
        connected, the tables flow); empty when HAProxy does not run or has none."""
        try:
            return runtime.remote_peers(await self.shell.runtime("show peers"))
        except EngineError:
            return {}

    def _prepare(self, config: Configuration) -> str:
        """The configuration text, with the files it reads beside it: the crt-lists (named by
        their content, so a running or last good configuration's lists are never rewritten)
        and the ACME map, which must exist when HAProxy loads.

        The change pipeline checks a configuration, then installs the same one: the text of
        the last one prepared is kept for the next call with that very ``Configuration``
        (frozen) and the same globals, within ``PREPARED_FOR_S`` (rendering 10,000 servers
        takes ~150 ms: issue 15)."""
        return self._prepared_for(config).text

    def _prepared_for(self, config: Configuration) -> _Prepared:
        """``_prepare``'s text with what it was made of (the view's maxconn)."""
        kept, self._prepared = self._prepared, None
        if (
            kept is not None
            and kept.config is config
            and kept.globals == self.globals
            and time.monotonic() - kept.at < PREPARED_FOR_S
        ):
            self._prepared = kept
            return kept
        view = self.view(config)
        self._write_tls_files(view)
        self._write_generations(config)
        prepared = _Prepared(
            config=config,
            globals=self.globals,
            text=render(view),
            maxconn=view.maxconn,
            descriptors=view.descriptors,
        )
        self._prepared = prepared
        return prepared

    def _forget_prepared(self) -> None:
        """A text was installed: the one prepared, unless it is that one, is for a check and
        an install that will not come (the text of 10,000 servers is ~0.9 MiB, kept at rest
        after every server added at runtime: issue 15)."""
        if self._prepared is not self._installed:
            self._prepared = None

    def _write_tls_files(self, view: HaproxyView) -> None:
        self.paths.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.crt_lists.mkdir(mode=0o700, exist_ok=True)
        for listed in view.crt_lists:
            path = Path(listed.path)
            if not path.exists() or path.read_text() != listed.text:
                _write_private(path, listed.text)
        if not self.acme_map.exists():
            self._write_map()

    def _remove_stale_crt_lists(self) -> None:
        """Keep the crt-lists the current and the last good configuration read."""
        kept = ""
        for path in (self.paths.config, self.paths.last_good):
            with contextlib.suppress(OSError):
                kept += path.read_text()
        for listed in self.crt_lists.glob("*.crtlist"):
            if str(listed) not in kept:
                listed.unlink(missing_ok=True)

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
                limits = runtime.parse_limits(await self.shell.runtime(runtime.SHOW_INFO))
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

    async def _reload(
        self,
        config: Configuration,
        applied: Configuration | None,
        *,
        text: _Installed | None = None,
    ) -> None:
        """Install ``config`` (its text: ``text``'s when given, else rendered) and reload
        seamlessly, or start HAProxy; every server is then an ordinary one, so a deferred
        reload is no longer pending."""
        await self._wait_tables_handed_over(applied)
        await self._save_server_state()
        # transparency's plumbing is there before HAProxy uses it, and goes after
        wanted = transparency.plumbing(config)
        if wanted.needed:
            await self.transparency.ensure(wanted)
        prepared = text if text is not None else await asyncio.to_thread(self._prepared_for, config)
        self._installed = None
        await self.shell.apply(prepared.text)
        self._installed = prepared
        self._forget_prepared()
        self.reloads += 1
        self._settled()
        if not wanted.needed:
            await self.transparency.ensure(wanted)
        self._remove_stale_crt_lists()

    # -- the deferred reload (servers added at runtime made ordinary ones) ---------------------

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
            _write_private(self.paths.reload_pending, f"{time.time():.3f}\n")
            self._pending = PendingReload.starting(
                now, delay=self.reload_delay, max_delay=self.reload_max_delay
            )
        else:
            self._pending = self._pending.changed(now)

    def _settled(self) -> None:
        """A reload or a start installed the whole file: no server is a runtime one."""
        self._pending = None
        self._pending_error = None
        self.paths.reload_pending.unlink(missing_ok=True)

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
        self._installed = _Installed(
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
        self, installed: _Installed, running: Configuration | None, desired: Configuration
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

    async def _wait_tables_handed_over(self, applied: Configuration | None) -> None:
        """Before a reload, wait (bounded) until the running worker can hand its stick tables on.

        A worker first tries to learn the tables of the worker before it, for up to 5 s per
        step (configuration.txt 3.5; "resync_timeout" in ``show peers``), and only a worker
        that finished that can teach the next one: a reload sooner would start the new worker
        with empty tables (every persisted client balanced afresh). Checked with HAProxy 2.6.12.
        """
        if self.globals.local_peer is None or applied is None:
            return
        if not any(table_names(vs) for vs in applied.virtual_services):
            return
        deadline = asyncio.get_running_loop().time() + PEERS_RESYNC_WAIT
        while True:
            try:
                shown = await self.shell.runtime(runtime.SHOW_PEERS)
            except EngineError:
                return
            if runtime.peers_resynced(shown, PEERS) is not False:
                return
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.2)

    async def _save_server_state(self) -> None:
        """Save health and runtime state so the reloaded worker starts from it.

        configuration.txt, ``load-server-state-from-file``: without it a reload forgets
        which servers are down (a dead server would take traffic until ``fall`` checks fail
        again) and every runtime change. Weights and states the new document changes are set
        by the reconciler's next pass.
        """
        if not await self.shell.is_running():
            return
        try:
            state = await self.shell.runtime("show servers state")
        except EngineError:
            return
        _write_private(self.server_state, state if state.endswith("\n") else state + "\n")

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

    # -- drain time ---------------------------------------------------------------------------

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

    async def persistence(
        self, applied: Configuration | None, vs_name: str
    ) -> list[PersistenceEntry]:
        vs = _running_service(applied, vs_name)
        servers = {server_name(rs): rs.key for rs in vs.real_servers}
        # HAProxy numbers servers in the order of the section (5.2 "id"), which the view decides.
        declared = build_view(_alone(vs), self.globals).proxies[0].servers
        by_id = {number: servers.get(view.name) for number, view in enumerate(declared, 1)}
        entries: list[PersistenceEntry] = []
        for table in table_names(vs):
            text = await self.shell.runtime(runtime.show_table(table))
            for entry in runtime.parse_show_table(text):
                key = servers.get(entry.server_key or "")
                if key is None and entry.server_id is not None:
                    key = by_id.get(entry.server_id)
                entries.append(
                    PersistenceEntry(
                        table="primary" if table == proxy_name(vs) else "fallback",
                        key=entry.key,
                        real_server=key,
                        expires_in_s=entry.expires_ms / 1000,
                    )
                )
        return entries

    async def client_loads(
        self, applied: Configuration | None, vs_name: str, *, top: int, rule: str | None = None
    ) -> list[ClientLoad]:
        vs = _running_service(applied, vs_name)
        held = vs.limits
        table = limits.table_name(vs)
        if rule is not None:
            found = next((r for r in vs.rules if r.name == rule), None)
            held = found.limits if found is not None else None
            table = limits.rule_table_name(vs, rule)
        if held is None or not held.per_client_limited:
            return []
        text = await self.shell.runtime(runtime.show_table(table))
        return limits.client_loads(held, runtime.parse_show_table(text), top=top)

    async def clear_persistence(self, applied: Configuration | None, vs_name: str) -> int:
        vs = _running_service(applied, vs_name)
        count = 0
        for table in table_names(vs):
            shown = await self.shell.runtime(runtime.show_table(table))
            count += len(runtime.parse_show_table(shown))
            await self.shell.runtime(runtime.clear_table(table))
        return count

    # -- the certificate store and ACME -------------------------------------------------------

    async def certificate_changed(self, applied: Configuration | None, name: str) -> bool:
        """The store rewrote ``name``'s file: swap it into the running worker without a reload
        (``set ssl cert`` or ``set ssl ca-file``, then ``commit``; ``abort`` on failure).
        Whether HAProxy serves it (False: not running, or no service of ``applied`` uses it).
        The file is read back, so HAProxy and a later reload see the same bytes."""
        if applied is None or not await self.shell.is_running():
            return False
        kind, path = _store_file(applied, name, self.globals.tls_paths)
        if kind is None:
            return False
        pem = await asyncio.to_thread(Path(path).read_bytes)
        tx.check_started(await self.shell.request(tx.set_ssl(kind, path, pem)))
        answer = await self.shell.request(tx.commit_ssl(kind, path))
        try:
            tx.check_committed(answer)
        except EngineError:
            with contextlib.suppress(EngineError):
                await self.shell.request(tx.abort_ssl(kind, path))
            raise
        log.info("certificate swapped at runtime", extra={"certificate": name, "file": path})
        return True

    async def set_challenge(self, path: str, answer: str) -> None:
        """Answer ACME's HTTP-01 request for ``path`` with ``answer`` on every port-80 HTTP
        listener: the map file first (a reload keeps it), then the running worker's map."""
        self._challenges[path] = answer
        await asyncio.to_thread(self._write_map)
        if await self.shell.is_running():
            map_path = str(self.acme_map)
            with contextlib.suppress(EngineError):  # a stale entry: replace it
                tx.check_map_answer(await self.shell.request(tx.del_map(map_path, path)))
            tx.check_map_answer(await self.shell.request(tx.add_map(map_path, path, answer)))

    async def clear_challenge(self, path: str) -> None:
        self._challenges.pop(path, None)
        await asyncio.to_thread(self._write_map)
        if await self.shell.is_running():
            tx.check_map_answer(await self.shell.request(tx.del_map(str(self.acme_map), path)))

    # -- the cache's purge (caching.py) --------------------------------------------------------

    async def purge_cache(self, applied: Configuration | None, name: str) -> bool:
        """Give service ``name``'s cache a new generation: no request finds an entry stored
        before now (they age out). The map file first (a reload keeps it), then the running
        worker's map with one ``set map``. Whether HAProxy runs it (False: not running, or
        ``applied`` has no cache for ``name``)."""
        vs = None if applied is None else applied.pool(name)
        if vs is None or vs.cache is None:
            return False
        generation = str(time.time_ns())
        key = generation_key(vs)  # a sub-service pool's is "site_api"
        self._generations[key] = generation
        await asyncio.to_thread(self._write_generations, applied)
        if not await self.shell.is_running():
            return False
        path = str(self.cache_generations)
        answer = await self.shell.request(tx.set_map(path, key, generation))
        if tx.map_entry_missing(answer):
            answer = await self.shell.request(tx.add_map(path, key, generation))
        tx.check_map_answer(answer)
        log.info("cache purged", extra={"virtual_service": name, "generation": generation})
        return True

    def _write_generations(self, config: Configuration | None) -> None:
        self.paths.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        pools = () if config is None else config.pools()
        keys = [generation_key(pool) for pool in pools if pool.cache is not None]
        text = "".join(f"{key} {self._generations.get(key, FIRST_GENERATION)}\n" for key in keys)
        _write_private(self.cache_generations, text)

    def _write_map(self) -> None:
        self.paths.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = "".join(f"{path} {answer}\n" for path, answer in sorted(self._challenges.items()))
        _write_private(self.acme_map, text)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Installed:
    """What the running worker was given by the engine: the configuration, the settings it
    was rendered with, its text and descriptors, and the maxconn it runs with."""

    config: Configuration
    globals: HaproxyGlobals
    text: str
    descriptors: Descriptors
    maxconn: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Prepared(_Installed):
    """A configuration text ``_prepare`` made, for what and when (once installed, what the
    worker runs)."""

    at: float = dataclasses.field(default_factory=time.monotonic)


def _write_private(path: Path, text: str) -> None:
    """Write ``path`` 0600 through a renamed temporary file (HAProxy never reads half)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)


def _store_file(
    applied: Configuration, name: str, paths: TlsPaths
) -> tuple[tx.SslObject | None, str]:
    """Which file of the store HAProxy loaded for ``name``, and as what (None: unused)."""
    for vs in applied.virtual_services:
        tls = vs.tls
        if tls is None or vs.type is ServiceType.starttls:
            continue
        if name in tls.certificates:
            return tx.SslObject.cert, paths.certificate(name)
        if name in (tls.client_ca, tls.server_ca):
            return tx.SslObject.ca_file, paths.ca_bundle(name)
    return None, ""


def _running_service(applied: Configuration | None, vs_name: str) -> VirtualService:
    vs = applied.pool(vs_name) if applied else None
    if vs is None:
        raise EngineError(f"HAProxy runs no virtual service {vs_name}")
    return vs


def _alone(vs: VirtualService) -> Configuration:
    # a sub-service's pool stands alone as a service of its own: same servers, same order
    return Configuration(virtual_services=[vs.model_copy(update={"sub_services": []})])


def unbindable_listeners(config: Configuration) -> list[tuple[str, str]]:
    """Listeners of ``config`` that HAProxy could not bind: (address:port, reason).

    ``haproxy -c`` does not bind, and a reload that meets EADDRINUSE makes HAProxy 2.6 pause
    every listener of the running worker while it retries (haproxy.c, protocol_bind_all), so
    new connections to *every* service are refused for about two seconds before it gives
    up. Trying each bind first, the way HAProxy does it (SO_REUSEADDR and SO_REUSEPORT, which
    HAProxy's own listeners also carry, so the ports it already holds bind fine), refuses such
    a change before anything is touched. An address not on the machine yet is skipped: the
    daemon adds the VIP before reloading.
    """
    busy: list[tuple[str, str]] = []
    for vs in config.virtual_services:
        # a STARTTLS front holds a starttls service's VIP (HAProxy its loopback relay)
        if not vs.enabled or vs.mode is not Mode.l7 or vs.type is ServiceType.starttls:
            continue
        ports_of = [(r.first, r.last) for r in vs.port_ranges]
        if vs.tls is not None and vs.tls.redirect_http:
            ports_of.append((HTTP_PORT, HTTP_PORT))
        for address in vs.addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            for first, last in ports_of:
                for port in range(first, last + 1):
                    if _in_use(family, address, port):
                        busy.append((host_port(address, port), "address already in use"))
    return busy


def _in_use(family: socket.AddressFamily, address: str, port: int) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as "v6only"
        try:
            probe.bind((address, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _refs(vs: VirtualService) -> list[ServerRef]:
    """Each real server of ``vs`` and of its sub-services, by (pool name, key)."""
    return [(pool.name, rs.key) for pool in vs.pools for rs in pool.real_servers]


def _names(applied: Configuration | None, vs_name: str, key: str) -> tuple[str, str]:
    vs = applied.pool(vs_name) if applied else None
    rs = vs.real_server(key) if vs else None
    if vs is None or rs is None:
        raise EngineError(f"HAProxy runs no real server {key} in {vs_name}")
    return proxy_name(vs), server_name(rs)
