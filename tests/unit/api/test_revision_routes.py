"""/api/v1/revisions: history pages, one revision, diffs, rollback."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from bascule.engines.base import FakeEngine
from bascule.store.revisions import RevisionStore

Document = dict[str, Any]
REVISIONS = "/api/v1/revisions"


async def commit_weights(
    client: httpx.AsyncClient, make_document: Callable[..., Document], *weights: int
) -> None:
    """One revision per weight of the first real server."""
    for weight in weights:
        response = await client.put(
            "/api/v1/config",
            json=make_document(weight, 1000),
            params={"message": f"weight {weight}"},
        )
        assert response.status_code == 200, response.text


async def test_an_empty_history(client: httpx.AsyncClient) -> None:
    response = await client.get(REVISIONS)
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_before": None}


async def test_history_is_paged_newest_first(
    client: httpx.AsyncClient, make_document: Callable[..., Document]
) -> None:
    await commit_weights(client, make_document, 100, 200, 300, 400, 500)
    pages: list[list[int]] = []
    params: dict[str, int] = {"limit": 2}
    while True:
        body = (await client.get(REVISIONS, params=params)).json()
        pages.append([item["number"] for item in body["items"]])
        if body["next_before"] is None:
            break
        params = {"limit": 2, "before": body["next_before"]}
    assert pages == [[5, 4], [3, 2], [1]]


async def test_a_full_last_page_has_no_next(
    client: httpx.AsyncClient, make_document: Callable[..., Document]
) -> None:
    await commit_weights(client, make_document, 100, 200)
    body = (await client.get(REVISIONS, params={"limit": 2})).json()
    assert [item["number"] for item in body["items"]] == [2, 1]
    assert body["next_before"] is None


async def test_a_summary(client: httpx.AsyncClient, make_document: Callable[..., Document]) -> None:
    await commit_weights(client, make_document, 100, 200)
    [summary] = (await client.get(REVISIONS, params={"limit": 1})).json()["items"]
    assert datetime.fromisoformat(summary.pop("created_at")).tzinfo is not None
    assert summary == {
        "number": 2,
        "author": "root@local",
        "message": "weight 200",
        "changes": 1,
        "rolled_back_from": None,
    }


async def test_bad_paging_parameters(client: httpx.AsyncClient) -> None:
    response = await client.get(REVISIONS, params={"limit": 0, "before": "x"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["kind"] == "bad_request"
    assert {f["path"]: f["message"] for f in error["fields"]} == {
        "query.limit": "must be at least 1",
        "query.before": "must be an integer",
    }


async def test_one_revision(
    client: httpx.AsyncClient, make_document: Callable[..., Document]
) -> None:
    await commit_weights(client, make_document, 100, 200)
    response = await client.get(f"{REVISIONS}/2")
    assert response.status_code == 200
    body = response.json()
    assert (body["number"], body["message"], body["changes"]) == (2, "weight 200", 1)
    assert body["document"]["virtual_services"][0]["real_servers"][0]["weight"] == 200
    assert body["diff"] == [
        {
            "op": "change",
            "path": "virtual_services[web].real_servers[198.18.0.4:80].weight",
            "old": 100,
            "new": 200,
        }
    ]
    assert body["diff_text"] == (
        "~ virtual_services[web].real_servers[198.18.0.4:80].weight: 100 -> 200"
    )


async def test_an_unknown_revision(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{REVISIONS}/7")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "kind": "not_found",
        "message": "revision 7 does not exist",
        "fields": [],
        "current_revision": None,
    }
    assert (await client.get(f"{REVISIONS}/seven")).json()["error"]["fields"][0]["path"] == (
        "path.number"
    )


async def test_diff_between_revisions(
    client: httpx.AsyncClient, make_document: Callable[..., Document]
) -> None:
    await commit_weights(client, make_document, 100, 200, 300)
    response = await client.get(f"{REVISIONS}/3/diff/1")
    assert response.status_code == 200
    body = response.json()
    path = "virtual_services[web].real_servers[198.18.0.4:80].weight"
    assert body == {
        "diff": [{"op": "change", "path": path, "old": 300, "new": 100}],
        "text": f"~ {path}: 300 -> 100",
    }
    assert (await client.get(f"{REVISIONS}/1/diff/9")).status_code == 404


async def test_rollback(
    client: httpx.AsyncClient,
    store: RevisionStore,
    engine: FakeEngine,
    make_document: Callable[..., Document],
) -> None:
    await commit_weights(client, make_document, 100, 200)
    response = await client.post(
        f"{REVISIONS}/1/rollback", headers={"If-Match": '"2"', "X-Bascule-Author": "dave@cli"}
    )
    assert response.status_code == 200
    assert response.headers["etag"] == '"3"'
    body = response.json()
    assert (body["revision"], body["changed"], body["applied"]) == (3, True, True)
    assert body["reloads"] is False  # a weight only: runtime
    revision = (await client.get(f"{REVISIONS}/3")).json()
    assert (revision["rolled_back_from"], revision["author"]) == (1, "dave@cli")
    assert revision["message"] == "roll back to revision 1"
    assert revision["document"] == (await client.get(f"{REVISIONS}/1")).json()["document"]


async def test_rollback_to_an_unknown_revision(client: httpx.AsyncClient, committed: int) -> None:
    response = await client.post(f"{REVISIONS}/9/rollback")
    assert response.status_code == 404


async def test_rollback_with_a_stale_base(
    client: httpx.AsyncClient, store: RevisionStore, make_document: Callable[..., Document]
) -> None:
    await commit_weights(client, make_document, 100, 200)
    response = await client.post(f"{REVISIONS}/1/rollback", headers={"If-Match": '"1"'})
    assert response.status_code == 409
    assert response.json()["error"]["current_revision"] == 2
    assert store.head_number() == 2
