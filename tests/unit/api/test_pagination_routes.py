"""limit/offset on the lists that grow: virtual services and the real servers of one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bascule.api.pagination import page

SERVICES = "/api/v1/virtual-services"


@pytest.fixture
async def five(client: httpx.AsyncClient, make_service: Callable[..., dict[str, Any]]) -> None:
    document = {
        "virtual_services": [make_service(f"vs-{i}", 80 + i, *([1000] * 5)) for i in range(5)]
    }
    response = await client.put("/api/v1/config", json=document)
    assert response.status_code == 200, response.text


async def test_without_limit_the_whole_list_comes(client: httpx.AsyncClient, five: None) -> None:
    body = (await client.get(SERVICES)).json()
    assert [vs["name"] for vs in body["items"]] == [f"vs-{i}" for i in range(5)]
    assert body["total"] == 5
    assert body["next_offset"] is None


async def test_pages_of_virtual_services(client: httpx.AsyncClient, five: None) -> None:
    names: list[str] = []
    offset: int | None = 0
    while offset is not None:
        response = await client.get(SERVICES, params={"limit": 2, "offset": offset})
        assert response.status_code == 200
        body = response.json()
        assert body["total"] == 5
        assert body["revision"] == 1
        names += [vs["name"] for vs in body["items"]]
        offset = body["next_offset"]
    assert names == [f"vs-{i}" for i in range(5)]


async def test_pages_of_real_servers(client: httpx.AsyncClient, five: None) -> None:
    response = await client.get(f"{SERVICES}/vs-1/real-servers", params={"limit": 3, "offset": 3})
    body = response.json()
    assert [rs["address"] for rs in body["items"]] == ["198.18.0.7", "198.18.0.8"]
    assert (body["total"], body["next_offset"]) == (5, None)
    first = (await client.get(f"{SERVICES}/vs-1/real-servers", params={"limit": 3})).json()
    assert first["next_offset"] == 3


async def test_an_offset_past_the_end_is_an_empty_page(
    client: httpx.AsyncClient, five: None
) -> None:
    body = (await client.get(SERVICES, params={"offset": 50})).json()
    assert (body["items"], body["total"], body["next_offset"]) == ([], 5, None)


@pytest.mark.parametrize(
    ("params", "path", "message"),
    [
        ({"limit": 0}, "query.limit", "must be at least 1"),
        ({"limit": 1001}, "query.limit", "must be at most 1000"),
        ({"offset": -1}, "query.offset", "must be at least 0"),
        ({"limit": "many"}, "query.limit", "must be an integer"),
    ],
)
async def test_bad_page_parameters_name_the_field(
    client: httpx.AsyncClient, params: dict[str, Any], path: str, message: str
) -> None:
    response = await client.get(SERVICES, params=params)
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == [{"path": path, "message": message}]


async def test_real_servers_of_an_unknown_service_are_not_found(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(f"{SERVICES}/nope/real-servers", params={"limit": 1})
    assert response.status_code == 404


def test_page_slices() -> None:
    assert page([1, 2, 3], limit=None).items == [1, 2, 3]
    chosen = page([1, 2, 3], limit=2, offset=1)
    assert (chosen.items, chosen.total, chosen.next_offset) == ([2, 3], 3, None)
    assert page([1, 2, 3], limit=1, offset=1).next_offset == 2
