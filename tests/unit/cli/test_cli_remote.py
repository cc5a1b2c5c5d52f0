"""The CLI against a remote daemon (``--url --token`` over real HTTPS on loopback), and the
``bascule user`` / ``bascule token`` commands (over the local socket and remotely).

One in-process daemon serves the same services twice, as ``bascule run`` does: the unix
socket's app and the HTTPS app on 127.0.0.1 with a self-signed certificate (daemon/tls.py).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from api_apps import api_app
from change_requests import by
from typer.testing import CliRunner, Result

from bascule.api.deps import ApiServices
from bascule.cli.main import app
from bascule.daemon.service import ConfigService
from bascule.daemon.tls import ensure_certificate
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import FakeEngine
from bascule.model.access import Actor, Role
from bascule.store.revisions import RevisionStore

ROOT = Actor(name="root@local", role=Role.admin, via="local", remote="test")
DOCUMENT = {
    "virtual_services": [
        {
            "name": "web",
            "address": "198.18.0.100",
            "port": 80,
            "real_servers": [{"address": "198.18.0.4", "port": 80}],
        }
    ]
}


@dataclass
class Served:
    data_dir: Path
    url: str
    cert: Path
    tokens: dict[str, str]
    services: ApiServices


def serve(config: uvicorn.Config) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test API server did not start")
        time.sleep(0.01)
    return server, thread


@pytest.fixture
def served(make_api_services: Callable[..., ApiServices]) -> Iterator[Served]:
    data_dir = Path(tempfile.mkdtemp(dir="/tmp", prefix="bascule-remote-"))
    store = RevisionStore(data_dir / "bascule.db")
    service = ConfigService(store=store, engines=[FakeEngine()], vips=NullVipManager())
    services = make_api_services(service, database=data_dir / "bascule.db")
    accounts = services.accounts

    async def prepare() -> dict[str, str]:
        await service.apply(DOCUMENT, by("test"))
        await accounts.ensure_admin("admin-password")
        await accounts.create_user("viewer", Role.viewer, "viewer-password", by=ROOT)
        return {
            "admin": accounts.create_token("cli", Role.admin, by=ROOT, owner="admin")[1],
            "viewer": accounts.create_token("cli", Role.viewer, by=ROOT, owner="viewer")[1],
        }

    tokens = asyncio.run(prepare())
    certificate = ensure_certificate(
        data_dir / "tls" / "cert.pem", data_dir / "tls" / "key.pem", listen_host="127.0.0.1"
    )
    common: dict[str, Any] = {"log_level": "warning", "lifespan": "off", "ws": "none"}
    local, local_thread = serve(
        uvicorn.Config(api_app(services, local=True), uds=str(data_dir / "bascule.sock"), **common)
    )
    https, https_thread = serve(
        uvicorn.Config(
            api_app(services, local=False),
            host="127.0.0.1",
            port=0,
            ssl_certfile=str(certificate.cert),
            ssl_keyfile=str(certificate.key),
            **common,
        )
    )
    port = https.servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(
            data_dir=data_dir,
            url=f"https://127.0.0.1:{port}",
            cert=certificate.cert,
            tokens=tokens,
            services=services,
        )
    finally:
        for server, thread in ((local, local_thread), (https, https_thread)):
            server.should_exit = True
            thread.join(timeout=10)
        store.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        app, list(args), input=input, env={"COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    )


def local(served: Served, *args: str, input: str | None = None) -> Result:
    return run("--data-dir", str(served.data_dir), *args, input=input)


def remote(served: Served, role: str, *args: str, input: str | None = None) -> Result:
    return run(
        "--url",
        served.url,
        "--token",
        served.tokens[role],
        "--ca-cert",
        str(served.cert),
        *args,
        input=input,
    )


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def error(result: Result) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    return result.stderr


# -- remote mode -------------------------------------------------------------------------------


def test_a_token_works_over_https_with_the_ca_cert(served: Served) -> None:
    status = json.loads(ok(remote(served, "admin", "--json", "status")))
    assert [vs["name"] for vs in status["virtual_services"]] == ["web"]
    ok(remote(served, "admin", "rs", "drain", "web", "198.18.0.4:80"))
    head = served.services.config.store.head()
    assert head is not None and head.author == "admin"  # the token's user, not the login


def test_the_url_and_token_from_the_environment(served: Served) -> None:
    env = {"BASCULE_URL": served.url, "BASCULE_TOKEN": served.tokens["viewer"]}
    ok(run("--insecure", "status", env=env))


def test_an_untrusted_certificate_says_what_to_do(served: Served) -> None:
    message = error(run("--url", served.url, "--token", served.tokens["admin"], "status"))
    assert "is not trusted" in message
    assert "--ca-cert" in message and "--insecure" in message
    ok(run("--url", served.url, "--token", served.tokens["admin"], "--insecure", "status"))


def test_a_bad_token_or_a_small_role_is_refused(served: Served) -> None:
    bad = run("--url", served.url, "--token", "bsc_0123456789abcdef_x", "--insecure", "status")
    assert "unknown, revoked or malformed" in error(bad)
    refused = error(remote(served, "viewer", "rs", "drain", "web", "198.18.0.4:80"))
    assert "the role viewer may not do this" in refused
    ok(remote(served, "viewer", "status"))


def test_nothing_listens_there(served: Served) -> None:
    message = error(
        run("--url", "https://127.0.0.1:1", "--token", served.tokens["admin"], "status")
    )
    assert "cannot reach the Bascule daemon at https://127.0.0.1:1" in message


# -- users and tokens --------------------------------------------------------------------------


def test_users_over_the_local_socket(served: Served) -> None:
    ok(local(served, "user", "add", "dave", "--role", "operator", "--password-stdin",
             input="dave-password\n"))  # fmt: skip
    listed = json.loads(ok(local(served, "user", "list", "--json")))["items"]
    assert [(u["name"], u["role"]) for u in listed] == [
        ("admin", "admin"),
        ("dave", "operator"),
        ("viewer", "viewer"),
    ]
    assert "dave is now viewer" in ok(local(served, "user", "role", "dave", "viewer"))
    ok(local(served, "user", "passwd", "dave", input="new-dave-password\nnew-dave-password\n"))
    asyncio.run(served.services.accounts.login("dave", "new-dave-password", remote="test"))
    ok(local(served, "user", "delete", "dave", "--yes"))
    assert "dave" not in ok(local(served, "user", "list"))
    short = error(local(served, "user", "add", "eve", "--password-stdin", input="short\n"))
    assert "password: must be at least 8 characters" in short
    last = error(local(served, "user", "delete", "admin", "--yes"))
    assert "last administrator" in last
    assert "--role must be one of" in error(local(served, "user", "role", "viewer", "root"))


def test_tokens_over_the_local_socket(served: Served) -> None:
    out = ok(local(served, "token", "create", "backup job", "--role", "viewer"))
    secret = next(line for line in out.splitlines() if line.startswith("bsc_"))
    assert "shown once" in out
    token_id = secret.split("_")[1]
    listed = ok(local(served, "token", "list"))
    assert token_id in listed and secret not in listed
    ok(run("--url", served.url, "--token", secret, "--insecure", "status"))
    assert f"revoked token {token_id}" in ok(local(served, "token", "revoke", token_id))
    assert "unknown, revoked" in error(
        run("--url", served.url, "--token", secret, "--insecure", "status")
    )
    made = json.loads(ok(local(served, "--json", "token", "create", "x", "--owner", "viewer")))
    assert made["token"]["owner"] == "viewer" and made["secret"].startswith("bsc_")


def test_a_viewer_changes_their_own_password_remotely(served: Served) -> None:
    out = remote(
        served,
        "viewer",
        "user",
        "passwd",
        "viewer",
        input="viewer-password\nnew-viewer-password\nnew-viewer-password\n",
    )
    assert "current password" in ok(out)
    asyncio.run(served.services.accounts.login("viewer", "new-viewer-password", remote="test"))
    # the change revoked the viewer's tokens: the one used is refused, a new one goes on
    assert "unknown, revoked or malformed" in error(remote(served, "viewer", "status"))
    served.tokens["viewer"] = served.services.accounts.create_token(
        "cli again", Role.viewer, by=ROOT, owner="viewer"
    )[1]
    assert "not your current password" in error(
        remote(
            served, "viewer", "user", "passwd", "viewer", input="wrong-one\nxxxxxxxxx\nxxxxxxxxx\n"
        )
    )
    mine = json.loads(ok(remote(served, "viewer", "--json", "token", "list")))["items"]
    assert {t["owner"] for t in mine} == {"viewer"}
    assert "may not create a token with the role admin" in error(
        remote(served, "viewer", "token", "create", "x", "--role", "admin")
    )
