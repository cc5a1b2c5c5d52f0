"""/ha: this node of the pair over the HA service (daemon/ha.py), without keepalived running:
a single node says so, a paired node names itself and its peer, and the handover is refused
(422, nothing changed) on a node that is not the active."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_apps import api_app

from bascule.api import ApiServices
from bascule.daemon.ha import HaService
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import FakeEngine
from bascule.engines.keepalived.engine import KeepalivedEngine
from bascule.store.revisions import RevisionStore

PAIR: dict[str, Any] = {
    "nodes": [
        {"name": "lb1", "address": "198.18.0.3", "priority": 150},
        {"name": "lb2", "address": "198.18.0.4", "priority": 100},
    ],
    "interface": "eth0",
    "advert_interval": 0.2,
}


@pytest.fixture
async def client(
    tmp_path: Path, make_api_services: Callable[..., ApiServices]
) -> AsyncIterator[httpx.AsyncClient]:
    async def lb1() -> frozenset[str]:
        return frozenset({"127.0.0.1", "198.18.0.3"})

    with RevisionStore(tmp_path / "bascule.db") as store:
        service = ConfigService(store=store, engines=[FakeEngine()], vips=NullVipManager())
        keepalived = KeepalivedEngine(tmp_path / "keepalived", addresses=lb1)
        services = dataclasses.replace(
            make_api_services(service), ha=HaService(service, keepalived)
        )
        transport = httpx.ASGITransport(app=api_app(services))
        async with httpx.AsyncClient(transport=transport, base_url="http://bascule") as opened:
            yield opened


async def test_a_single_node(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/ha")
    assert response.status_code == 200
    assert response.json() == {
        "role": "single",
        "node": None,
        "peer": None,
        "vrrp": None,
        "revision": None,
        "detail": "",
        "sync": None,
        "tables": None,
        "flows": None,
    }


async def test_a_paired_node_names_itself_and_its_peer(client: httpx.AsyncClient) -> None:
    assert (await client.put("/api/v1/config", json={"high_availability": PAIR})).status_code == 200
    status = (await client.get("/api/v1/ha")).json()
    assert status["node"] == PAIR["nodes"][0] and status["peer"] == PAIR["nodes"][1]
    assert status["role"] == "unknown" and status["revision"] == 1
    assert status["vrrp"]["running"] is False
    assert "keepalived is not running" in status["detail"]


async def test_only_the_active_hands_over(client: httpx.AsyncClient) -> None:
    assert (await client.put("/api/v1/config", json={"high_availability": PAIR})).status_code == 200
    refused = await client.post("/api/v1/ha/standby")
    assert refused.status_code == 422
    assert refused.json()["error"]["kind"] == "not_applicable"
    assert "not the active" in refused.json()["error"]["message"]


async def test_without_an_ha_service(
    tmp_path: Path, make_api_services: Callable[..., ApiServices]
) -> None:
    with RevisionStore(tmp_path / "bascule.db") as store:
        service = ConfigService(store=store, engines=[FakeEngine()], vips=NullVipManager())
        transport = httpx.ASGITransport(app=api_app(make_api_services(service)))
        async with httpx.AsyncClient(transport=transport, base_url="http://bascule") as client:
            response = await client.get("/api/v1/ha")
    assert response.status_code == 422
