"""How the CLI reaches the daemon: its unix socket, or HTTPS with a token, and its answers.

It sits at the CLI's edge of the flow of a change, under ``client.BasculeClient`` (one method
per route of ``/api/v1``): a ``Connection`` sends a request to the daemon and turns every
failure into a ``CliError`` whose lines are ready to print, one problem per line (a field path
and its message, a stale revision, a daemon that does not answer, a certificate not trusted);
an answer is the API's JSON, a plain dict. It also waits for a daemon that starts or stops.

Two ways in: the local unix socket (the caller trusted as a local administrator; writes carry
``X-Bascule-Author: <login>@cli``), or a remote daemon over HTTPS with an API token
(``Connection.over_https``), its certificate checked against the system's CAs, a given CA file
(``--ca-cert``: for a self-signed certificate, the certificate itself), or not at all
(``--insecure``).
"""

from __future__ import annotations

import getpass
import socket
import ssl
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

# httpx's package imports its own command line (httpx._main: click, pygments, rich.progress,
# rich.syntax), a third of its import time, which every `bascule` command would pay for a
# program it never runs. A None in sys.modules makes that import fail, and httpx then defines
# a stub `httpx.main` instead (httpx/__init__.py catches the ImportError). Nothing in Bascule
# runs httpx's CLI; a process that imported httpx earlier is left as it is.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

import httpx  # noqa: E402

from bascule.cli.errors import CliError  # noqa: E402

API = "/api/v1"
AUTHOR_HEADER = "X-Bascule-Author"

#: Applying a change may reload an engine; reading is quick. Connecting must be.
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=5.0)


def login_author() -> str:
    """``<login user>@cli``, the author every write is recorded under."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name: a container without /etc/passwd entry
        user = "unknown"
    return f"{user}@cli"


def error_lines(response: httpx.Response) -> list[str]:
    """The problems an error answer reports, one per line.

    The API answers ``{"error": {"kind", "message", "fields": [{"path", "message"}]}}``; every
    field error is its own line. Anything else (a proxy's page, FastAPI's own ``detail``) is
    reported with the HTTP status so it is never silently lost.
    """
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        lines = [_field_line(f) for f in error.get("fields") or () if isinstance(f, dict)]
        if lines:
            return lines
        if error.get("message"):
            return [str(error["message"])]
    if isinstance(body, dict) and body.get("detail"):
        return _detail_lines(body["detail"])
    text = response.text.strip().splitlines()
    reason = text[0] if text else response.reason_phrase
    return [f"the daemon answered HTTP {response.status_code}: {reason}"]


def _field_line(field: Mapping[str, Any]) -> str:
    path, message = field.get("path") or "", field.get("message") or "invalid"
    return f"{path}: {message}" if path else str(message)


def _detail_lines(detail: Any) -> list[str]:
    if isinstance(detail, list):
        lines = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
                lines.append(
                    f"{where}: {item.get('msg', 'invalid')}"
                    if where
                    else str(item.get("msg", "invalid"))
                )
            else:
                lines.append(str(item))
        return lines or ["invalid request"]
    return [str(detail)]


def remote_base_url(url: str) -> str:
    """``host:8443``, ``https://host:8443/``, ``https://host:8443/api/v1`` ->
    ``https://host:8443``. Only HTTPS: a token must never cross the network in clear."""
    text = url.strip().rstrip("/")
    if "://" not in text:
        text = f"https://{text}"
    parsed = httpx.URL(text)
    if parsed.scheme != "https":
        raise CliError(f"--url must be an https:// address (the token is a secret), not {url}")
    if not parsed.host:
        raise CliError(f"--url has no host: {url}")
    return str(parsed.copy_with(path="/", query=None, fragment=None)).rstrip("/")


def tls_context(*, ca_cert: Path | None = None, insecure: bool = False) -> ssl.SSLContext | bool:
    """How to check the daemon's certificate: the system's CAs, ``ca_cert``, or not at all."""
    if insecure:
        return False
    if ca_cert is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_cert))
    except (OSError, ssl.SSLError) as exc:
        raise CliError(f"cannot read the CA certificate {ca_cert}: {_reason(exc)}") from exc


