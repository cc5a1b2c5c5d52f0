"""/api/v1/config: read, replace and plan the whole document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from bascule.engines.base import FakeEngine
from bascule.store.revisions import RevisionStore

Document = dict[str, Any]
CONFIG = "/api/v1/config"
APPLY_RESULT_KEYS = {
    "revision", "changed", "diff", "diff_text", "actions", "reloads", "reload", "applied",
    "message", "dry_run", "detections",
}  # fmt: skip


async def test_an_empty_store_reads_as_an_empty_document(client: httpx.AsyncClient) -> None:
    response = await client.get(CONFIG)
    assert response.status_code == 200
    assert response.headers["etag"] == '"0"'
    assert response.json() == {
        "revision": None,
        "document": {"schema_version": 2, "virtual_services": []},
    }


async def test_put_commits_applies_and_reports(
    client: httpx.AsyncClient,
    store: RevisionStore,
    engine: FakeEngine,
    make_document: Callable[..., Document],
) -> None:
    response = await client.put(
        CONFIG,
        json=make_document(),
        params={"message": "first web service"},
        headers={"X-Bascule-Author": "alice@cli"},
    )
    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    body = response.json()
    assert set(body) == APPLY_RESULT_KEYS
    assert body["revision"] == 1
    assert body["changed"] is True
    assert body["applied"] is True
    assert body["dry_run"] is False
    assert body["reloads"] is True
    assert body["diff"][0]["op"] == "add"
    assert body["diff"][0]["path"] == "virtual_services"
    assert body["diff_text"].startswith("+ virtual_services: ")
    assert any("reload" in action for action in body["actions"])
    assert engine.reloads == 1
    head = store.head()
    assert head is not None
    assert (head.author, head.message) == ("alice@cli", "first web service")

    read = await client.get(CONFIG)
    assert read.headers["etag"] == '"1"'
    assert read.json()["revision"] == 1
    assert read.json()["document"]["virtual_services"][0]["name"] == "web"


async def test_the_author_defaults_to_root_at_local(
    client: httpx.AsyncClient, store: RevisionStore, make_document: Callable[..., Document]
) -> None:
    await client.put(CONFIG, json=make_document())
    head = store.head()
    assert head is not None
    assert head.author == "root@local"


async def test_an_unchanged_document_commits_nothing(
    client: httpx.AsyncClient, committed: int, make_document: Callable[..., Document]
) -> None:
    response = await client.put(CONFIG, json=make_document())
    assert response.status_code == 200
    body = response.json()
    assert (body["revision"], body["changed"], body["diff"]) == (committed, False, [])
    assert body["message"] == "no change"


async def test_an_invalid_document_names_the_field(
    client: httpx.AsyncClient, store: RevisionStore, make_document: Callable[..., Document]
) -> None:
    response = await client.put(CONFIG, json=make_document(0, 1000))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["kind"] == "invalid_configuration"
    assert error["fields"][0] == {
        "path": "virtual_services[0].real_servers[0].weight",
        "message": "must be between 1 and 65535",
    }
    assert "virtual_services[0].real_servers[0].weight" in error["message"]
    assert error["current_revision"] is None
    assert store.head() is None


async def test_every_invalid_field_is_reported(
    client: httpx.AsyncClient, make_document: Callable[..., Document]
) -> None:
    document = make_document()
    document["virtual_services"][0]["port"] = 70000
    document["virtual_services"][0]["colour"] = "blue"
    response = await client.put(CONFIG, json=document)
    paths = {field["path"] for field in response.json()["error"]["fields"]}
    assert paths == {"virtual_services[0].port", "virtual_services[0].colour"}


async def test_a_body_that_is_not_an_object_is_a_bad_request(client: httpx.AsyncClient) -> None:
    response = await client.put(CONFIG, json=[1, 2])
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["kind"] == "bad_request"
    assert error["fields"] == [{"path": "body", "message": "must be a JSON object"}]


async def test_a_body_that_is_not_json_is_a_bad_request(client: httpx.AsyncClient) -> None:
    response = await client.put(
        CONFIG, content=b'{"virtual_services": [', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["kind"] == "bad_request"
    assert error["fields"][0]["path"] == "body"
    assert error["fields"][0]["message"].startswith("is not valid JSON")


async def test_a_missing_body_is_a_bad_request(client: httpx.AsyncClient) -> None:
    response = await client.put(CONFIG)
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == [{"path": "body", "message": "is required"}]


async def test_if_match_of_the_current_revision_is_accepted(
    client: httpx.AsyncClient, committed: int, make_document: Callable[..., Document]
) -> None:
    for tag, expected in (('"1"', 2), ("2", 3)):
        weight = 100 * expected
        response = await client.put(
            CONFIG, json=make_document(weight, 1000), headers={"If-Match": tag}
        )
        assert response.status_code == 200, response.text
        assert response.json()["revision"] == expected


async def test_if_match_zero_or_none_means_an_empty_store(
    client: httpx.AsyncClient, make_document: Callable[..., Document]
) -> None:
    response = await client.put(CONFIG, json=make_document(), headers={"If-Match": '"0"'})
    assert response.status_code == 200
    response = await client.put(CONFIG, json=make_document(500, 1000), headers={"If-Match": "none"})
    assert response.status_code == 409
    assert response.json()["error"]["current_revision"] == 1


async def test_a_stale_if_match_is_a_conflict(
    client: httpx.AsyncClient,
    store: RevisionStore,
    committed: int,
    make_document: Callable[..., Document],
) -> None:
    await client.put(CONFIG, json=make_document(500, 1000))  # revision 2, by someone else
    response = await client.put(
        CONFIG, json=make_document(700, 1000), headers={"If-Match": f'"{committed}"'}
    )
    assert response.status_code == 409
    assert response.headers["etag"] == '"2"'
    error = response.json()["error"]
    assert error["kind"] == "conflict"
    assert error["current_revision"] == 2
    assert store.head_number() == 2


async def test_a_malformed_if_match_is_a_bad_request(
    client: httpx.AsyncClient, make_document: Callable[..., Document]
) -> None:
    response = await client.put(CONFIG, json=make_document(), headers={"If-Match": '"1", "2"'})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["kind"] == "bad_request"
    assert error["fields"][0]["path"] == "header.If-Match"


async def test_a_dry_run_commits_and_applies_nothing(
    client: httpx.AsyncClient,
    store: RevisionStore,
    engine: FakeEngine,
    make_document: Callable[..., Document],
) -> None:
    response = await client.put(CONFIG, json=make_document(), params={"dry_run": "true"})
    assert response.status_code == 200
    body = response.json()
    assert (body["dry_run"], body["changed"], body["revision"]) == (True, True, None)
    assert body["diff"]
    assert body["actions"]
    assert store.head() is None
    assert engine.reloads == 0


async def test_plan_commits_nothing(
    client: httpx.AsyncClient,
    store: RevisionStore,
    engine: FakeEngine,
    committed: int,
    make_document: Callable[..., Document],
) -> None:
    response = await client.post(f"{CONFIG}/plan", json=make_document(500, 1000))
    assert response.status_code == 200
    body = response.json()
    assert body["dry_run"] is True
    assert body["revision"] == committed
    assert [item["path"] for item in body["diff"]] == [
        "virtual_services[web].real_servers[198.18.0.4:80].weight"
    ]
    assert (
        body["diff_text"]
        == "~ virtual_services[web].real_servers[198.18.0.4:80].weight: 1000 -> 500"
    )
    assert body["reloads"] is False
    assert store.head_number() == committed
    assert engine.reloads == 1


async def test_plan_reports_validation_errors(
    client: httpx.AsyncClient, make_document: Callable[..., Document]
) -> None:
    response = await client.post(f"{CONFIG}/plan", json=make_document(0, 1000))
    assert response.status_code == 422
    assert response.json()["error"]["kind"] == "invalid_configuration"


async def test_an_engine_rejection_commits_nothing(
    client: httpx.AsyncClient,
    store: RevisionStore,
    engine: FakeEngine,
    committed: int,
    make_document: Callable[..., Document],
) -> None:
    engine.reject_with = "[ALERT] parsing [/etc/haproxy.cfg:12]: unknown keyword"
    # a third real server: a new configuration to install, which the checker judges (a
    # weight alone is a runtime command: no configuration, no check)
    response = await client.put(CONFIG, json=make_document(500, 1000, 1000))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["kind"] == "engine_rejected"
    assert error["message"] == "[ALERT] parsing [/etc/haproxy.cfg:12]: unknown keyword"
    assert store.head_number() == committed


async def test_a_failed_apply_is_committed_and_reported(
    client: httpx.AsyncClient,
    store: RevisionStore,
    engine: FakeEngine,
    committed: int,
    make_service: Callable[..., Document],
) -> None:
    engine.fail_apply_with = "the new workers did not start"
    document = {"virtual_services": [make_service("web"), make_service("api", 8080)]}
    response = await client.put(CONFIG, json=document)
    assert response.status_code == 200
    body = response.json()
    assert (body["revision"], body["changed"], body["applied"]) == (2, True, False)
    assert "the new workers did not start" in body["message"]
    assert store.head_number() == 2

    status = (await client.get("/api/v1/status")).json()
    assert status["apply_ok"] is False
    assert status["applied_revision"] == committed
    assert {vs["status"] for vs in status["virtual_services"]} == {"apply_error"}
