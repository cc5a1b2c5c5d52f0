"""The HA pair's sync through the API, without a peer on the network: writes refused on a
joined standby (409 not_active naming the active, nothing committed), and the peer's routes,
which only the token minted for the peer may call."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_apps import api_app

from bascule.api import ApiServices
from bascule.daemon.ha import HaService
from bascule.daemon.pair import PairService
from bascule.daemon.pair_sync import pair_actor
from bascule.daemon.peer import revision_to_wire
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import FakeEngine
from bascule.engines.keepalived.engine import KeepalivedEngine
from bascule.model.access import Actor, Role
from bascule.store.pair import PairLink, PairStore
from bascule.store.revisions import RevisionStore

DOCUMENT: dict[str, Any] = {
    # a pair: its standby refuses writes (without high_availability, no node has a role)
    "high_availability": {
        "nodes": [
            {"name": "lb1", "address": "198.18.0.3", "priority": 150},
            {"name": "lb2", "address": "198.18.0.4", "priority": 100},
        ],
        "interface": "eth0",
    },
    "virtual_services": [
        {
            "name": "web",
            "address": "127.0.0.1",
            "port": 8080,
            "real_servers": [{"address": "127.0.0.1", "port": 9000}],
        }
    ],
}
LINK = PairLink(
    peer_url="https://198.18.0.3:8443",
    peer_cert="",
    peer_token="bsc_0123_secret",
    minted_token="none",
    peers_cert="",
    joined_at=datetime(2026, 12, 5, tzinfo=UTC),
)


@dataclasses.dataclass
class Node:
    local: httpx.AsyncClient
    remote: httpx.AsyncClient
    pair: PairService
    store: RevisionStore


@pytest.fixture
async def node(
    tmp_path: Path, make_api_services: Callable[..., ApiServices]
) -> AsyncIterator[Node]:
    async def addresses() -> frozenset[str]:
        return frozenset({"127.0.0.1"})

    with (
        RevisionStore(tmp_path / "bascule.db") as store,
        PairStore(tmp_path / "bascule.db") as pair_store,
    ):
        service = ConfigService(store=store, engines=[FakeEngine()], vips=NullVipManager())
        services = make_api_services(service)
        keepalived = KeepalivedEngine(tmp_path / "keepalived", addresses=addresses)
        pair = PairService(
            store=pair_store,
            config=service,
            certificates=services.certificates,
            accounts=services.accounts,
            keepalived=keepalived,
            listener=None,
        )
        service.changes.guard = pair.check_writable
        services = dataclasses.replace(services, ha=HaService(service, keepalived, pair=pair))
        local = httpx.ASGITransport(app=api_app(services))
        remote = httpx.ASGITransport(app=api_app(services, local=False))
        async with (
            httpx.AsyncClient(transport=local, base_url="http://bascule") as local_client,
            httpx.AsyncClient(transport=remote, base_url="https://bascule") as remote_client,
        ):
            yield Node(local=local_client, remote=remote_client, pair=pair, store=store)


async def test_a_joined_standby_refuses_writes_naming_the_active(node: Node) -> None:
    assert (await node.local.put("/api/v1/config", json=DOCUMENT)).status_code == 200
    node.pair.store.save(LINK)
    changed = {**DOCUMENT, "virtual_services": [{**DOCUMENT["virtual_services"][0], "port": 8081}]}
    response = await node.local.put("/api/v1/config", json=changed)
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["kind"] == "not_active"
    assert "198.18.0.3" in error["message"] and "standby" in error["message"]
    assert node.store.head_number() == 1  # nothing committed
    status = (await node.local.get("/api/v1/ha")).json()
    assert status["sync"]["joined"] and status["sync"]["peer_url"] == LINK.peer_url


async def test_only_the_peers_token_reaches_the_peer_routes(node: Node, tmp_path: Path) -> None:
    accounts = node.pair.accounts
    _, peer_token = accounts.create_token("ha pair", Role.admin, by=pair_actor())
    as_peer = {"Authorization": f"Bearer {peer_token}"}
    state = await node.remote.get("/api/v1/ha/peer/state", headers=as_peer)
    assert state.status_code == 200 and state.json()["head"] is None
    with RevisionStore(tmp_path / "active.db") as active:
        active.commit(DOCUMENT, base=None, author="admin", message="from the active")
        body = {"revisions": [revision_to_wire(r) for r in active.since(None, limit=10)]}
        stored = await node.remote.post("/api/v1/ha/peer/revisions", json=body, headers=as_peer)
        assert stored.status_code == 200 and stored.json()["head"] == 1
        assert node.store.get(1) == active.get(1)


async def test_an_administrator_is_not_the_peer(node: Node) -> None:
    accounts = node.pair.accounts
    accounts.store.add_user("alice", Role.admin, "x", at=datetime.now(UTC))
    actor = Actor(name="alice", role=Role.admin, via="local", remote="test")
    _, token = accounts.create_token("not the peer", Role.admin, by=actor)
    response = await node.remote.get(
        "/api/v1/ha/peer/state", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 403, response.text
    assert "only the HA pair's peer" in response.json()["error"]["message"]


PEER = "https://198.18.0.3:8443"
FINGERPRINT = "ab" * 32


@pytest.mark.parametrize(
    ("body", "kind", "field"),
    [
        ({"url": "http://x:8443", "token": "t", "fingerprint": FINGERPRINT}, None, "url"),
        ({"url": PEER, "token": " ", "fingerprint": FINGERPRINT}, None, "token"),
        ({"url": PEER, "token": "t"}, None, "fingerprint"),
        ({"url": PEER, "token": "t", "fingerprint": "xyz"}, None, "fingerprint"),
        ({"url": PEER, "token": "t", "ca_cert": "not a PEM"}, None, "ca_cert"),
        ({"url": PEER, "token": "t", "fingerprint": FINGERPRINT}, "not_applicable", None),
    ],
)
async def test_a_bad_join_names_its_field_and_changes_nothing(
    node: Node, body: dict[str, str], kind: str | None, field: str | None
) -> None:
    response = await node.local.post("/api/v1/ha/join", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    if field is not None:
        assert [f["path"] for f in error["fields"]] == [field], error
    else:
        assert error["kind"] == kind and "listener is off" in error["message"], error
    assert node.pair.store.link() is None


async def test_the_drain_route_takes_the_peer_only_and_checks_each_service(node: Node) -> None:
    """``/ha/peer/drain`` (the active handing over tells the standby what to forward)."""
    accounts = node.pair.accounts
    accounts.store.add_user("bob", Role.admin, "x", at=datetime.now(UTC))
    actor = Actor(name="bob", role=Role.admin, via="local", remote="test")
    _, admin = accounts.create_token("not the peer", Role.admin, by=actor)
    _, peer = accounts.create_token("ha pair", Role.admin, by=pair_actor())
    service = {"name": "hold", "address": "198.18.0.100", "port": 7000, "drain_time": 30}
    url = "/api/v1/ha/peer/drain"
    refused = await node.remote.post(
        url, json={"services": [service]}, headers={"Authorization": f"Bearer {admin}"}
    )
    assert refused.status_code == 403, refused.text
    as_peer = {"Authorization": f"Bearer {peer}"}
    bad = {**service, "address": "198.18.0.100; flush ruleset", "port": 0}
    answer = await node.remote.post(url, json={"services": [bad]}, headers=as_peer)
    assert answer.status_code == 422, answer.text
    paths = {field["path"] for field in answer.json()["error"]["fields"]}
    assert paths == {"body.services[0].address", "body.services[0].port"}, paths
