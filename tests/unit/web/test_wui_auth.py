"""WUI login, logout, session cookie, CSRF and role checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from wui_client import PASSWORD, Browser, csrf_of

from bascule.store.revisions import RevisionStore


async def test_pages_redirect_to_login_with_next(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/virtual-services/new")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fvirtual-services%2Fnew"


async def test_live_fragment_without_session_asks_htmx_to_redirect(
    anonymous: httpx.AsyncClient,
) -> None:
    response = await anonymous.get(
        "/dashboard/live",
        headers={"HX-Request": "true", "HX-Current-URL": "https://bascule.test/history"},
    )
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login?next=%2Fhistory"


async def test_login_sets_a_strict_session_cookie_and_goes_back(
    anonymous: httpx.AsyncClient, check_html: Callable[[str], None]
) -> None:
    page = await anonymous.get("/login?next=/virtual-services/new")
    assert page.status_code == 200
    check_html(page.text)
    assert 'name="username"' in page.text and 'data-action="login"' in page.text
    response = await anonymous.post(
        "/login",
        data={
            "username": "admin",
            "password": PASSWORD,
            "next": "/virtual-services/new",
            "csrf_token": csrf_of(page.text),
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/virtual-services/new"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("bascule_session=")
    )
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= flags


async def test_login_refuses_an_outside_next(anonymous: httpx.AsyncClient) -> None:
    page = await anonymous.get("/login")
    response = await anonymous.post(
        "/login",
        data={
            "username": "admin",
            "password": PASSWORD,
            "next": "//evil.example/",
            "csrf_token": csrf_of(page.text),
        },
    )
    assert response.headers["location"] == "/"


async def test_wrong_password_then_lockout(anonymous: httpx.AsyncClient) -> None:
    for attempt in range(3):  # the fixture's lockout_attempts
        page = await anonymous.get("/login")
        response = await anonymous.post(
            "/login",
            data={"username": "admin", "password": "nope", "csrf_token": csrf_of(page.text)},
        )
        assert 'id="login-error"' in response.text
        if attempt < 2:
            assert response.status_code == 401
            assert "wrong user name or password" in response.text.lower()
    assert response.status_code == 429
    page = await anonymous.get("/login")
    response = await anonymous.post(
        "/login",
        data={"username": "admin", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    assert response.status_code == 429
    assert "too many failed logins" in response.text.lower()
    assert "bascule_session" not in response.headers.get("set-cookie", "")


async def test_login_without_its_form_token_is_refused(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post("/login", data={"username": "admin", "password": PASSWORD})
    assert response.status_code == 403
    assert "bascule_session=" not in response.headers.get("set-cookie", "")


async def test_logout_ends_the_session(admin: Browser) -> None:
    response = await admin.post("/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?bye=1"
    again = await admin.client.get("/")
    assert again.status_code == 303


async def test_csrf_missing_or_wrong_is_refused(
    admin: Browser, web_service: int, store: RevisionStore
) -> None:
    url = "/virtual-services/web/real-servers/198.18.0.4:80/state"
    missing = await admin.client.post(url, data={"state": "drain"})
    wrong = await admin.client.post(url, data={"state": "drain", "csrf_token": "x" * 43})
    wrong_header = await admin.client.post(
        url, data={"state": "drain"}, headers={"X-CSRF-Token": "nope"}
    )
    assert [missing.status_code, wrong.status_code, wrong_header.status_code] == [403] * 3
    assert "CSRF" in missing.text
    good_header = await admin.client.post(
        url, data={"state": "drain"}, headers={"X-CSRF-Token": admin.csrf}
    )
    assert good_header.status_code == 303
    assert store.head_number() == web_service


async def test_viewer_cannot_post_changes(
    viewer: Browser, web_service: int, store: RevisionStore
) -> None:
    posts = [
        ("/virtual-services/new", {"address": "198.18.0.101", "port": "80"}),
        ("/virtual-services/web", {"name": "web"}),
        ("/virtual-services/web/delete", {}),
        ("/virtual-services/web/real-servers/new", {"address": "198.18.0.6", "port": "80"}),
        ("/virtual-services/web/real-servers/198.18.0.4:80/state", {"state": "drain"}),
        ("/virtual-services/web/real-servers/198.18.0.4:80", {"weight": "5"}),
    ]
    for url, data in posts:
        response = await viewer.post(url, data)
        assert response.status_code == 403, url
    assert store.head_number() == web_service


async def test_viewer_sees_no_change_buttons(
    viewer: Browser, web_service: int, check_html: Callable[[str], None]
) -> None:
    page = await viewer.client.get("/virtual-services/web")
    assert page.status_code == 200
    check_html(page.text)
    for action in ("enable", "disable", "drain", "preview", "delete", "add-real-server"):
        assert f'data-action="{action}"' not in page.text
    assert "disabled" in page.text  # the settings are shown read-only
    home = await viewer.client.get("/")
    assert 'data-action="add-virtual-service"' not in home.text


async def test_operator_may_drain_but_not_restructure(
    operator: Browser, web_service: int, store: RevisionStore
) -> None:
    page = await operator.client.get("/virtual-services/web")
    assert 'data-action="drain"' in page.text
    assert 'data-action="delete"' not in page.text
    refused = await operator.post("/virtual-services/web/delete")
    assert refused.status_code == 403
    drain = await operator.post(
        "/virtual-services/web/real-servers/198.18.0.4:80/state", {"state": "drain"}
    )
    assert drain.headers["location"] == "/preview"
    applied = await operator.post("/preview/apply")
    assert applied.status_code == 303
    assert store.head_number() == web_service + 1
    document = store.get(web_service + 1).document
    assert document["virtual_services"][0]["real_servers"][0]["state"] == "drain"
    # weight is an operator's change too; max_connections is not
    weight = await operator.post(
        "/virtual-services/web/real-servers/198.18.0.5:80", {"weight": "500"}
    )
    assert weight.headers["location"] == "/preview"


async def test_operator_cannot_sneak_a_structural_field(
    operator: Browser, web_service: int
) -> None:
    response = await operator.post(
        "/virtual-services/web/real-servers/198.18.0.5:80",
        {"weight": "500", "max_connections": "10", "critical": "true"},
    )
    # fields the operator's form does not have are ignored, not applied
    assert response.status_code == 303
    preview = await operator.client.get("/preview")
    assert "max_connections" not in preview.text
    assert "critical" not in preview.text


async def test_each_session_has_its_own_pending_change(
    login: Callable[[str], Awaitable[Browser]], web_service: int, store: RevisionStore
) -> None:
    first, second = await login("admin"), await login("admin")
    await first.post("/virtual-services/web/delete")
    nothing = await second.post("/preview/apply")
    assert nothing.status_code == 303
    assert store.head_number() == web_service
