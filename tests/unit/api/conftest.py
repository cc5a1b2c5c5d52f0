"""The API against a real ConfigService over a real RevisionStore, with the FakeEngine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bascule.api import ApiServices, create_app
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import FakeEngine
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
def app(service: ConfigService) -> FastAPI:
    async def system() -> dict[str, Any]:
        return {"engines": {"haproxy": {"version": "2.6.12", "running": True}}}

    return create_app(ApiServices(config=service, system=system))


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
