"""The password guard through the HTTPS API (finding 1): ``PATCH /users/<self>`` with a
``current_password`` is locked, rate-limited and audited exactly like ``POST /auth/login``, and
the two share the lock, per account and source (finding 9)."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from bascule.api import ApiServices
from bascule.daemon.accounts import AccountService
from bascule.model.access import Actor, Role

ADMIN_PASSWORD = "admin-password-1"  # the api conftest's ``tokens`` fixture
LOCAL_ADMIN = Actor(name="root@local", role=Role.admin, via="local", remote="test")
ATTACKER = ("203.0.113.66", 40000)
OWNER = ("192.0.2.1", 40000)


def client_from(
    app: FastAPI, address: tuple[str, int], token: str | None = None
) -> httpx.AsyncClient:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=app, client=address)
    return httpx.AsyncClient(transport=transport, base_url="https://bascule", headers=headers)


async def test_a_read_only_token_cannot_guess_its_owners_password(
    remote_app: FastAPI, accounts: AccountService, services: ApiServices, tokens: dict[str, str]
) -> None:
    _, readonly = accounts.create_token("ro", Role.viewer, by=LOCAL_ADMIN, owner="admin")
    async with client_from(remote_app, ATTACKER, readonly) as attacker:

        async def guess(password: str) -> int:
            body = {"password": "taken-over-password", "current_password": password}
            response = await attacker.patch("/api/v1/users/admin", json=body)
            return response.status_code

        codes = await asyncio.gather(*(guess(f"guess-{i}") for i in range(30)))
        assert sorted(codes) == [422] * 4 + [429] * 26
        # the right one now: refused while locked, the password unchanged
        assert await guess(ADMIN_PASSWORD) == 429
        # a login from the attacker's address is locked too: one lock for every password check
        login = await attacker.post(
            "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 429 and "Retry-After" in login.headers
    async with client_from(remote_app, OWNER) as owner:
        login = await owner.post(
            "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200  # the admin, elsewhere, is not locked out
    recorded, _ = services.audit.page(0, 100, action="user.password")
    assert {(e.actor, e.role, e.remote, e.outcome) for e in recorded} == {
        ("admin", "viewer", "203.0.113.66", "failed"),
        ("admin", "viewer", "203.0.113.66", "locked"),
    }
    assert len(recorded) == 4 + 2  # four failures, the one that locked, one refusal per lock


async def test_a_login_lock_refuses_the_right_current_password(
    remote_app: FastAPI, accounts: AccountService, tokens: dict[str, str]
) -> None:
    async with client_from(remote_app, ATTACKER) as attacker:
        for _ in range(5):
            await attacker.post(
                "/api/v1/auth/login", json={"username": "viewer", "password": "wrong-password"}
            )
    async with client_from(remote_app, ATTACKER, tokens["viewer"]) as viewer:
        response = await viewer.patch(
            "/api/v1/users/viewer",
            json={"password": "another-password", "current_password": "viewer-password"},
        )
        assert response.status_code == 429
        assert response.json()["error"]["kind"] == "locked_out"
