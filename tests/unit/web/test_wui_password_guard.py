"""The password guard through the WUI (finding 1): the own-account form's current password is
locked and audited like the login form, and the two share one lock per account and source."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from wui_client import BASE_URL, PASSWORD, Browser, csrf_of

from bascule.daemon.accounts import AccountService
from bascule.daemon.audit import AuditService

NEW_PASSWORD = "a brand new password"


async def test_the_account_form_locks_like_the_login_form(
    viewer: Browser, wui: FastAPI, accounts: AccountService, audit: AuditService
) -> None:
    # lockout_attempts is 3 in these tests
    statuses = []
    for attempt in range(5):
        response = await viewer.post(
            "/account/password",
            {
                "current_password": f"guess {attempt}",
                "password": NEW_PASSWORD,
                "password_confirm": NEW_PASSWORD,
            },
        )
        statuses.append(response.status_code)
    assert statuses == [422, 422, 429, 429, 429]
    assert "too many failed logins" in response.text
    right = await viewer.post(
        "/account/password",
        {"current_password": PASSWORD, "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD},
    )
    assert right.status_code == 429  # refused while locked: the password is unchanged
    # the login form, from the same address, is locked too
    transport = httpx.ASGITransport(app=wui, client=("198.18.0.9", 50001))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as browser:
        page = await browser.get("/login")
        login = await browser.post(
            "/login",
            data={"username": "victor", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        )
        assert login.status_code == 429
    # and from elsewhere the password still works
    await accounts.login("victor", PASSWORD, remote="192.0.2.1")
    entries, _ = audit.page(0, 100, action="user.password")
    assert [e.outcome.value for e in reversed(entries)] == ["failed", "failed", "locked", "locked"]
    assert {(e.actor, e.role, e.remote) for e in entries} == {("victor", "viewer", "198.18.0.9")}
