"""/api/v1/virtual-services/{name}/real-servers: back ends, their weights and states."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from bascule.engines.base import FakeEngine
from bascule.model import RealServerState
from bascule.reconcile.actions import SetState, SetWeight
from bascule.store.revisions import RevisionStore

SERVERS = "/api/v1/virtual-services/web/real-servers"
FIRST = f"{SERVERS}/198.18.0.4:80"


async def test_list(client: httpx.AsyncClient, committed: int) -> None:
    response = await client.get(SERVERS)
    assert response.status_code == 200
    body = response.json()
    assert body["revision"] == committed
    assert [(rs["address"], rs["weight"]) for rs in body["items"]] == [
        ("198.18.0.4", 1000),
        ("198.18.0.5", 1000),
    ]


async def test_add(client: httpx.AsyncClient, store: RevisionStore, committed: int) -> None:
    response = await client.post(SERVERS, json={"address": "198.18.0.6", "port": 80})
    assert response.status_code == 201
    body = response.json()
    assert body["revision"] == 2
    assert [(d["op"], d["path"]) for d in body["diff"]] == [
        ("add", "virtual_services[web].real_servers[198.18.0.6:80]")
    ]
    head = store.head()
    assert head is not None
    assert head.message == "add real server 198.18.0.6:80 to web"


async def test_add_an_ipv6_server_and_read_it_back(
    client: httpx.AsyncClient, committed: int
) -> None:
    response = await client.post(SERVERS, json={"address": "2001:db8::1", "port": 80})
    assert response.status_code == 201
    key = quote("[2001:db8::1]:80", safe="")
    read = await client.get(f"{SERVERS}/{key}")
    assert read.status_code == 200
    assert read.json()["address"] == "2001:db8::1"
    # the key is normalised, however the client spells the address
    assert (await client.get(f"{SERVERS}/{quote('[2001:0db8::0001]:80', safe='')}")).is_success


async def test_add_an_invalid_server_names_the_field(
    client: httpx.AsyncClient, committed: int
) -> None:
    response = await client.post(SERVERS, json={"address": "198.18.0.6", "port": 80, "weight": 0})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["path"] == (
        "virtual_services[0].real_servers[2].weight"
    )


async def test_add_a_duplicate(client: httpx.AsyncClient, committed: int) -> None:
    response = await client.post(SERVERS, json={"address": "198.18.0.4", "port": 80})
    assert response.status_code == 422
    assert response.json()["error"]["kind"] == "invalid_configuration"


async def test_add_to_an_unknown_service(client: httpx.AsyncClient, committed: int) -> None:
    response = await client.post(
        "/api/v1/virtual-services/nope/real-servers", json={"address": "198.18.0.6", "port": 80}
    )
    assert response.status_code == 404


async def test_read_one(client: httpx.AsyncClient, committed: int) -> None:
    response = await client.get(FIRST)
    assert response.status_code == 200
    assert response.headers["etag"] == f'"{committed}"'
    assert response.json() == {
        "address": "198.18.0.4",
        "port": 80,
        "weight": 1000,
        "state": "enabled",
        "max_connections": 0,
        "critical": False,
        "forwarding": None,
    }


async def test_unknown_and_malformed_keys_are_not_found(
    client: httpx.AsyncClient, committed: int
) -> None:
    for key in ("198.18.0.9:80", "not-a-key", "198.18.0.4"):
        response = await client.get(f"{SERVERS}/{key}")
        assert response.status_code == 404, key
        assert response.json()["error"]["kind"] == "not_found"
    assert (await client.get("/api/v1/virtual-services/nope/real-servers")).status_code == 404


async def test_a_weight_change_is_runtime_only(
    client: httpx.AsyncClient, engine: FakeEngine, committed: int
) -> None:
    reloads = engine.reloads
    response = await client.patch(FIRST, json={"weight": 500})
    assert response.status_code == 200
    body = response.json()
    assert body["reloads"] is False
    assert body["applied"] is True
    assert body["actions"] and all("no reload" in action for action in body["actions"])
    assert engine.reloads == reloads
    assert SetWeight(vs="web", server="198.18.0.5:80", weight=2) in engine.executed


async def test_patch_with_an_invalid_weight(client: httpx.AsyncClient, committed: int) -> None:
    response = await client.patch(FIRST, json={"weight": 0})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["path"] == (
        "virtual_services[0].real_servers[0].weight"
    )


async def test_drain_disable_enable(
    client: httpx.AsyncClient, engine: FakeEngine, store: RevisionStore, committed: int
) -> None:
    reloads = engine.reloads
    for verb, state in (
        ("drain", RealServerState.drain),
        ("disable", RealServerState.disabled),
        ("enable", RealServerState.enabled),
    ):
        response = await client.post(f"{FIRST}/{verb}", headers={"X-Bascule-Author": "carol@cli"})
        assert response.status_code == 200, verb
        body = response.json()
        assert body["changed"] is True
        assert body["reloads"] is False
        assert (await client.get(FIRST)).json()["state"] == state.value
        assert engine.executed[-1] == SetState(vs="web", server="198.18.0.4:80", state=state)
    assert engine.reloads == reloads
    head = store.head()
    assert head is not None
    assert (head.number, head.author) == (committed + 3, "carol@cli")


async def test_a_state_change_with_a_stale_base(client: httpx.AsyncClient, committed: int) -> None:
    await client.post(f"{FIRST}/drain")
    response = await client.post(f"{FIRST}/enable", headers={"If-Match": f'"{committed}"'})
    assert response.status_code == 409


async def test_a_state_change_of_an_unknown_server(
    client: httpx.AsyncClient, committed: int
) -> None:
    response = await client.post(f"{SERVERS}/198.18.0.9:80/drain")
    assert response.status_code == 404


async def test_delete(client: httpx.AsyncClient, engine: FakeEngine, committed: int) -> None:
    response = await client.delete(FIRST)
    assert response.status_code == 200
    body = response.json()
    assert [(d["op"], d["path"]) for d in body["diff"]] == [
        ("remove", "virtual_services[web].real_servers[198.18.0.4:80]")
    ]
    assert (await client.get(FIRST)).status_code == 404
    assert (await client.delete(FIRST)).status_code == 404
