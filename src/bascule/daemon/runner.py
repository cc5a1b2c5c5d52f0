"""``bascule run``: the appliance in the foreground.

Startup: take the data dir's lock, open the store, adopt a running HAProxy and Bascule's
nftables tables left by a previous daemon (or start afresh), reconcile on the current
revision, then serve the API on the unix socket (mode 0600) and re-reconcile every few seconds
to repair drift (a dead engine is restarted, missing tables are re-applied). The L4 health
checker and the nftables driver's tick run once a second (daemon/l4.py).

SIGTERM and SIGINT stop the API and the health checks, let HAProxy and the L4 NAT connections
drain for ``shutdown_grace`` seconds (no new connection is taken meanwhile), stop HAProxy,
delete Bascule's nftables tables — L4 traffic stops with the daemon, as L7 traffic does — and
remove the VIPs Bascule added. If the daemon is killed outright nothing of this runs: HAProxy
lives in its own session and the tables stay in the kernel, so traffic keeps flowing on the
last applied state, and the next start adopts both (adopted L4 servers start up).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import resource
import signal
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from bascule import __version__
from bascule.daemon.dynamic import DynamicScheduler
from bascule.daemon.l4 import L4Supervisor
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import IpVipManager
from bascule.engines.base import Engine
from bascule.engines.haproxy.driver import HaproxyDriver
from bascule.engines.nftables.driver import NftablesDriver
from bascule.errors import BasculeError, StoreError
from bascule.model import Configuration, Mode, parse_document
from bascule.model.document import for_mode
from bascule.settings import Settings
from bascule.store.revisions import RevisionStore

log = logging.getLogger("bascule.daemon")


def haproxy_maxconn(nofile: int | None = None) -> int:
    """The largest global maxconn HAProxy can honour with the descriptors it may open.

    Each proxied connection holds two descriptors (client and server side); keep a margin for
    listeners, checks, sockets and logs. HAProxy refuses to start when maxconn needs more
    descriptors than ``ulimit -n`` allows.
    """
    if nofile is None:
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if nofile == resource.RLIM_INFINITY:
            nofile = 1_048_576
    return max(100, (nofile - 500) // 2)


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """One daemon per data dir."""
    handle = (data_dir / "bascule.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise BasculeError(f"another bascule daemon is running on {data_dir}") from None
    try:
        yield
    finally:
        handle.close()


def prepare_data_dir(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    (data_dir / "haproxy").mkdir(exist_ok=True)
    (data_dir / "haproxy").chmod(0o700)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # older uvicorn
        return


SystemInfo = Callable[[], Awaitable[dict[str, Any]]]
AppFactory = Callable[[ConfigService, SystemInfo], Any]
"""Builds the ASGI app the daemon serves; given by the composition root (bascule.main) so
the daemon does not import the API, which sits above it."""


class Daemon:
    def __init__(self, settings: Settings, *, make_app: AppFactory) -> None:
        self.settings = settings
        self.make_app = make_app
        self._stop = asyncio.Event()

    async def run(self) -> None:
        settings = self.settings
        prepare_data_dir(settings.data_dir)
        with data_dir_lock(settings.data_dir):
            (settings.data_dir / "bascule.pid").write_text(f"{os.getpid()}\n")
            store = RevisionStore(settings.database_path)
            try:
                await self._run(store)
            finally:
                store.close()
                with contextlib.suppress(FileNotFoundError):
                    (settings.data_dir / "bascule.pid").unlink()

    async def _run(self, store: RevisionStore) -> None:
        settings = self.settings
        # One HAProxy thread per CPU this process may run on (its affinity, not the machine's
        # count: under taskset or a cpuset, extra threads would only fight over the same CPUs).
        cpus = tuple(sorted(os.sched_getaffinity(0)))
        engine = HaproxyDriver(
            settings.haproxy_dir,
            binary=settings.haproxy_binary,
            maxconn=haproxy_maxconn(),
            nbthread=len(cpus),
            cpus=cpus,
        )
        nftables = NftablesDriver()
        l4 = L4Supervisor(nftables)
        engines: list[Engine] = [engine, nftables]
        vips = IpVipManager(settings.data_dir / "vips.json")
        # adaptive and weighted_response_time: weights decided at run time (daemon/dynamic.py)
        dynamic = DynamicScheduler(ceiling=engine.max_weight)
        service = ConfigService(
            store=store,
            engines=engines,
            vips=vips,
            after_reconcile=l4.follow,
            overrides=dynamic.overrides,
        )
        last_good = _last_good(store)
        if await engine.adopt():
            service.adopt(engine.name, for_mode(last_good, engine.mode) if last_good else None)
            log.info("adopted the running HAProxy", extra={"pids": await engine.worker_pids()})
        if await nftables.adopt():
            l4_part = for_mode(last_good, Mode.l4) if last_good else None
            service.adopt(nftables.name, l4_part)
            if l4_part is not None:
                await l4.adopted(l4_part)
            log.info("adopting Bascule's nftables tables")
        ok, error = await service.reconcile()
        log.info("started", extra={"version": __version__, "applied": ok, "error": error})

        async def system() -> dict[str, Any]:
            return {
                "engines": {e.name: await e.info() for e in engines},
                "data_dir": str(settings.data_dir),
                "pid": os.getpid(),
            }

        app = self.make_app(service, system)
        socket_path = settings.socket_path
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        server = _Server(
            uvicorn.Config(app, uds=str(socket_path), log_config=None, access_log=False)
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        old_umask = os.umask(0o177)  # the socket is created 0600
        try:
            api = asyncio.create_task(server.serve(), name="api")
            while not server.started and not api.done():  # noqa: ASYNC110  (uvicorn has no event)
                await asyncio.sleep(0.02)
        finally:
            os.umask(old_umask)
        if api.done():
            api.result()
        socket_path.chmod(0o600)
        log.info("serving the API", extra={"socket": str(socket_path)})
        reconciler = asyncio.create_task(self._reconcile_forever(service), name="reconcile")
        l4_loop = asyncio.create_task(l4.run(service.desired), name="l4")
        dynamic_loop = asyncio.create_task(dynamic.run(service), name="dynamic")
        await self._stop.wait()
        log.info("stopping: draining connections", extra={"grace_s": settings.shutdown_grace})
        for task in (reconciler, l4_loop, dynamic_loop):
            task.cancel()
        server.should_exit = True
        for task in (reconciler, l4_loop, dynamic_loop):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await api
        await l4.stop()
        results = await asyncio.gather(
            *(e.stop(grace=settings.shutdown_grace) for e in engines), return_exceptions=True
        )
        for stopped, result in zip(engines, results, strict=True):
            if isinstance(result, BaseException):
                log.error(
                    "engine did not stop", extra={"engine": stopped.name, "error": str(result)}
                )
        await vips.remove_all()
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        log.info("stopped")

    async def _reconcile_forever(self, service: ConfigService) -> None:
        while True:
            await asyncio.sleep(self.settings.reconcile_interval)
            try:
                await service.reconcile(retry_failed=False)
            except (BasculeError, OSError) as exc:
                log.error("reconcile failed", extra={"error": str(exc)})


def _last_good(store: RevisionStore) -> Configuration | None:
    applied = store.applied()
    if applied is None or applied.last_good is None:
        return None
    try:
        return parse_document(store.get(applied.last_good).document)
    except (BasculeError, StoreError):
        return None


def run(settings: Settings, *, make_app: AppFactory) -> None:
    asyncio.run(Daemon(settings, make_app=make_app).run())
