"""/api/v1/virtual-services: one virtual service at a time, as edits of the document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from bascule.engines.base import FakeEngine
from bascule.store.revisions import RevisionStore

Document = dict[str, Any]
SERVICES = "/api/v1/virtual-services"


async def test_list_on_an_empty_store(client: httpx.AsyncClient) -> None:
    response = await client.get(SERVICES)
    assert response.status_code == 200
    assert response.json() == {"revision": None, "items": [], "total": 0, "next_offset": None}


async def test_list_gives_the_documents_with_defaults(
    client: httpx.AsyncClient, committed: int
) -> None:
    response = await client.get(SERVICES)
    assert response.headers["etag"] == f'"{committed}"'
    body = response.json()
    assert body["revision"] == committed
    [web] = body["items"]
    assert web["name"] == "web"
    assert web["check"]["type"] == "http"  # a default, spelt out


async def test_add_creates_a_revision(
    client: httpx.AsyncClient,
    store: RevisionStore,
    committed: int,
    make_service: Callable[..., Document],
) -> None:
    response = await client.post(
        SERVICES, json=make_service("api", 8080), headers={"X-Bascule-Author": "bob@cli"}
    )
    assert response.status_code == 201
    assert response.headers["etag"] == '"2"'
    body = response.json()
    assert (body["revision"], body["changed"], body["applied"]) == (2, True, True)
    assert [item["path"] for item in body["diff"]] == ["virtual_services[api]"]
    head = store.head()
    assert head is not None
    assert (head.author, head.message) == ("bob@cli", "add virtual service api")
    names = [vs["name"] for vs in (await client.get(SERVICES)).json()["items"]]
    assert names == ["web", "api"]


async def test_add_to_an_empty_store(
    client: httpx.AsyncClient, make_service: Callable[..., Document]
) -> None:
    response = await client.post(SERVICES, json=make_service(), headers={"If-Match": '"0"'})
    assert response.status_code == 201
    assert response.json()["revision"] == 1


async def test_a_dry_run_add_is_not_a_creation(
    client: httpx.AsyncClient,
    store: RevisionStore,
    committed: int,
    make_service: Callable[..., Document],
) -> None:
    response = await client.post(
        SERVICES, json=make_service("api", 8080), params={"dry_run": "true"}
    )
    assert response.status_code == 200
    assert response.json()["dry_run"] is True
    assert store.head_number() == committed


async def test_add_twice_is_invalid(
    client: httpx.AsyncClient, committed: int, make_service: Callable[..., Document]
) -> None:
    response = await client.post(SERVICES, json=make_service("web", 8080))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["kind"] == "invalid_configuration"
    assert error["fields"][0]["path"] == "name"


async def test_add_names_the_bad_field_by_its_document_path(
    client: httpx.AsyncClient, committed: int, make_service: Callable[..., Document]
) -> None:
    response = await client.post(SERVICES, json=make_service("api", 8080, 0))
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == [
        {
            "path": "virtual_services[1].real_servers[0].weight",
            "message": "must be between 1 and 65535",
        }
    ]


async def test_read_one(client: httpx.AsyncClient, committed: int) -> None:
    response = await client.get(f"{SERVICES}/web")
    assert response.status_code == 200
    assert response.headers["etag"] == f'"{committed}"'
    body = response.json()
    assert (body["name"], body["port"], len(body["real_servers"])) == ("web", 80, 2)


async def test_read_an_unknown_service(client: httpx.AsyncClient, committed: int) -> None:
    response = await client.get(f"{SERVICES}/nope")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["kind"] == "not_found"
    assert "nope" in error["message"]


async def test_replace(
    client: httpx.AsyncClient,
    engine: FakeEngine,
    committed: int,
    make_service: Callable[..., Document],
) -> None:
    replacement = make_service("web", 81)
    response = await client.put(f"{SERVICES}/web", json=replacement)
    assert response.status_code == 200
    body = response.json()
    assert body["revision"] == 2
    assert body["reloads"] is True
    assert "~ virtual_services[web].port: 80 -> 81" in body["diff_text"].splitlines()
    assert engine.reloads == 2
    assert (await client.get(f"{SERVICES}/web")).json()["port"] == 81


async def test_replace_an_unknown_service(
    client: httpx.AsyncClient, committed: int, make_service: Callable[..., Document]
) -> None:
    response = await client.put(f"{SERVICES}/nope", json=make_service("nope"))
    assert response.status_code == 404


async def test_patch_merges_nested_mappings(client: httpx.AsyncClient, committed: int) -> None:
    response = await client.patch(
        f"{SERVICES}/web", json={"check": {"interval": 5}}, params={"message": "slower checks"}
    )
    assert response.status_code == 200
    body = response.json()
    assert [(d["path"], d["old"], d["new"]) for d in body["diff"]] == [
        ("virtual_services[web].check.interval", 2, 5)
    ]
    web = (await client.get(f"{SERVICES}/web")).json()
    assert web["check"] == {**web["check"], "interval": 5, "type": "http", "path": "/"}
    history = (await client.get("/api/v1/revisions")).json()
    assert history["items"][0]["message"] == "slower checks"


async def test_patch_with_an_invalid_value(client: httpx.AsyncClient, committed: int) -> None:
    response = await client.patch(f"{SERVICES}/web", json={"check": {"interval": "often"}})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["path"] == "virtual_services[0].check.interval"


async def test_patch_the_scheduler_away_from_adaptive_drops_the_agent(
    client: httpx.AsyncClient, make_service: Callable[..., Document]
) -> None:
    adaptive = {**make_service(), "scheduler": "adaptive", "adaptive": {"port": 8080}}
    assert (await client.put("/api/v1/config", json={"virtual_services": [adaptive]})).is_success
    response = await client.patch(f"{SERVICES}/web", json={"scheduler": "round_robin"})
    assert response.status_code == 200, response.text
    paths = {d["path"] for d in response.json()["diff"]}
    assert paths == {"virtual_services[web].scheduler", "virtual_services[web].adaptive"}
    web = (await client.get(f"{SERVICES}/web")).json()
    assert (web["scheduler"], web["adaptive"]) == ("round_robin", None)


async def test_patch_with_a_stale_base_is_a_conflict(
    client: httpx.AsyncClient, committed: int
) -> None:
    await client.patch(f"{SERVICES}/web", json={"port": 81})
    response = await client.patch(
        f"{SERVICES}/web", json={"port": 82}, headers={"If-Match": f'"{committed}"'}
    )
    assert response.status_code == 409
    assert response.json()["error"]["current_revision"] == committed + 1


async def test_delete(client: httpx.AsyncClient, store: RevisionStore, committed: int) -> None:
    response = await client.delete(f"{SERVICES}/web", headers={"If-Match": f'"{committed}"'})
    assert response.status_code == 200
    body = response.json()
    assert body["revision"] == 2
    assert [(d["op"], d["path"]) for d in body["diff"]] == [("remove", "virtual_services[web]")]
    assert (await client.get(SERVICES)).json()["items"] == []
    head = store.head()
    assert head is not None
    assert head.message == "remove virtual service web"


async def test_delete_an_unknown_service(client: httpx.AsyncClient, committed: int) -> None:
    response = await client.delete(f"{SERVICES}/nope")
    assert response.status_code == 404
    assert response.json()["error"]["kind"] == "not_found"


async def test_rules_and_sub_services_through_the_api(
    client: httpx.AsyncClient, committed: int, store: RevisionStore
) -> None:
    """The L7 sections go through the same door: accepted whole, refused by field."""
    rules = {
        "sub_services": [{"name": "api", "real_servers": [{"address": "198.18.0.9", "port": 80}]}],
        "rules": [{"name": "api", "match": {"path_prefix": "/api/"}, "action": {"use": "api"}}],
        "request_headers": [{"set": "X-Env", "value": "it's %[src]"}],
    }
    response = await client.patch(f"{SERVICES}/web", json=rules)
    assert response.status_code == 200, response.text
    head = store.head()
    assert head is not None and head.document["virtual_services"][0]["rules"][0]["name"] == "api"
    hostile = {
        "rules": [
            {
                "name": "bad",
                "match": {"header": {"name": "X-A\nlisten evil", "regex": "(?P<x>a)"}},
                "action": {"redirect": "https://a.example/\r\nlisten evil"},
            }
        ],
        "response_headers": [{"set": "X-A", "value": "a\nlisten evil"}],
    }
    refused = await client.patch(f"{SERVICES}/web", json=hostile)
    assert refused.status_code == 422, refused.text
    paths = {field["path"] for field in refused.json()["error"]["fields"]}
    assert {
        "virtual_services[0].rules[0].match.header.name",
        "virtual_services[0].rules[0].match.header.regex",
        "virtual_services[0].rules[0].action.redirect",
        "virtual_services[0].response_headers[0].value",
    } <= paths
    assert store.head_number() == committed + 1  # nothing committed
