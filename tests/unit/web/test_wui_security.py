"""The WUI's security: every page needs a session, every unsafe request a CSRF
token, every change the right permission; login answers and redirects that cannot be abused."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi.routing import APIRoute
from wui_client import PASSWORD, Browser, csrf_of

from bascule.daemon.accounts import AccountService
from bascule.daemon.audit import AuditService
from bascule.web.app import PAGES
from bascule.web.auth import safe_next

PUBLIC = {"/login"}
SAMPLE = {
    "name": "web",
    "key": "198.18.0.4:80",
    "number": "1",
    "rule": "to-api",
    "sub": "api",
    "token_id": "0123456789abcdef",
}


def wui_requests() -> list[tuple[str, str]]:
    """(method, path) of every WUI route, its parameters filled with sample values."""
    served = []
    for route in (route for page in PAGES for route in page.router.routes):
        assert isinstance(route, APIRoute)
        path = re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m[1]], route.path)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                served.append((method, path))
    return served


async def test_every_page_but_login_needs_a_session(
    anonymous: httpx.AsyncClient, web_service: int
) -> None:
    checked = 0
    for method, path in wui_requests():
        if path in PUBLIC:
            continue
        response = await anonymous.request(method, path)
        assert response.status_code == 303, (method, path, response.status_code)
        assert response.headers["location"].startswith("/login"), (method, path)
        checked += 1
    assert checked > 30


async def test_every_unsafe_request_needs_the_csrf_token(admin: Browser, web_service: int) -> None:
    for method, path in wui_requests():
        if method == "GET" or path in PUBLIC:
            continue
        for data in ({}, {"csrf_token": "wrong"}):
            response = await admin.client.request(method, path, data=data)
            assert response.status_code == 403, (method, path, data, response.status_code)


async def login_form(client: httpx.AsyncClient, **data: str) -> httpx.Response:
    page = await client.get("/login")
    return await client.post("/login", data={"csrf_token": csrf_of(page.text), **data})


async def test_a_lockout_says_when_to_try_again(anonymous: httpx.AsyncClient) -> None:
    for _ in range(3):  # the fixture's lockout_attempts
        response = await login_form(anonymous, username="admin", password="wrong-password")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "300"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "/\\evil.example/",
        "https://evil.example/",
        "/\t/evil.example/",
        "/\n/evil.example/",
        "/\r\n/evil.example/",
        " //evil.example/",
    ],
)
def test_next_goes_nowhere_but_home_when_not_a_plain_local_path(target: str) -> None:
    assert safe_next(target) == "/"


async def test_login_never_redirects_to_another_site(anonymous: httpx.AsyncClient) -> None:
    for target in ("/\t/evil.example/", "https://evil.example/", "/%2F%2Fevil.example/"):
        response = await login_form(anonymous, username="admin", password=PASSWORD, next=target)
        assert response.status_code == 303
        location = response.headers["location"]
        assert location.startswith("/") and not location.startswith("//"), location
        assert "\t" not in location and "\\" not in location
        await anonymous.post(
            "/logout", data={"csrf_token": csrf_of((await anonymous.get("/")).text)}
        )


async def test_an_administrator_changing_their_own_password_gives_the_current_one(
    admin: Browser, login: Callable[[str], Awaitable[Browser]]
) -> None:
    other = await login("admin")  # a second session of the same user
    new = "a brand new password"
    wrong = await admin.post(
        "/account/password",
        {"current_password": "a guess", "password": new, "password_confirm": new},
    )
    assert wrong.status_code == 422
    assert 'id="error-current_password"' in wrong.text
    right = await admin.post(
        "/account/password",
        {"current_password": PASSWORD, "password": new, "password_confirm": new},
    )
    assert right.status_code == 303
    # a new password ends every session of the user: this one and the other one
    assert (await admin.client.get("/")).status_code == 303
    assert (await other.client.get("/")).status_code == 303


async def test_refusals_are_in_the_audit_log(
    viewer: Browser, admin: Browser, web_service: int, audit: AuditService
) -> None:
    url = "/virtual-services/web/real-servers/198.18.0.4:80/state"
    assert (await viewer.post(url, {"state": "drain"})).status_code == 403
    assert (await admin.client.post(url, data={"state": "drain"})).status_code == 403  # no CSRF
    entries, _ = audit.page(0, 10, action="access.denied")
    assert [(e.actor, e.role, e.remote, e.target, e.outcome) for e in reversed(entries)] == [
        ("victor", "viewer", "198.18.0.9", f"POST {url}", "refused"),
        ("admin", "admin", "198.18.0.9", f"POST {url}", "refused"),
    ]
    assert "operate" in entries[1].detail and "CSRF" in entries[0].detail


async def test_logout_is_audited_with_where_it_came_from(
    admin: Browser, audit: AuditService
) -> None:
    assert (await admin.post("/logout")).status_code == 303
    [entry] = audit.page(0, 1, action="logout")[0]
    assert (entry.actor, entry.remote) == ("admin", "198.18.0.9")


async def test_live_polling_does_not_keep_an_idle_session_alive(
    admin: Browser, accounts: AccountService, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [time.time()]
    monkeypatch.setattr(accounts, "_clock", lambda: now[0])
    poll = {"HX-Request": "true", "HX-Current-URL": "https://bascule.test/"}
    for _ in range(8):  # 800 s of an open dashboard polled, nobody at it
        now[0] += 100
        live = await admin.client.get("/dashboard/live", headers=poll)
        assert live.status_code == 200
    now[0] += 200  # 1000 s since the last person's request: beyond the 900 s idle timeout
    expired = await admin.client.get("/dashboard/live", headers=poll)
    assert expired.status_code == 401
    assert expired.headers["HX-Redirect"] == "/login"
    assert (await admin.client.get("/")).status_code == 303


XSS = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


async def test_strings_from_outside_are_escaped_everywhere_they_show(
    anonymous: httpx.AsyncClient, admin: Browser
) -> None:
    # a user name typed at the login form comes back in the form and in the audit log
    failed = await login_form(anonymous, username=XSS, password="wrong-password")
    assert failed.status_code == 401
    audit_page = await admin.client.get("/audit")
    for page in (failed, audit_page):
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    # a path segment echoed in an error page
    missing = await admin.client.get("/virtual-services/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert missing.status_code == 404
    assert "<script>alert" not in missing.text
    for response in (failed, audit_page, missing):
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("style")[0]
        assert "frame-ancestors 'none'" in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_login_always_issues_a_new_session_id(anonymous: httpx.AsyncClient) -> None:
    planted = "a-session-id-an-attacker-chose"
    anonymous.cookies.set("bascule_session", planted, domain="bascule.test")
    response = await login_form(anonymous, username="admin", password=PASSWORD)
    assert response.status_code == 303
    issued = response.cookies["bascule_session"]
    assert issued != planted and len(issued) >= 43
