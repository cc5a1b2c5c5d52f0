"""The doors the daemon serves: what it hands them, and the sockets and servers they listen on.

Where it sits: between the daemon's composition (runner.py), which builds ``DaemonServices``
and serves the apps ``AppFactory`` makes (the API, the WUI: they sit above the daemon and are
given by the composition root, bascule/serve.py), and uvicorn: the API's unix socket (0600,
``bind_unix_socket``, served by ``UnixSocketServer``), the HTTPS listener's socket and server
settings (``bind_tcp_socket``, ``https_config``; its guard is daemon/listener.py), and
``wait_answers``, the readiness check that the API answers a real request.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import uvicorn

from bascule.daemon.accounts import AccountService
from bascule.daemon.acme import AcmeService
from bascule.daemon.audit import AuditService
from bascule.daemon.certificates import CertificateService
from bascule.daemon.ha import HaService
from bascule.daemon.http_users import HttpUserService
from bascule.daemon.listener import GuardedServer, ListenerLimits
from bascule.daemon.pages import PageService
from bascule.daemon.request_logs import RequestLogFile
from bascule.daemon.service import ConfigService
from bascule.daemon.statistics import Statistics
from bascule.daemon.tls import Certificate, ensure_certificate
from bascule.errors import BasculeError
from bascule.settings import Settings

log = logging.getLogger("bascule.daemon")


def bind_unix_socket(path: Path) -> socket.socket:
    """The API's unix socket, bound (not yet listening) and 0600 from the moment it exists:
    whoever connects is trusted as a local administrator, so only root may."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
        path.chmod(0o600)
    except OSError as exc:
        sock.close()
        raise BasculeError(f"cannot create the API socket {path}: {exc}") from exc
    finally:
        os.umask(old_umask)
    return sock


def bind_tcp_socket(host: str, port: int) -> socket.socket:
    """The HTTPS listener's socket, bound (not yet listening) before the engines start, so an
    address another program holds stops the daemon before it changes anything."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BasculeError(
            f"cannot listen on {host}:{port} for HTTPS: {exc.strerror or exc}"
            " (another program holds it? choose another with --listen, or --listen none)"
        ) from exc
    return sock


def https_config(
    app: Any,
    host: str,
    port: int,
    certificate: Certificate,
    limits: ListenerLimits = ListenerLimits(),
) -> uvicorn.Config:
    """The HTTPS listener's server: TLS with Python's defaults (TLS 1.2 or later, forward
    secrecy, AEAD or SHA-2 ciphers; uvicorn before 0.48 would restrict TLS 1.2 to its CBC-SHA1
    ciphers unless told otherwise), no access log (it would hold request lines of every
    client), no ``Server`` header, and no trust in ``X-Forwarded-*``: the client's address is
    the one the audit log records. httptools (which ``listener.GuardedHttpProtocol`` extends),
    no WebSockets, and ``limits.idle_timeout`` between two requests of a connection."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=str(certificate.cert),
        ssl_keyfile=str(certificate.key),
        ssl_ciphers=None,  # Python's defaults, whatever uvicorn's default is
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        http="httptools",
        ws="none",
        timeout_keep_alive=limits.idle_timeout,
        timeout_graceful_shutdown=REQUESTS_GRACE_S,
    )


