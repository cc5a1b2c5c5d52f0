"""The WUI against real services over tmp stores: ConfigService with the FakeEngine, real
AccountService (fast argon2 parameters), AuditService and Statistics.

``login(role)`` gives an httpx client (ASGI transport, https base URL so the Secure session
cookie is sent) already logged in as a user of that role, with its CSRF token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from change_requests import by
from fastapi import FastAPI
from fresh_status import every_status_read_anew  # noqa: F401  (an autouse fixture)
from wui_client import (
    BASE_URL,
    PASSWORD,
    Browser,
    CheckedFakeEngine,
    csrf_of,
    well_formed,
    wui_over,
)

from bascule.daemon.accounts import AccountService
from bascule.daemon.audit import AuditService
from bascule.daemon.service import ConfigService
from bascule.daemon.statistics import Statistics
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import FakeEngine
from bascule.model.access import Actor, Role
from bascule.store.accounts import AccountStore
from bascule.store.audit import AuditStore
from bascule.store.revisions import RevisionStore


@pytest.fixture
def engine() -> CheckedFakeEngine:
    return CheckedFakeEngine()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RevisionStore]:
    with RevisionStore(tmp_path / "bascule.db") as opened:
        yield opened


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditService]:
    with AuditStore(tmp_path / "bascule.db") as opened:
        yield AuditService(opened)


@pytest.fixture
def service(store: RevisionStore, engine: FakeEngine, audit: AuditService) -> ConfigService:
    return ConfigService(store=store, engines=[engine], vips=NullVipManager(), audit=audit)


@pytest.fixture
async def accounts(tmp_path: Path, audit: AuditService) -> AsyncIterator[AccountService]:
    with AccountStore(tmp_path / "bascule.db") as opened:
        accounts = AccountService(
            opened,
            idle_timeout=900,
            lockout_attempts=3,
            lockout_seconds=300,
            audit=audit,
            hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
        )
        await accounts.ensure_admin(PASSWORD)
        by = Actor(name="admin", role=Role.admin, via="local", remote="test")
        await accounts.create_user("olivia", Role.operator, PASSWORD, by=by)
        await accounts.create_user("victor", Role.viewer, PASSWORD, by=by)
        yield accounts


@pytest.fixture
def statistics(service: ConfigService) -> Statistics:
    return Statistics(service.status)


@pytest.fixture
def wui(
    service: ConfigService,
    accounts: AccountService,
    audit: AuditService,
    statistics: Statistics,
) -> FastAPI:
    return wui_over(service, accounts, audit, statistics)


@pytest.fixture
async def anonymous(wui: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=wui, client=("198.18.0.9", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


@pytest.fixture
async def login(wui: FastAPI) -> AsyncIterator[Callable[[str], Awaitable[Browser]]]:
    clients: list[httpx.AsyncClient] = []

    async def log_in(user: str) -> Browser:
        transport = httpx.ASGITransport(app=wui, client=("198.18.0.9", 50000))
        client = httpx.AsyncClient(transport=transport, base_url=BASE_URL)
        clients.append(client)
        page = await client.get("/login")
        response = await client.post(
            "/login",
            data={"username": user, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        )
        assert response.status_code == 303, response.text
        home = await client.get("/")
        assert home.status_code == 200, home.text
        return Browser(client=client, csrf=csrf_of(home.text))

    yield log_in
    for client in clients:
        await client.aclose()


@pytest.fixture
async def admin(login: Callable[[str], Awaitable[Browser]]) -> Browser:
    return await login("admin")


@pytest.fixture
async def operator(login: Callable[[str], Awaitable[Browser]]) -> Browser:
    return await login("olivia")


@pytest.fixture
async def viewer(login: Callable[[str], Awaitable[Browser]]) -> Browser:
    return await login("victor")


@pytest.fixture
async def web_service(service: ConfigService) -> int:
    """Revision 1: virtual service ``web`` with two real servers; returns 1."""
    result = await service.apply(
        {
            "virtual_services": [
                {
                    "name": "web",
                    "address": "198.18.0.100",
                    "port": 80,
                    "real_servers": [
                        {"address": "198.18.0.4", "port": 80},
                        {"address": "198.18.0.5", "port": 80},
                    ],
                }
            ]
        },
        by("test"),
    )
    assert result.revision == 1
    return 1


@pytest.fixture
def check_html() -> Callable[[str], None]:
    return well_formed
