"""A configuration installed in HAProxy: prepared, written and reloaded (or started).

Where it sits: under the engine (engine.py), over the shell (shell.py). ``Installation`` holds
the engine's state (its paths, settings, what the running worker was given) and turns a
desired ``Configuration`` into the text HAProxy runs (view.py, render.py) with the files it
reads beside it (crt-lists, the ACME map, the cache generations), then installs it with a
seamless reload: the stick tables handed over first, the server state saved. The engine's
other parts (deferred_reload.py, runtime_servers.py, drain_timer.py, stick_tables.py,
runtime_files.py) build on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bascule.engines.haproxy import observation, runtime, transparency
from bascule.engines.haproxy.caching import FIRST_GENERATION, generation_key
from bascule.engines.haproxy.descriptors import Descriptors, DescriptorShortage
from bascule.engines.haproxy.drains import DrainClock
from bascule.engines.haproxy.dynamic import PendingReload
from bascule.engines.haproxy.logs import REQUEST_LOG_FD
from bascule.engines.haproxy.peers import PeersListener
from bascule.engines.haproxy.persistence import table_names
from bascule.engines.haproxy.render import render
from bascule.engines.haproxy.shell import HaproxyPaths, HaproxyShell
from bascule.engines.haproxy.tls import TlsPaths
from bascule.engines.haproxy.view import PEERS, HaproxyGlobals, HaproxyView, build_view
from bascule.errors import EngineError, EngineRejected
from bascule.model import Configuration

# The longest a reload waits for the running worker's initial stick-table resync (two 5 s
# steps: from the previous worker, then from remote peers, of which there are none).
PEERS_RESYNC_WAIT = 11.0
# How long the text of a configuration just prepared (checked) is installed as it is.
PREPARED_FOR_S = 30.0

# Servers added at runtime are made ordinary servers by a reload this long after the last
# runtime change, and at most this long after the first (dynamic.PendingReload; the
# settings' haproxy_deferred_reload_delay and haproxy_deferred_reload_max_delay).
DEFERRED_RELOAD_DELAY_S = 3.0
DEFERRED_RELOAD_MAX_DELAY_S = 30.0


class Installation:
    """The HAProxy engine's state and how it installs a configuration (see the module's doc)."""

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
        self._prepared: Prepared | None = None
        # what the running worker was given by this engine (a reload or runtime edits), the
        # settings it was rendered with and its maxconn; None: unknown (adopted, failed)
        self._installed: Installed | None = None
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

    def _prepare(self, config: Configuration) -> str:
        """The configuration text, with the files it reads beside it: the crt-lists (named by
        their content, so a running or last good configuration's lists are never rewritten)
        and the ACME map, which must exist when HAProxy loads.

        The change pipeline checks a configuration, then installs the same one: the text of
        the last one prepared is kept for the next call with that very ``Configuration``
        (frozen) and the same globals, within ``PREPARED_FOR_S`` (rendering 10,000 servers
        takes ~150 ms: issue 15)."""
        return self._prepared_for(config).text

    def _prepared_for(self, config: Configuration) -> Prepared:
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
        prepared = Prepared(
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
                write_private(path, listed.text)
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

    async def _reload(
        self,
        config: Configuration,
        applied: Configuration | None,
        *,
        text: Installed | None = None,
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

    def _settled(self) -> None:
        """A reload or a start installed the whole file: no server is a runtime one."""
        self._pending = None
        self._pending_error = None
        self.paths.reload_pending.unlink(missing_ok=True)

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
        write_private(self.server_state, state if state.endswith("\n") else state + "\n")

    def _write_generations(self, config: Configuration | None) -> None:
        self.paths.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        pools = () if config is None else config.pools()
        keys = [generation_key(pool) for pool in pools if pool.cache is not None]
        text = "".join(f"{key} {self._generations.get(key, FIRST_GENERATION)}\n" for key in keys)
        write_private(self.cache_generations, text)

    def _write_map(self) -> None:
        self.paths.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = "".join(f"{path} {answer}\n" for path, answer in sorted(self._challenges.items()))
        write_private(self.acme_map, text)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Installed:
    """What the running worker was given by the engine: the configuration, the settings it
    was rendered with, its text and descriptors, and the maxconn it runs with."""

    config: Configuration
    globals: HaproxyGlobals
    text: str
    descriptors: Descriptors
    maxconn: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class Prepared(Installed):
    """A configuration text ``_prepare`` made, for what and when (once installed, what the
    worker runs)."""

    at: float = dataclasses.field(default_factory=time.monotonic)


def write_private(path: Path, text: str) -> None:
    """Write ``path`` 0600 through a renamed temporary file (HAProxy never reads half)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)
