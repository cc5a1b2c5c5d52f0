"""The API against a real ConfigService over a real RevisionStore, with the FakeEngine.

``app``/``client`` are the unix socket's app (the caller trusted as a local administrator), as
the CLI sees it. ``remote_app`` is the HTTPS listener's app over the same services (every
request authenticated); ``client_as(role)`` is a client of it with an API token of that role
(``admin``, ``operator``, ``viewer``), or with no credentials at all (``None``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_apps import api_app
from fastapi import FastAPI
from fresh_status import every_status_read_anew  # noqa: F401  (an autouse fixture)

from bascule.api import ApiServices
from bascule.daemon.accounts import AccountService
from bascule.daemon.acme import AcmeService
from bascule.daemon.doors import DaemonServices
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import FakeEngine
from bascule.model.access import Actor, Role
from bascule.store.acme import AcmeStore
from bascule.store.revisions import RevisionStore

Document = dict[str, Any]


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RevisionStore]:
    with RevisionStore(tmp_path / "bascule.db") as opened:
        yield opened


@pytest.fixture
def service(store: RevisionStore, engine: FakeEngine) -> ConfigService:
    return ConfigService(store=store, engines=[engine], vips=NullVipManager())


@pytest.fixture
def services(
    service: ConfigService, tmp_path: Path, make_api_services: Callable[..., ApiServices]
) -> ApiServices:
    async def system() -> dict[str, Any]:
        return {"engines": {"haproxy": {"version": "2.6.12", "running": True}}}

    return make_api_services(service, system, database=tmp_path / "bascule.db")


@pytest.fixture
def accounts(services: ApiServices) -> AccountService:
    return services.accounts


@pytest.fixture
def app(services: ApiServices) -> FastAPI:
    return api_app(services, local=True)


@pytest.fixture
def remote_app(services: ApiServices) -> FastAPI:
    return api_app(services, local=False)


@pytest.fixture
def daemon_services(services: ApiServices, tmp_path: Path) -> DaemonServices:
    """What ``bascule run`` gives the composition root's app factory (``bascule.serve._Apps``),
    over the same services."""
    assert services.certificates is not None
    # never ordered from here: ACME's directory default is a real CA, unreachable from tests
    acme = AcmeService(AcmeStore(tmp_path / "acme.db"), certificates=services.certificates)
    return DaemonServices(
        config=services.config,
        accounts=services.accounts,
        audit=services.audit,
        statistics=services.statistics,
        system=services.system,
        certificates=services.certificates,
        acme=acme,
        stop=lambda *, data_plane: None,  # never asked here
    )


ADMIN_PASSWORD = "admin-password-1"
PASSWORDS = {"admin": ADMIN_PASSWORD, "operator": "operator-password", "viewer": "viewer-password"}
LOCAL_ADMIN = Actor(name="root@local", role=Role.admin, via="local", remote="test")


@pytest.fixture
async def tokens(accounts: AccountService) -> dict[str, str]:
    """Users ``admin``, ``operator`` and ``viewer`` (passwords in PASSWORDS), and an API token
    of each one's own role: role -> bearer secret."""
    await accounts.ensure_admin(ADMIN_PASSWORD)
    secrets: dict[str, str] = {}
    for role in Role:
        if role != Role.admin:
            await accounts.create_user(role.value, role, PASSWORDS[role.value], by=LOCAL_ADMIN)
        _, secrets[role.value] = accounts.create_token(
            f"{role.value} token", role, by=LOCAL_ADMIN, owner=role.value
        )
    return secrets


ClientAs = Callable[[str | None], Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def client_as(remote_app: FastAPI, tokens: dict[str, str]) -> AsyncIterator[ClientAs]:
    """``await client_as("viewer")``: a client of the HTTPS app with the viewer's token;
    ``await client_as(None)``: one without credentials."""
    async with AsyncExitStack() as stack:

        async def make(role: str | None) -> httpx.AsyncClient:
            headers = {} if role is None else {"Authorization": f"Bearer {tokens[role]}"}
            transport = httpx.ASGITransport(app=remote_app)
            return await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="https://bascule", headers=headers)
            )

        yield make


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bascule") as opened:
        yield opened


@pytest.fixture
def make_service() -> Callable[..., Document]:
    """A virtual service document: weighted, so weight changes reach the engine."""

    def make(name: str = "web", port: int = 80, *weights: int) -> Document:
        servers = [
            {"address": f"198.18.0.{4 + i}", "port": 80, "weight": weight}
            for i, weight in enumerate(weights or (1000, 1000))
        ]
        return {
            "name": name,
            "address": "198.18.0.100",
            "port": port,
            "scheduler": "weighted_round_robin",
            "real_servers": servers,
        }

    return make


@pytest.fixture
def make_document(make_service: Callable[..., Document]) -> Callable[..., Document]:
    def make(*weights: int) -> Document:
        return {"virtual_services": [make_service("web", 80, *weights)]}

    return make


@pytest.fixture
async def committed(client: httpx.AsyncClient, make_document: Callable[..., Document]) -> int:
    """Revision 1 holds one virtual service ``web`` with two real servers; returns 1."""
    response = await client.put("/api/v1/config", json=make_document())
    assert response.status_code == 200, response.text
    revision: int = response.json()["revision"]
    return revision
