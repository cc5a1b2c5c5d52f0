"""/auth over the HTTPS app: login sets a hardened cookie, CSRF on unsafe methods, logout,
lockout, whoami; and the unix socket's app trusting its caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bascule.daemon.accounts import AccountService

ClientAs = Callable[[str | None], Awaitable[httpx.AsyncClient]]

LOGIN = "/api/v1/auth/login"
LOGOUT = "/api/v1/auth/logout"
WHOAMI = "/api/v1/auth/whoami"
RS_DRAIN = "/api/v1/virtual-services/web/real-servers/198.18.0.4:80/drain"


@pytest.fixture
async def browser(remote_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client that keeps cookies, as a browser does (HTTPS, so Secure cookies are sent)."""
    transport = httpx.ASGITransport(app=remote_app, client=("192.0.2.10", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="https://bascule") as client:
        yield client


async def login(client: httpx.AsyncClient, user: str, password: str) -> httpx.Response:
    return await client.post(LOGIN, json={"username": user, "password": password})


async def test_login_sets_a_hardened_session_cookie(
    browser: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    response = await login(browser, "operator", "operator-password")
    assert response.status_code == 200, response.text
    cookie = response.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert cookie.startswith("bascule_session=")
    assert {"secure", "httponly", "samesite", "path"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert "path=/" in cookie.lower()
    body = response.json()
    assert (body["name"], body["role"], body["via"]) == ("operator", "operator", "session")
    assert body["remote"] == "192.0.2.10"
    assert body["permissions"] == ["operate", "read"]
    assert len(body["csrf_token"]) >= 32
    assert response.headers["Cache-Control"] == "no-store"


async def test_a_session_reads_without_csrf_but_writes_only_with_it(
    browser: httpx.AsyncClient, tokens: dict[str, str], committed: int
) -> None:
    csrf = (await login(browser, "operator", "operator-password")).json()["csrf_token"]
    assert (await browser.get("/api/v1/status")).status_code == 200
    who = (await browser.get(WHOAMI)).json()
    assert (who["name"], who["via"], who["csrf_token"]) == ("operator", "session", csrf)

    missing = await browser.post(RS_DRAIN)
    wrong = await browser.post(RS_DRAIN, headers={"X-CSRF-Token": csrf[:-2] + "xx"})
    for refused in (missing, wrong):
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["kind"] == "forbidden"
        assert "X-CSRF-Token" in refused.json()["error"]["message"]

    done = await browser.post(RS_DRAIN, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200, done.text
    assert done.json()["revision"] == committed + 1


async def test_a_session_keeps_its_role_limits(
    browser: httpx.AsyncClient, tokens: dict[str, str], committed: int
) -> None:
    csrf = (await login(browser, "viewer", "viewer-password")).json()["csrf_token"]
    refused = await browser.post(RS_DRAIN, headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 403
    assert "operate" in refused.json()["error"]["message"]


async def test_logout_ends_the_session(
    browser: httpx.AsyncClient, tokens: dict[str, str], accounts: AccountService
) -> None:
    csrf = (await login(browser, "viewer", "viewer-password")).json()["csrf_token"]
    session_id = browser.cookies["bascule_session"]
    assert (await browser.post(LOGOUT)).status_code == 403  # CSRF: no cross-site logout
    response = await browser.post(LOGOUT, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 204
    assert 'bascule_session=""' in response.headers["set-cookie"]
    assert accounts.resume(session_id, remote="test") is None
    browser.cookies.clear()
    after = await browser.get(WHOAMI, headers={"Cookie": f"bascule_session={session_id}"})
    assert after.status_code == 401
    assert "expired" in after.json()["error"]["message"]
    # Logging out without a session is harmless.
    assert (await browser.post(LOGOUT)).status_code == 204


async def test_a_wrong_password_and_an_unknown_user_answer_alike(
    browser: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    wrong = await login(browser, "admin", "not-the-password")
    unknown = await login(browser, "nobody", "not-the-password")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.json()["error"] == {
            "kind": "unauthorized",
            "message": "wrong user name or password",
            "fields": [],
            "current_revision": None,
        }
        assert "set-cookie" not in response.headers


async def test_repeated_failures_lock_the_name_out(
    browser: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    for _ in range(4):
        assert (await login(browser, "viewer", "bad-password")).status_code == 401
    locked = await login(browser, "viewer", "bad-password")
    assert locked.status_code == 429
    assert locked.json()["error"]["kind"] == "locked_out"
    assert int(locked.headers["Retry-After"]) == 300
    # Even the right password waits; other names are not affected.
    assert (await login(browser, "viewer", "viewer-password")).status_code == 429
    assert (await login(browser, "operator", "operator-password")).status_code == 200


async def test_login_validates_its_body(browser: httpx.AsyncClient) -> None:
    response = await browser.post(LOGIN, json={"username": "admin"})
    assert response.status_code == 422
    fields = response.json()["error"]["fields"]
    assert fields == [{"path": "body.password", "message": "is required"}]


async def test_whoami_with_a_token(client_as: ClientAs) -> None:
    body = (await (await client_as("operator")).get(WHOAMI)).json()
    assert body == {
        "name": "operator",
        "role": "operator",
        "via": "token",
        "remote": "127.0.0.1",
        "permissions": ["operate", "read"],
        "csrf_token": None,
        "expires_at": None,
    }


async def test_the_unix_socket_trusts_its_caller_as_a_local_admin(
    client: httpx.AsyncClient,
) -> None:
    plain = (await client.get(WHOAMI)).json()
    named = (await client.get(WHOAMI, headers={"X-Bascule-Author": "alice@cli"})).json()
    assert (plain["name"], plain["role"], plain["via"], plain["remote"]) == (
        "root@local",
        "admin",
        "local",
        "unix socket",
    )
    assert named["name"] == "alice@cli"


async def test_the_https_app_ignores_the_author_header(client_as: ClientAs) -> None:
    viewer = await client_as("viewer")
    body: dict[str, Any] = (await viewer.get(WHOAMI, headers={"X-Bascule-Author": "admin"})).json()
    assert (body["name"], body["role"]) == ("viewer", "viewer")


async def test_changes_over_https_are_authored_by_the_user(
    client_as: ClientAs, committed: int, services: Any
) -> None:
    operator = await client_as("operator")
    response = await operator.post(RS_DRAIN, headers={"X-Bascule-Author": "mallory"})
    assert response.status_code == 200
    head = services.config.store.head()
    assert head.author == "operator"
    entries, _ = services.audit.page(0, 1)
    assert (entries[0].actor, entries[0].remote, entries[0].action) == (
        "operator",
        "127.0.0.1",
        "real_server.state",
    )