class Connection:
    """The daemon's REST API over its unix socket (or HTTPS), answers as JSON dicts."""

    def __init__(
        self,
        socket: Path,
        *,
        author: str,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        remote: httpx.Client | None = None,
    ) -> None:
        """A client of the socket at ``socket``; or, given ``remote`` (see ``over_https``),
        of the daemon that HTTPS client reaches."""
        self.socket = socket
        self.author = author
        self.remote = remote is not None
        self.where = str(remote.base_url).rstrip("/") if remote is not None else str(socket)
        self._check_socket = transport is None and remote is None
        # verify=False: nothing on a unix socket is TLS, and loading the CA bundle for a
        # context that is never used would cost every command tens of milliseconds.
        self._http = remote or httpx.Client(
            transport=transport or httpx.HTTPTransport(uds=str(socket), verify=False),
            base_url="http://bascule",
            timeout=timeout,
        )

    @classmethod
    def over_https(
        cls,
        url: str,
        *,
        token: str,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> Self:
        """A client of a remote daemon at ``url`` (HTTPS), authenticated by an API token."""
        http = httpx.Client(
            transport=transport,
            base_url=remote_base_url(url),
            timeout=timeout,
            verify=verify,
            headers={"Authorization": f"Bearer {token}"},
        )
        return cls(Path(), author="", remote=http)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- waiting for a daemon that stops or starts ------------------------------------------

    def wait_silent(self, timeout: float, *, poll: float = 0.1) -> bool:
        """Wait until the daemon no longer answers; whether it stopped within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.remote and not self._accepts():
                return True
            try:
                self._get("/auth/whoami", timeout=min(2.0, max(deadline - time.monotonic(), poll)))
            except CliError:
                return True
            time.sleep(poll)
        return False

    def wait_for_answer(
        self, timeout: float, *, alive: Callable[[], bool] = lambda: True, poll: float = 0.1
    ) -> None:
        """Return once the daemon answers a real request (``whoami``), trying for up to
        ``timeout`` seconds while ``alive()`` holds; else raise the last problem seen.

        A socket file is no sign of a daemon that serves: the daemon binds it (the file
        appears), then starts listening, then serving. Until it listens a connection is
        refused; so each try first connects a plain socket (closed at once: httpcore would
        leak its own, see ``_request``) and only then sends the request.
        """
        deadline = time.monotonic() + timeout
        last = self._unreachable()
        while True:
            if not alive():
                raise CliError("the daemon exited before it answered", *last.lines)
            if self.remote or self._accepts():
                remaining = max(deadline - time.monotonic(), poll)
                try:
                    self._get("/auth/whoami", timeout=min(remaining, 5.0))
                    return
                except CliError as exc:
                    last = exc
            if time.monotonic() + poll > deadline:
                raise CliError(f"the daemon did not answer within {timeout:g} s", *last.lines)
            time.sleep(poll)

    def _accepts(self) -> bool:
        """The daemon's socket accepts a connection (a file alone is not enough)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            try:
                probe.connect(str(self.socket))
            except OSError:
                return False
        return True

    # -- transport -------------------------------------------------------------------------

    def _socket_exists(self) -> None:
        try:
            exists = self.socket.is_socket()
        except OSError as exc:
            raise self._unreachable(exc) from exc
        if not exists:
            raise self._unreachable()

    def _unreachable(self, exc: BaseException | None = None) -> CliError:
        """The daemon is not there, or this user may not talk to it."""
        if self.remote:
            return self._remote_unreachable(exc)
        while exc is not None and not isinstance(exc, PermissionError):
            exc = exc.__cause__ or exc.__context__
        if exc is not None:
            return CliError(
                f"cannot reach the Bascule daemon at {self.socket}: permission denied "
                "(run as root, or as a user the daemon's socket lets in)"
            )
        return CliError(
            f"cannot reach the Bascule daemon at {self.socket}: is `bascule run` running?"
        )

    def _remote_unreachable(self, exc: BaseException | None) -> CliError:
        cause = exc
        while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            return CliError(
                f"the certificate of {self.where} is not trusted ({cause.verify_message}): "
                "give its CA (or the self-signed certificate itself) with --ca-cert FILE, "
                "or --insecure to skip the check"
            )
        reason = "" if exc is None else f": {_reason(exc)}"
        return CliError(f"cannot reach the Bascule daemon at {self.where}{reason}")

    def _get(
        self, path: str, *, params: Mapping[str, Any] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        return self._request("GET", path, params=params, timeout=timeout)

    def _write(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        all_headers = {**({} if self.remote else {AUTHOR_HEADER: self.author}), **(headers or {})}
        return self._request(method, path, params=params, body=body, headers=all_headers)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """One request, its JSON answer; ``timeout`` (seconds) replaces the client's own."""
        return json_object(
            self._response(method, path, params=params, body=body, headers=headers, timeout=timeout)
        )

    def _response(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """One request; its answer, or a CliError with the problems an error answer names."""
        # Checked first because httpcore leaks its socket object when a unix-socket connect
        # fails (httpcore/_backends/sync.py: connect_unix_socket never closes it), and because
        # a missing socket needs no round trip to say the daemon is not running.
        if self._check_socket:
            self._socket_exists()
        try:
            response = self._http.request(
                method,
                API + path,
                params=params,
                json=body,
                content=content,
                headers=headers,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except httpx.TimeoutException as exc:
            raise CliError(
                f"the Bascule daemon at {self.where} did not answer in time ({_reason(exc)})"
            ) from exc
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.is_error:
            raise CliError(*error_lines(response))
        return response


def json_object(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        data = response.json()
    except ValueError as exc:
        raise CliError(
            f"the daemon answered HTTP {response.status_code} with something that is not JSON"
        ) from exc
    if not isinstance(data, dict):
        raise CliError("the daemon answered with JSON that is not an object")
    return data


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