class UnixSocketServer(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # older uvicorn
        return


SystemInfo = Callable[[], Awaitable[dict[str, Any]]]

#: At a stop, how long the API's requests in flight may take before they are cancelled (a
#: peer's call whose link went down would otherwise hold the stop for its whole timeout).
REQUESTS_GRACE_S = 5


class StopDaemon(Protocol):
    """Asks the running daemon to stop: itself only, or (``data_plane``) the engines and the
    VIPs too. It stops after the request that asked has been answered."""

    def __call__(self, *, data_plane: bool) -> None: ...


@dataclass(frozen=True, kw_only=True)
class DaemonServices:
    """What the daemon hands the doors it serves (the API, the WUI)."""

    config: ConfigService
    accounts: AccountService
    audit: AuditService
    statistics: Statistics
    system: SystemInfo
    stop: StopDaemon
    certificates: CertificateService
    acme: AcmeService
    ha: HaService | None = None  # this node of the HA pair (daemon/ha.py)
    request_logs: RequestLogFile | None = None
    pages: PageService | None = None  # the page store (daemon/pages.py)
    http_users: HttpUserService | None = None  # basic auth users (daemon/http_users.py)


class AppFactory(Protocol):
    """Builds an ASGI app the daemon serves; given by the composition root (bascule.main) so
    the daemon does not import the API or the WUI, which sit above it. ``local``: the unix
    socket's app (API only, the caller trusted as a local administrator); otherwise the
    HTTPS listener's (API and WUI, every request authenticated)."""

    def __call__(self, services: DaemonServices, *, local: bool) -> Any: ...


async def wait_answers(socket_path: Path, within: float = 10.0) -> None:
    """Wait until the API answers a real request on its unix socket (readiness means it)."""
    request = b"GET /api/v1/auth/whoami HTTP/1.1\r\nHost: bascule\r\nConnection: close\r\n\r\n"
    deadline = asyncio.get_running_loop().time() + within
    last = "no answer"
    while asyncio.get_running_loop().time() < deadline:
        try:
            async with asyncio.timeout(2.0):
                reader, writer = await asyncio.open_unix_connection(str(socket_path))
                try:
                    writer.write(request)
                    await writer.drain()
                    status_line = await reader.readline()
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
        except (OSError, TimeoutError) as exc:
            last = str(exc) or type(exc).__name__
        else:
            if status_line.startswith(b"HTTP/1.1 200"):
                return
            last = status_line.decode(errors="replace").strip()
        await asyncio.sleep(0.05)
    raise BasculeError(f"the API on {socket_path} does not answer: {last}")


def prepare_https(settings: Settings) -> tuple[Certificate, socket.socket] | None:
    """The HTTPS listener's certificate (generated at first start) and bound socket, or
    ``None`` when ``listen`` is ``none``."""
    address = settings.listen_address
    if address is None:
        log.info("the HTTPS listener is disabled (listen: none)")
        return None
    host, port = address
    certificate = ensure_certificate(
        settings.tls_cert_path, settings.tls_key_path, listen_host=host
    )
    if certificate.generated:
        log.info("generated a self-signed TLS certificate", extra={"cert": str(certificate.cert)})
    return certificate, bind_tcp_socket(host, port)


async def serve_https(
    services: DaemonServices,
    listener: tuple[Certificate, socket.socket] | None,
    *,
    settings: Settings,
    make_app: AppFactory,
    limits: ListenerLimits,
) -> tuple[uvicorn.Server, asyncio.Task[None]] | None:
    """Serve the API and the WUI over HTTPS on the socket ``prepare_https`` bound."""
    if listener is None:
        return None
    certificate, sock = listener
    host, port = sock.getsockname()[:2]
    server = GuardedServer(
        https_config(make_app(services, local=False), host, port, certificate, limits),
        limits=limits,
    )
    task = asyncio.create_task(server.serve(sockets=[sock]), name="https")
    while not server.started and not task.done():  # noqa: ASYNC110  (uvicorn has no event)
        await asyncio.sleep(0.02)
    if task.done():
        with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot listen
            task.result()
        raise BasculeError(f"cannot serve HTTPS on {settings.listen} (see the log above)")
    log.info(
        "serving HTTPS",
        extra={
            "listen": settings.listen,
            "max_connections": limits.max_connections,
            "max_per_source": limits.max_per_source,
            "cert": str(certificate.cert),
            "sha256": certificate.fingerprint,
            "not_after": certificate.not_after.isoformat(),
        },
    )
    return server, task
