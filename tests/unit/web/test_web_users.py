"""Users, API tokens and one's own account: CRUD, field errors beside fields, roles, CSRF."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import httpx
from wui_client import PASSWORD, Browser

from bascule.daemon.accounts import AccountService
from bascule.model.access import Role

NEW_PASSWORD = "a much longer secret"


def _error(html: str, field: str) -> str:
    match = re.search(rf'<p class="field-error" id="error-{field}">([^<]*)</p>', html)
    assert match, f"no error beside field {field}"
    return match[1]


async def test_users_page_lists_users_and_has_the_add_form(
    admin: Browser, check_html: Callable[[str], None]
) -> None:
    page = await admin.client.get("/users")
    assert page.status_code == 200
    check_html(page.text)
    for name in ("admin", "olivia", "victor"):
        assert f'data-user="{name}"' in page.text
    for field in ("name", "role", "password"):
        assert f'id="field-{field}"' in page.text


async def test_add_user_then_change_role_reset_password_and_delete(
    admin: Browser, accounts: AccountService, login: Callable[[str], Awaitable[Browser]]
) -> None:
    added = await admin.post("/users", {"name": "nina", "role": "operator", "password": PASSWORD})
    assert added.status_code == 303 and added.headers["location"] == "/users"
    assert accounts.user("nina").role is Role.operator
    nina = await login("nina")  # the new user can log in

    page = await admin.client.get("/users/nina")
    assert page.status_code == 200 and 'data-action="delete"' in page.text
    changed = await admin.post("/users/nina/role", {"role": "viewer"})
    assert changed.status_code == 303
    assert accounts.user("nina").role is Role.viewer

    reset = await admin.post("/users/nina/password", {"password": NEW_PASSWORD})
    assert reset.status_code == 303
    ended = await nina.client.get("/")  # a new password ends the user's sessions
    assert ended.status_code == 303 and ended.headers["location"].startswith("/login")

    deleted = await admin.post("/users/nina/delete")
    assert deleted.status_code == 303 and deleted.headers["location"] == "/users"
    assert "nina" not in [u.name for u in accounts.users()]


async def test_add_user_shows_field_errors_and_saves_nothing(
    admin: Browser, accounts: AccountService, check_html: Callable[[str], None]
) -> None:
    short = await admin.post("/users", {"name": "nina", "role": "viewer", "password": "short"})
    assert short.status_code == 422
    check_html(short.text)
    assert "at least 8 characters" in _error(short.text, "password")
    assert 'value="nina"' in short.text  # what was typed stays
    taken = await admin.post("/users", {"name": "olivia", "role": "viewer", "password": PASSWORD})
    assert "already exists" in _error(taken.text, "name")
    bad_name = await admin.post(
        "/users", {"name": "no spaces", "role": "viewer", "password": PASSWORD}
    )
    assert "letters, digits" in _error(bad_name.text, "name")
    bad_role = await admin.post("/users", {"name": "nina", "role": "root", "password": PASSWORD})
    assert "admin, operator or viewer" in _error(bad_role.text, "role")
    assert sorted(u.name for u in accounts.users()) == ["admin", "olivia", "victor"]


async def test_the_last_administrator_stays(admin: Browser, accounts: AccountService) -> None:
    demoted = await admin.post("/users/admin/role", {"role": "viewer"})
    assert demoted.status_code == 422
    assert "last administrator" in _error(demoted.text, "role")
    deleted = await admin.post("/users/admin/delete")
    assert deleted.status_code == 303 and deleted.headers["location"] == "/users/admin"
    assert accounts.user("admin").role is Role.admin


async def test_users_and_tokens_are_for_administrators(
    operator: Browser, viewer: Browser, accounts: AccountService
) -> None:
    for browser in (operator, viewer):
        assert (await browser.client.get("/users")).status_code == 403
        assert (await browser.client.get("/tokens")).status_code == 403
        refused = await browser.post(
            "/users", {"name": "mallory", "role": "admin", "password": PASSWORD}
        )
        assert refused.status_code == 403
        assert (await browser.post("/tokens", {"name": "x", "role": "admin"})).status_code == 403
    assert "mallory" not in [u.name for u in accounts.users()]
    assert accounts.tokens() == []


async def test_user_forms_refuse_a_missing_or_wrong_csrf_token(
    admin: Browser, accounts: AccountService
) -> None:
    data = {"name": "mallory", "role": "admin", "password": PASSWORD}
    assert (await admin.client.post("/users", data=data)).status_code == 403
    forged = await admin.client.post("/users", data={**data, "csrf_token": "x" * 43})
    assert forged.status_code == 403
    assert (await admin.client.post("/users/victor/delete")).status_code == 403
    assert "mallory" not in [u.name for u in accounts.users()]
    assert "victor" in [u.name for u in accounts.users()]


async def test_token_secret_is_shown_once_and_revoking_works(
    admin: Browser, accounts: AccountService, check_html: Callable[[str], None]
) -> None:
    created = await admin.post("/tokens", {"name": "monitoring", "role": "viewer", "owner": ""})
    assert created.status_code == 200
    check_html(created.text)
    match = re.search(r'id="token-secret" class="secret mono" value="(bsc_[^"]+)"', created.text)
    assert match
    secret = match[1]
    actor = accounts.authenticate_token(secret, remote="test")
    assert actor is not None and actor.role is Role.viewer and actor.name == "admin"
    listing = await admin.client.get("/tokens")
    assert secret not in listing.text and "monitoring" in listing.text
    [token] = accounts.tokens()
    revoked = await admin.post(f"/tokens/{token.id}/revoke")
    assert revoked.status_code == 303
    assert accounts.authenticate_token(secret, remote="test") is None
    after = await admin.client.get("/tokens")
    assert f'data-token="{token.id}" data-active="false"' in after.text


async def test_token_for_another_owner_and_field_errors(
    admin: Browser, accounts: AccountService
) -> None:
    created = await admin.post("/tokens", {"name": "ci", "role": "operator", "owner": "olivia"})
    assert created.status_code == 200
    assert [t.owner for t in accounts.tokens()] == ["olivia"]
    empty = await admin.post("/tokens", {"name": " ", "role": "viewer"})
    assert empty.status_code == 422
    assert _error(empty.text, "name")
    bad_role = await admin.post("/tokens", {"name": "x", "role": "root"})
    assert "admin, operator or viewer" in _error(bad_role.text, "role")
    assert len(accounts.tokens()) == 1


async def test_anyone_changes_their_own_password(
    viewer: Browser,
    accounts: AccountService,
    anonymous: httpx.AsyncClient,
    check_html: Callable[[str], None],
) -> None:
    page = await viewer.client.get("/account")
    assert page.status_code == 200
    check_html(page.text)
    data = {"current_password": PASSWORD, "password": NEW_PASSWORD}
    mismatch = await viewer.post("/account/password", {**data, "password_confirm": "other one"})
    assert mismatch.status_code == 422
    assert "does not match" in _error(mismatch.text, "password_confirm")
    wrong = await viewer.post(
        "/account/password",
        {**data, "current_password": "not my password", "password_confirm": NEW_PASSWORD},
    )
    assert wrong.status_code == 422
    assert _error(wrong.text, "current_password")
    changed = await viewer.post("/account/password", {**data, "password_confirm": NEW_PASSWORD})
    assert changed.status_code == 303 and changed.headers["location"] == "/login"
    await accounts.login("victor", NEW_PASSWORD, remote="test")  # the new one works
