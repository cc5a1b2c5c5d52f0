"""The API client the CLI speaks through: one method per route of ``/api/v1``.

It sits at the CLI's edge of the flow of a change: commands build documents and edits, and
``BasculeClient`` sends each to its route. How a request reaches the daemon and how a failure
becomes a ``CliError`` whose lines are ready to print (one problem per line: a field path and
its message, a stale revision, a daemon that does not answer) is ``connection.py``'s; the
answers are the API's JSON, returned as plain dicts.

Two ways in, both ``connection.py``'s: the local unix socket (writes carry the login as
their author), or a remote daemon over HTTPS with an API token (``BasculeClient.over_https``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from bascule.cli.connection import AUTHOR_HEADER, Connection, json_object


class BasculeClient(Connection):
    """The daemon's REST API, one method per route: answers as JSON dicts."""

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
        return json_object(response)


def _vs(name: str) -> str:
    return f"/virtual-services/{quote(name, safe='')}"


def _pool(service: str) -> str:
    """A service's path, or a sub-service's: its pool is "<service>/<sub-service>"
    (``bascule rs drain site/api KEY``, ``bascule limits show site/api``)."""
    name, _, sub = service.partition("/")
    return f"{_vs(name)}/sub-services/{quote(sub, safe='')}" if sub else _vs(name)


def _rs(service: str, key: str) -> str:
    return f"{_pool(service)}/real-servers/{quote(key, safe='')}"
