"""The API client the CLI speaks through: one method per route of ``/api/v1``.

It sits at the CLI's edge of the flow of a change: commands build documents and edits, this
module sends them to the daemon and turns every failure into a ``CliError`` whose lines are
ready to print, one problem per line (a field path and its message, a stale revision, a daemon
that does not answer). The answers are the API's JSON, returned as plain dicts.

Two ways in: the local unix socket (the caller trusted as a local administrator; writes carry
``X-Bascule-Author: <login>@cli``), or a remote daemon over HTTPS with an API token
(``BasculeClient.remote``), its certificate checked against the system's CAs, a given CA file
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
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

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


class BasculeClient:
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
    ) -> BasculeClient:
        """A client of a remote daemon at ``url`` (HTTPS), authenticated by an API token."""
        http = httpx.Client(
            transport=transport,
            base_url=remote_base_url(url),
            timeout=timeout,
            verify=verify,
            headers={"Authorization": f"Bearer {token}"},
        )
        return cls(Path(), author="", remote=http)

    def __enter__(self) -> BasculeClient:
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

    # -- configuration ---------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        return self._get("/config")

    def put_config(
        self,
        document: Any,
        *,
        dry_run: bool = False,
        message: str = "",
        base: int | None = None,
    ) -> dict[str, Any]:
        """Apply a whole document; with ``base``, refuse it if the head is no longer ``base``."""
        headers = {"If-Match": f'"{base}"'} if base is not None else {}
        params = {"dry_run": "true" if dry_run else "false", "message": message}
        return self._write("PUT", "/config", params=params, body=document, headers=headers)

    def plan(self, document: Any) -> dict[str, Any]:
        return self._write("POST", "/config/plan", body=document)

    # -- virtual services ------------------------------------------------------------------

    def list_virtual_services(self) -> dict[str, Any]:
        return self._get("/virtual-services")

    def get_virtual_service(self, name: str) -> dict[str, Any]:
        return self._get(_vs(name))

    def add_virtual_service(self, service: Mapping[str, Any]) -> dict[str, Any]:
        return self._write("POST", "/virtual-services", body=service)

    def replace_virtual_service(self, name: str, service: Mapping[str, Any]) -> dict[str, Any]:
        return self._write("PUT", _vs(name), body=service)

    def update_virtual_service(self, name: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        return self._write("PATCH", _vs(name), body=changes)

    def delete_virtual_service(self, name: str) -> dict[str, Any]:
        return self._write("DELETE", _vs(name))

    def update_sub_service(self, pool: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """``pool``: ``<service>/<sub-service>``."""
        return self._write("PATCH", _pool(pool), body=changes)

    def update_rule(self, service: str, rule: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        return self._write("PATCH", f"{_vs(service)}/rules/{quote(rule, safe='')}", body=changes)

    # -- real servers ----------------------------------------------------------------------

    def add_real_server(self, service: str, server: Mapping[str, Any]) -> dict[str, Any]:
        return self._write("POST", f"{_vs(service)}/real-servers", body=server)

    def get_real_server(self, service: str, key: str) -> dict[str, Any]:
        return self._get(_rs(service, key))

    def update_real_server(
        self, service: str, key: str, changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        return self._write("PATCH", _rs(service, key), body=changes)

    def delete_real_server(self, service: str, key: str) -> dict[str, Any]:
        return self._write("DELETE", _rs(service, key))

    def set_real_server_state(self, service: str, key: str, verb: str) -> dict[str, Any]:
        """``verb`` is ``enable``, ``disable`` or ``drain``."""
        return self._write("POST", f"{_rs(service, key)}/{verb}")

    def set_real_servers_state(
        self, verb: str, *, address: str | None, servers: list[tuple[str, str]]
    ) -> dict[str, Any]:
        """``verb`` (``enable``, ``disable``, ``drain``) every real server at ``address`` and
        each (service, ``address:port``) of ``servers``, in one revision."""
        body: dict[str, Any] = {
            "servers": [{"virtual_service": vs, "server": key} for vs, key in servers]
        }
        if address is not None:
            body["address"] = address
        return self._write("POST", f"/real-servers/{verb}", body=body)

    # -- DSR real-server help --------------------------------------------------------------

    def dsr_script(self, name: str, os: str = "linux") -> dict[str, Any]:
        """``{"script": ...}``: the commands a real server of the DSR service ``name`` needs."""
        return self._get(f"{_vs(name)}/dsr/script", params={"os": os})

    def dsr_verify(self, name: str) -> dict[str, Any]:
        """Check each real server of the DSR service ``name`` (a few seconds)."""
        return self._request("POST", f"{_vs(name)}/dsr/verify")

    # -- the HA pair ------------------------------------------------------------------------

    def ha_status(self) -> dict[str, Any]:
        """This node of the HA pair: role, peer, VRRP state."""
        return self._get("/ha")

    def ha_standby(self) -> dict[str, Any]:
        """Hand the VIPs to the peer now (this node must be the active)."""
        return self._request("POST", "/ha/standby")

    def ha_takeover(self) -> dict[str, Any]:
        """Take the VIPs from the active now (this node must be the joined standby)."""
        return self._request("POST", "/ha/takeover", timeout=30)

    def ha_join(
        self, url: str, token: str, *, fingerprint: str | None, ca_cert: str | None
    ) -> dict[str, Any]:
        """Join this node to the active at ``url`` (its history and certificates come here)."""
        body = {"url": url, "token": token, "fingerprint": fingerprint, "ca_cert": ca_cert}
        return self._request("POST", "/ha/join", body=body, timeout=120)

    def ha_leave(self) -> dict[str, Any]:
        """End the configuration sync with the peer, on both nodes."""
        return self._request("POST", "/ha/leave", timeout=30)

    def ha_resolve(self, keep: str) -> dict[str, Any]:
        """Keep node ``keep``'s history on both nodes of a pair whose histories diverge."""
        return self._request("POST", "/ha/resolve", body={"keep": keep}, timeout=120)

    # -- persistence tables ----------------------------------------------------------------

    def persistence(self, name: str) -> dict[str, Any]:
        """``{"service", "entries": [{"table", "key", "real_server", "expires_in_s"}]}``."""
        return self._get(f"{_vs(name)}/persistence")

    def clear_persistence(self, name: str) -> dict[str, Any]:
        """Empty the persistence tables of ``name``: ``{"service", "cleared": N}``."""
        return self._write("DELETE", f"{_vs(name)}/persistence")

    def client_loads(self, name: str, top: int, rule: str | None = None) -> dict[str, Any]:
        """``{"service", "rule", "clients": [{"client", "connections", ..., "limited"}]}``."""
        where = _pool(name) if rule is None else f"{_vs(name)}/rules/{quote(rule, safe='')}"
        return self._get(f"{where}/limits", params={"top": top})

    # -- access lists ----------------------------------------------------------------------

    def access_lists(self) -> dict[str, Any]:
        """``{"items": [{"name", "entries", "file", "used_by", "blocked", "dropped_packets"}]}``."""
        return self._get("/access-lists")

    def access_list(self, name: str) -> dict[str, Any]:
        return self._get(f"/access-lists/{quote(name, safe='')}")

    def set_access_list(self, name: str, addresses: list[str]) -> dict[str, Any]:
        body = {"addresses": addresses}
        return self._write("PUT", f"/access-lists/{quote(name, safe='')}", body=body)

    def import_access_list(self, name: str, text: str, file: str | None) -> dict[str, Any]:
        body = {"text": text, "file": file}
        return self._write("POST", f"/access-lists/{quote(name, safe='')}/import", body=body)

    def delete_access_list(self, name: str) -> dict[str, Any]:
        return self._write("DELETE", f"/access-lists/{quote(name, safe='')}")

    def block_access_list(self, name: str, blocked: bool) -> dict[str, Any]:
        """Put the list in the document's ``block`` (dropped everywhere) or take it out."""
        return self._write(
            "PUT" if blocked else "DELETE", f"/access-lists/{quote(name, safe='')}/block"
        )

    # -- status and history ----------------------------------------------------------------

    def status(self, *, fresh: bool = True) -> dict[str, Any]:
        """The status; ``fresh`` (a command's default) has the engines read now rather than
        their last reading of up to 10 s ago."""
        return self._get("/status", params={"fresh": "true"} if fresh else None)

    def request_logs(
        self, *, virtual_service: str | None, since: datetime | None, limit: int
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if virtual_service is not None:
            params["virtual_service"] = virtual_service
        if since is not None:
            params["since"] = since.isoformat()
        return self._get("/logs", params=params)

    def revisions(self, *, limit: int = 50, before: int | None = None) -> dict[str, Any]:
        params: dict[str, int] = {"limit": limit}
        if before is not None:
            params["before"] = before
        return self._get("/revisions", params=params)

    def revision(self, number: int) -> dict[str, Any]:
        return self._get(f"/revisions/{number}")

    def diff(self, a: int, b: int) -> dict[str, Any]:
        return self._get(f"/revisions/{a}/diff/{b}")

    def rollback(self, number: int) -> dict[str, Any]:
        return self._write("POST", f"/revisions/{number}/rollback")

    # -- accounts --------------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        return self._get("/auth/whoami")

    def users(self) -> dict[str, Any]:
        return self._get("/users")

    def add_user(self, name: str, role: str, password: str) -> dict[str, Any]:
        return self._write(
            "POST", "/users", body={"name": name, "role": role, "password": password}
        )

    def update_user(self, name: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        return self._write("PATCH", f"/users/{quote(name, safe='')}", body=dict(changes))

    def delete_user(self, name: str) -> dict[str, Any]:
        return self._write("DELETE", f"/users/{quote(name, safe='')}")

    def tokens(self, *, owner: str | None = None) -> dict[str, Any]:
        return self._get("/tokens", params={} if owner is None else {"owner": owner})

    def create_token(self, name: str, role: str, *, owner: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "role": role}
        if owner is not None:
            body["owner"] = owner
        return self._write("POST", "/tokens", body=body)

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        return self._write("DELETE", f"/tokens/{quote(token_id, safe='')}")

    # -- the daemon itself ------------------------------------------------------------------

    def stop_daemon(self, *, data_plane: bool) -> dict[str, Any]:
        """Ask the daemon to stop (with ``data_plane``, HAProxy, its tables and VIPs too)."""
        params = {"data_plane": "true" if data_plane else "false"}
        return self._write("POST", "/system/stop", params=params)

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

    # -- the certificate store (administer) --------------------------------------------------

    def certificates(self) -> dict[str, Any]:
        return self._get("/certificates")

    def certificate(self, name: str) -> dict[str, Any]:
        return self._get(f"/certificates/{quote(name, safe='')}")

    def add_certificate(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._write("POST", "/certificates", body={"name": name, **body})

    def replace_certificate(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._write("PUT", f"/certificates/{quote(name, safe='')}", body=dict(body))

    def self_signed(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._write("POST", "/certificates/self-signed", body=dict(body))

    def delete_certificate(self, name: str) -> dict[str, Any]:
        return self._write("DELETE", f"/certificates/{quote(name, safe='')}")

    def acme(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._write("POST", "/certificates/acme", body=dict(body))

    def renew(self, name: str) -> dict[str, Any]:
        return self._write("POST", f"/certificates/{quote(name, safe='')}/renew")

    def add_ca_bundle(self, name: str, pem: str) -> dict[str, Any]:
        return self._write("POST", "/ca-bundles", body={"name": name, "pem": pem})

    def replace_ca_bundle(self, name: str, pem: str) -> dict[str, Any]:
        return self._write("PUT", f"/ca-bundles/{quote(name, safe='')}", body={"pem": pem})

    # -- the page store (not_available.respond.body_file) -------------------------------------

    def pages(self) -> dict[str, Any]:
        return self._get("/pages")

    def page(self, name: str) -> dict[str, Any]:
        return self._get(f"/pages/{quote(name, safe='')}")

    def add_page(self, name: str, content: str) -> dict[str, Any]:
        return self._write("POST", "/pages", body={"name": name, "content": content})

    def delete_page(self, name: str) -> dict[str, Any]:
        return self._write("DELETE", f"/pages/{quote(name, safe='')}")

    def purge_cache(self, name: str) -> dict[str, Any]:
        return self._write("POST", f"{_pool(name)}/cache/purge")

    # -- the HTTP user store (authentication.users) -------------------------------------------

    def http_users(self) -> dict[str, Any]:
        return self._get("/http-users")

    def add_http_user(self, name: str, password: str) -> dict[str, Any]:
        return self._write("POST", "/http-users", body={"name": name, "password": password})

    def set_http_user_password(self, name: str, password: str) -> dict[str, Any]:
        path = f"/http-users/{quote(name, safe='')}/password"
        return self._write("PUT", path, body={"password": password})

    def delete_http_user(self, name: str) -> dict[str, Any]:
        return self._write("DELETE", f"/http-users/{quote(name, safe='')}")

    # -- backups -------------------------------------------------------------------------------

    def backup(self, passphrase: str | None = None) -> str:
        """The backup file: the document and the certificate store, its keys sealed with
        ``passphrase`` when given (administrators only)."""
        if passphrase is None:
            return self._response("GET", "/backup").text
        author = {} if self.remote else {AUTHOR_HEADER: self.author}
        return self._response(
            "POST", "/backup", body={"passphrase": passphrase}, headers=author
        ).text

    def restore(
        self, data: bytes, *, passphrase: str | None = None, dry_run: bool = False
    ) -> dict[str, Any]:
        headers = {"Content-Type": "application/yaml"}
        if not self.remote:
            headers[AUTHOR_HEADER] = self.author
        if passphrase is not None:
            headers["X-Backup-Passphrase"] = passphrase
        response = self._response(
            "POST",
            "/restore",
            params={"dry_run": "true"} if dry_run else None,
            content=data,
            headers=headers,
        )
        return _json_object(response)

    # -- waiting for a daemon that starts ---------------------------------------------------

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
        return _json_object(
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


def _json_object(response: httpx.Response) -> dict[str, Any]:
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


def _vs(name: str) -> str:
    return f"/virtual-services/{quote(name, safe='')}"


def _pool(service: str) -> str:
    """A service's path, or a sub-service's: its pool is "<service>/<sub-service>"
    (``bascule rs drain site/api KEY``, ``bascule limits show site/api``)."""
    name, _, sub = service.partition("/")
    return f"{_vs(name)}/sub-services/{quote(sub, safe='')}" if sub else _vs(name)


def _rs(service: str, key: str) -> str:
    return f"{_pool(service)}/real-servers/{quote(key, safe='')}"
