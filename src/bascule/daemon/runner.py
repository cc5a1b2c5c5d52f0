"""``bascule run``: the appliance in the foreground.

Startup: take the data dir's lock, open the store, adopt a running HAProxy and Bascule's
nftables tables left by a previous daemon (or start afresh: at boot, the VIPs, the rules and
HAProxy come back from the stored revision here, before the API opens), reconcile on the
current revision, then serve the API on the unix socket (mode 0600, the caller trusted as a
local administrator) and the API and the WUI over HTTPS on ``settings.listen`` (127.0.0.1:8443
by default; ``none`` disables it; a self-signed certificate is made at first start,
daemon/tls.py). Under systemd it then tells the service manager it is ready (``READY=1``,
daemon/systemd.py: only once the engines run the revision and the API has answered a request)
and pings its watchdog. It re-reconciles every few seconds to repair drift (a dead engine is
restarted, missing tables are re-applied), runs the deferred reload that makes servers added to
HAProxy at runtime ordinary ones (daemon/reconciler.py, ``run_deferred_reloads``), keeps
``haproxy.log`` (and its own log, when that is a file) under a size cap (daemon/logfiles.py),
and runs the L4 health checker and the nftables engine's tick once a second (daemon/l4.py).

Stopping. SIGTERM and SIGINT (``systemctl stop``, ``bascule stop``) stop the daemon only: the
API, the health checks and the loops end, and the data plane keeps running on the last
applied state: HAProxy (in its own session), Bascule's nftables tables and the VIPs stay, with
the established connections, stick tables and persistence sets, so that a restart or an
upgrade of the daemon costs no request; the next start adopts them. ``bascule stop
--data-plane`` (``POST /api/v1/system/stop?data_plane=true``) stops the data plane too: it lets
HAProxy and the L4 NAT connections drain for ``shutdown_grace`` seconds (no new connection is
taken meanwhile), stops HAProxy, deletes Bascule's nftables tables and removes the VIPs
Bascule added. A daemon killed outright leaves the data plane as SIGTERM does.

The first start (no user yet) creates the ``admin`` user with a random password (or the one of
``BASCULE_ADMIN_PASSWORD``, not shown), printed once on a terminal, else written to
``<data dir>/initial-admin-password`` (0600) whose path is printed (daemon/first_admin.py).

The HTTPS listener is guarded (daemon/listener.py): connections capped per source and in all,
the handshake, a request's head and its body bounded in time, and descriptors kept in reserve
for the unix socket and the engines; old audit entries and revisions are pruned every hour
(daemon/retention.py).

This module is the composition (``Daemon``: what is built, in which order, the loops, the
stop); what it serves its doors and the sockets they listen on are daemon/doors.py, what a
start takes over (the stored revisions, the engines left running) daemon/adoption.py, and the
process around it (``run``: ``asyncio.run`` with its clean-up bounded) daemon/process.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import resource
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from bascule import __version__
from bascule.daemon import first_admin, heap
from bascule.daemon.accounts import AccountService
from bascule.daemon.acme import AcmeService
from bascule.daemon.adoption import adopt_engines, check_stored_revisions, last_good
from bascule.daemon.audit import AuditService
from bascule.daemon.certificates import CertificateService
from bascule.daemon.doors import (
    REQUESTS_GRACE_S,
    AppFactory,
    DaemonServices,
    UnixSocketServer,
    bind_unix_socket,
    prepare_https,
    serve_https,
    wait_answers,
)
from bascule.daemon.dynamic import DynamicScheduler
from bascule.daemon.ha import HaService
from bascule.daemon.handover import Handover
from bascule.daemon.http_users import HttpUserService
from bascule.daemon.l4 import L4Supervisor
from bascule.daemon.listener import (
    Exhaustion,
    ListenerLimits,
    descriptor_budget,
    quiet_exhaustion,
    raise_descriptor_limit,
)
from bascule.daemon.logfiles import rotate_if_larger, stderr_file
from bascule.daemon.pages import PageService
from bascule.daemon.pair import Listener, PairService
from bascule.daemon.pair_state import StateSync, ensure_peers_certificate, private_directory
from bascule.daemon.request_logs import LogPipe, RequestLogFile
from bascule.daemon.request_logs import listen as request_logs_listen
from bascule.daemon.retention import MIB, Retention, RetentionPolicy
from bascule.daemon.service import ConfigService
from bascule.daemon.statistics import Statistics
from bascule.daemon.subnets import ConnectedSubnets
from bascule.daemon.systemd import Notifier
from bascule.daemon.vips import IpVipManager, PairedVips
from bascule.engines.base import Engine
from bascule.engines.conntrackd.shell import ConntrackdShell
from bascule.engines.haproxy.engine import HaproxyEngine
from bascule.engines.haproxy.peers import PeersListener, PeersTls
from bascule.engines.keepalived.engine import KeepalivedEngine, TrackedProcess
from bascule.engines.nftables.engine import NftablesEngine
from bascule.engines.nftables.filter import FilterEngine
from bascule.engines.stunnel.engine import StunnelEngine
from bascule.errors import BasculeError
from bascule.settings import Settings
from bascule.store.accounts import AccountStore
from bascule.store.acme import AcmeStore
from bascule.store.audit import AuditStore
from bascule.store.certificates import CertificateStore
from bascule.store.http_users import HttpUserStore
from bascule.store.pages import PageStore
from bascule.store.pair import PairStore
from bascule.store.revisions import RevisionStore

log = logging.getLogger("bascule.daemon")


def haproxy_maxconn(nofile: int) -> int:
    """The ceiling of HAProxy's global maxconn: two descriptors per connection (client and
    server side). The view lowers it to what fits beside the descriptors each configuration
    holds (listeners, checks, sockets, threads: engines/haproxy/descriptors.py); HAProxy
    refuses to start when maxconn needs more descriptors than it may open."""
    return max(1, nofile // 2)


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


#: How often the log files' sizes are checked (daemon/logfiles.py).
LOG_ROTATION_INTERVAL = 30.0


class Daemon:
    def __init__(self, settings: Settings, *, make_app: AppFactory) -> None:
        self.settings = settings
        self.make_app = make_app
        self._stop = asyncio.Event()
        self._stop_data_plane = False
        self.notifier = Notifier()
        self._nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self._listener_limits = ListenerLimits()

    def request_stop(self, *, data_plane: bool) -> None:
        """Stop the daemon; with ``data_plane``, HAProxy, the nftables tables and the VIPs too
        (a later request without it does not take that back)."""
        self._stop_data_plane = self._stop_data_plane or data_plane
        self._stop.set()

    async def run(self) -> None:
        settings = self.settings
        # Descriptors: the soft limit up to the hard one, the HTTPS listener kept well below it
        # (daemon/listener.py). HAProxy inherits the raised limit: its maxconn is sized from it
        # and from what each configuration holds (engines/haproxy/descriptors.py).
        _, self._nofile = raise_descriptor_limit()
        nofile = self._nofile
        self._listener_limits = descriptor_budget(
            ListenerLimits(
                max_connections=settings.listen_max_connections,
                max_per_source=settings.listen_max_per_source,
                handshake_timeout=settings.listen_handshake_timeout,
                head_timeout=settings.listen_header_timeout,
                body_timeout=settings.listen_body_timeout,
                idle_timeout=settings.listen_idle_timeout,
            ),
            nofile,
        )
        asyncio.get_running_loop().set_exception_handler(quiet_exhaustion(Exhaustion()))
        prepare_data_dir(settings.data_dir)
        with data_dir_lock(settings.data_dir):
            (settings.data_dir / "bascule.pid").write_text(f"{os.getpid()}\n")
            store = RevisionStore(settings.database_path)
            try:
                with (
                    AccountStore(settings.database_path) as account_store,
                    AuditStore(settings.database_path) as audit_store,
                    CertificateStore(settings.database_path) as certificate_store,
                    AcmeStore(settings.database_path) as acme_store,
                    PageStore(settings.database_path) as page_store,
                    PairStore(settings.database_path) as pair_store,
                    HttpUserStore(settings.database_path) as http_user_store,
                ):
                    await self._run(
                        store,
                        account_store,
                        audit_store,
                        certificate_store,
                        acme_store,
                        page_store,
                        pair_store,
                        http_user_store,
                    )
            finally:
                store.close()
                with contextlib.suppress(FileNotFoundError):
                    (settings.data_dir / "bascule.pid").unlink()

    async def _run(
        self,
        store: RevisionStore,
        account_store: AccountStore,
        audit_store: AuditStore,
        certificate_store: CertificateStore,
        acme_store: AcmeStore,
        page_store: PageStore,
        pair_store: PairStore,
        http_user_store: HttpUserStore,
    ) -> None:
        settings = self.settings
        check_stored_revisions(store)
        audit = AuditService(audit_store)
        accounts = AccountService(
            account_store,
            idle_timeout=settings.session_idle_timeout,
            lockout_attempts=settings.lockout_attempts,
            lockout_source_attempts=settings.lockout_source_attempts,
            lockout_account_attempts=settings.lockout_account_attempts,
            lockout_seconds=settings.lockout_seconds,
            audit=audit,
        )
        await self._first_admin(accounts)
        listener = prepare_https(settings)
        # HAProxy's request log lines, through a pipe its master inherits (request_logs.py)
        request_log_pipe = LogPipe(settings.haproxy_dir / "requests.fifo")
        # One HAProxy thread per CPU this process may run on (its affinity, not the machine's
        # count: under taskset or a cpuset, extra threads would only fight over the same CPUs).
        cpus = tuple(sorted(os.sched_getaffinity(0)))
        engine = HaproxyEngine(
            settings.haproxy_dir,
            binary=settings.haproxy_binary,
            maxconn=haproxy_maxconn(self._nofile),
            nbthread=len(cpus),
            descriptor_limit=self._nofile,
            cpus=cpus,
            peers_listener=_peers_listener(settings),
            certificates_dir=settings.certificates_dir,
            request_log_pipe=request_log_pipe.write_fd,
            dynamic_servers=settings.haproxy_dynamic_servers,
            reload_delay=settings.haproxy_deferred_reload_delay,
            reload_max_delay=settings.haproxy_deferred_reload_max_delay,
            pages_dir=settings.pages_dir,
        )
        # HAProxy's request log lines, kept on disk (daemon/request_logs.py)
        request_logs = RequestLogFile(
            settings.request_log_path,
            max_bytes=int(settings.request_log_max_mb * MIB),
            keep=settings.request_log_keep,
        )
        request_log_receiver = await request_logs_listen(request_log_pipe, request_logs)
        # type: starttls: the STARTTLS front, after HAProxy, whose loopback relay it connects to
        stunnel = StunnelEngine(
            settings.stunnel_dir,
            binary=settings.stunnel_binary,
            certificates_dir=settings.certificates_dir,
        )
        nftables = NftablesEngine()
        l4 = L4Supervisor(nftables)
        # an HA pair's VRRP: first, so a paired node may bind VIPs it does not hold before
        # HAProxy starts; the active fails over when this daemon or its HAProxy ends
        keepalived = KeepalivedEngine(
            settings.keepalived_dir,
            binary=settings.keepalived_binary,
            tracked=(
                TrackedProcess(name="daemon", pid_file=settings.data_dir / "bascule.pid"),
                TrackedProcess(name="haproxy", pid_file=engine.paths.pid_file),
            ),
        )
        # the kernel's access lists: before the engines that serve, so a service's filter is
        # in place before it takes a connection
        filtering = FilterEngine()
        engines: list[Engine] = [keepalived, filtering, engine, stunnel, nftables]
        vips = PairedVips(IpVipManager(settings.data_dir / "vips.json"))
        # adaptive and weighted_response_time: weights decided at run time (daemon/dynamic.py)
        dynamic = DynamicScheduler(ceiling=engine.max_weight)
        service = ConfigService(
            store=store,
            engines=engines,
            vips=vips,
            after_reconcile=l4.follow,
            overrides=dynamic.overrides,
            audit=audit,
        )
        service.connected_networks = ConnectedSubnets().networks
        certificates = CertificateService(
            certificate_store, directory=settings.certificates_dir, config=service, audit=audit
        )
        acme = AcmeService(acme_store, certificates=certificates)
        pages = PageService(page_store, directory=settings.pages_dir, config=service, audit=audit)
        http_users = HttpUserService(http_user_store, config=service, audit=audit, engine=engine)
        service.attach_certificates(
            lambda config: [
                *certificates.document_problems(config),
                *pages.document_problems(config),
                *http_users.document_problems(config),
            ],
            lambda: (*certificates.alerts(), *acme.alerts()),
        )
        # the engines read the stores' files: written before anything checks or starts them
        await certificates.prepare()
        await pages.prepare()
        await http_users.prepare()
        statistics = Statistics(
            service.status, interval=settings.stats_interval, after_sample=heap.trim
        )
        service.changes.after_change = heap.Trimmer().soon
        # At boot the VIPs are gone while vips.json remembers them: forget those, so that the
        # first reconcile puts them back with the rest of the stored revision.
        await vips.forget_missing()
        retention = Retention(
            revisions=store,
            audit=audit_store,
            policy=RetentionPolicy(
                audit_days=settings.audit_retention_days,
                audit_max_bytes=int(settings.audit_max_mb * MIB),
                revisions_keep=settings.revisions_keep,
                revisions_max_bytes=int(settings.revisions_max_mb * MIB),
            ),
        )
        # the pair's stick tables, shared with the peer (daemon/pair_state.py)
        ha_dir = private_directory(settings.data_dir)
        peers_certificate = ensure_peers_certificate(ha_dir)
        state_sync = StateSync(
            store=pair_store,
            config=service,
            haproxy=engine,
            keepalived=keepalived,
            directory=ha_dir,
            own_certificate=peers_certificate,
            conntrackd=ConntrackdShell(
                settings.data_dir / "conntrackd", binary=settings.conntrackd_binary
            ),
            handover=(handover := Handover(config=service, keepalived=keepalived)),
        )
        await state_sync.prepare()
        await adopt_engines(service, last_good(store), l4_adopted=l4.adopted)
        ok, error = await service.reconcile()
        log.info("started", extra={"version": __version__, "applied": ok, "error": error})

        async def system() -> dict[str, Any]:
            info: dict[str, Any] = {
                "engines": {e.name: await e.info() for e in engines},
                "data_dir": str(settings.data_dir),
                "pid": os.getpid(),
                "listen": None if listener is None else settings.listen,
            }
            if listener is not None:
                certificate = listener[0]
                info["tls"] = {
                    "cert": str(certificate.cert),
                    "not_after": certificate.not_after.isoformat(),
                    "sha256": certificate.fingerprint,
                }
            return info

        # the HA pair's configuration sync (daemon/pair.py): writes only on the active, each
        # commit handed to the standby
        pair = PairService(
            store=pair_store,
            config=service,
            certificates=certificates,
            accounts=accounts,
            keepalived=keepalived,
            listener=None
            if listener is None or settings.listen_address is None
            else Listener(
                host=settings.listen_address[0],
                port=settings.listen_address[1],
                certificate_pem=listener[0].cert.read_text(),
                peers_certificate_pem=peers_certificate,
            ),
            audit=audit,
            archive_dir=ha_dir / "conflicts",
            http_users=http_users,
        )
        service.changes.guard = pair.check_writable
        service.changes.after_commit = pair.after_commit
        http_users.after_change = pair.after_commit
        services = DaemonServices(
            config=service,
            accounts=accounts,
            audit=audit,
            statistics=statistics,
            system=system,
            stop=self.request_stop,
            certificates=certificates,
            acme=acme,
            ha=HaService(
                service, keepalived, audit=audit, pair=pair, state=state_sync, handover=handover
            ),
            request_logs=request_logs,
            pages=pages,
            http_users=http_users,
        )
        app = self.make_app(services, local=True)
        socket_path = settings.socket_path
        server = UnixSocketServer(
            uvicorn.Config(
                app,
                uds=str(socket_path),
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=REQUESTS_GRACE_S,
            )
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)  # the daemon only
        # Bound here, not by uvicorn: given uds= alone, uvicorn makes the socket 0666 once it
        # listens, and anyone connecting before our chmod would be trusted as root.
        api_socket = bind_unix_socket(socket_path)
        api = asyncio.create_task(server.serve(sockets=[api_socket]), name="api")
        while not server.started and not api.done():  # noqa: ASYNC110  (uvicorn has no event)
            await asyncio.sleep(0.02)
        if api.done():
            api.result()
        log.info("serving the API", extra={"socket": str(socket_path)})
        https = await serve_https(
            services,
            listener,
            settings=settings,
            make_app=self.make_app,
            limits=self._listener_limits,
        )
        await wait_answers(socket_path)
        self.notifier.ready(_ready_status(ok, error))
        reconciler = asyncio.create_task(self._reconcile_forever(service, vips), name="reconcile")
        # servers HAProxy added at runtime, made ordinary ones by a reload when it is due
        deferred_reloads = asyncio.create_task(
            service.reconciler.run_deferred_reloads(), name="deferred reloads"
        )
        l4_loop = asyncio.create_task(l4.run(service.desired), name="l4")
        dynamic_loop = asyncio.create_task(dynamic.run(service), name="dynamic")
        statistics_loop = asyncio.create_task(statistics.run(), name="statistics")
        watchdog = asyncio.create_task(self.notifier.watchdog(), name="watchdog")
        rotation = asyncio.create_task(self._rotate_logs_forever(engine), name="log rotation")
        retention_loop = asyncio.create_task(retention.run(), name="retention")
        expiry_loop = asyncio.create_task(certificates.watch_expiry(), name="expiry")
        acme_loop = asyncio.create_task(acme.run(settings.acme_interval), name="acme")
        pair_loop = asyncio.create_task(pair.run(), name="pair sync")
        state_loop = asyncio.create_task(state_sync.run(), name="pair state sync")
        loops = (
            pair_loop,
            state_loop,
            reconciler,
            deferred_reloads,
            l4_loop,
            dynamic_loop,
            statistics_loop,
            watchdog,
            rotation,
            retention_loop,
            expiry_loop,
            acme_loop,
        )
        await self._stop.wait()
        data_plane = self._stop_data_plane
        if data_plane:
            log.info(
                "stopping with the data plane: draining connections",
                extra={"grace_s": settings.shutdown_grace},
            )
            self.notifier.stopping("stopping the data plane: draining connections")
        else:
            log.info("stopping the daemon; the data plane keeps running")
            self.notifier.stopping("stopping the daemon; the data plane keeps running")
        for task in loops:
            task.cancel()
        server.should_exit = True
        if https is not None:
            https[0].should_exit = True
        for task in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await api
        if https is not None:
            with contextlib.suppress(SystemExit):
                await https[1]
        await l4.stop()
        if data_plane:
            await self._stop_data_plane_now(engines, vips)
            if state_sync.conntrackd is not None:
                await state_sync.conntrackd.stop()
        request_log_receiver.close()
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        if data_plane:
            log.info("stopped, with the data plane")
        else:
            log.info(
                "stopped; the data plane runs on for the next start to adopt",
                extra={"haproxy_pids": await _worker_pids(engine)},
            )

    async def _stop_data_plane_now(self, engines: list[Engine], vips: PairedVips) -> None:
        """Drain and stop every engine (together, within the shutdown grace), then remove
        the VIPs Bascule added."""
        grace = self.settings.shutdown_grace
        results = await asyncio.gather(
            *(e.stop(grace=grace) for e in engines), return_exceptions=True
        )
        for stopped, result in zip(engines, results, strict=True):
            if isinstance(result, BaseException):
                log.error(
                    "engine did not stop", extra={"engine": stopped.name, "error": str(result)}
                )
        await vips.remove_all()

    async def _rotate_logs_forever(self, engine: HaproxyEngine) -> None:
        """Keep haproxy.log, and the daemon's own log when it is a file, under the cap."""
        settings = self.settings
        own = stderr_file()
        files = [engine.paths.log] if own is None else [engine.paths.log, own]
        while True:
            for path in files:
                try:
                    await asyncio.to_thread(
                        rotate_if_larger,
                        path,
                        max_bytes=settings.log_file_max_bytes,
                        backups=settings.log_file_backups,
                    )
                except OSError as exc:
                    log.warning(
                        "cannot rotate a log file", extra={"path": str(path), "error": str(exc)}
                    )
            await asyncio.sleep(LOG_ROTATION_INTERVAL)

    async def _first_admin(self, accounts: AccountService) -> None:
        """Create ``admin`` on the first start and hand a generated password to whoever
        started the daemon, once (daemon/first_admin.py: a terminal, else a 0600 file)."""
        given = self.settings.admin_password
        password = await accounts.ensure_admin(None if given is None else given.get_secret_value())
        if password is None:
            admin = accounts.store.user("admin")
            data_dir = self.settings.data_dir
            if first_admin.forget_if_changed(
                data_dir, admin.password_changed_at if admin else None
            ):
                log.info("deleted the initial admin password file: the password was changed")
            return
        if given is None:
            # never the log: a terminal, or a file only root reads
            where = first_admin.deliver(
                password, data_dir=self.settings.data_dir, stream=sys.stdout
            )
            log.info(
                "created the admin user",
                extra={"password": "printed once on stdout" if where is None else str(where)},
            )
        else:
            log.info("created the admin user with the password of BASCULE_ADMIN_PASSWORD")

    async def _reconcile_forever(self, service: ConfigService, vips: PairedVips) -> None:
        # each pass reads every server's runtime state and plans them: its memory is given
        # back like a sample's (daemon/heap.py)
        trimmer = heap.Trimmer()
        while True:
            await asyncio.sleep(self.settings.reconcile_interval)
            try:
                async with service.reconciler.lock:  # never while a change places its VIPs
                    await vips.forget_missing()
                await service.reconcile(retry_failed=False)
                trimmer.soon()
            except (BasculeError, OSError) as exc:
                log.error("reconcile failed", extra={"error": str(exc)})


async def _worker_pids(engine: HaproxyEngine) -> list[int]:
    try:
        return await engine.worker_pids()
    except BasculeError:
        return []


def _ready_status(ok: bool, error: str | None) -> str:
    """``systemctl status``'s line once the daemon is ready."""
    if ok:
        return "serving: the engines run the current revision"
    return f"serving the last good revision: the current one failed to apply: {error}"


def _peers_listener(settings: Settings) -> PeersListener | None:
    """HAProxy's peers listener on the network (the HA pair), with its TLS; ``None``: the
    default unix socket in HAProxy's run directory."""
    if settings.peers_listen is None:
        return None
    if settings.peers_tls_cert is None or settings.peers_tls_ca is None:  # Settings refuses it
        raise BasculeError("peers_listen needs peers_tls_cert and peers_tls_ca")
    return PeersListener(
        address=settings.peers_listen,
        tls=PeersTls(crt=str(settings.peers_tls_cert), ca_file=str(settings.peers_tls_ca)),
    )
