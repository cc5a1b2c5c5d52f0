"""Hostile documents through the API (findings 7 and 9): YAML aliases that expand beyond the
bound (the billion laughs) and nesting too deep for a recursive reader are refused as the
client's error (4xx), never a 500 with a traceback, on ``/restore`` as on ``PUT /config``;
nothing changes."""

from __future__ import annotations

import httpx
import pytest
from hostile_documents import BILLION_LAUGHS, DEEP_JSON, DEEP_YAML

from bascule.api import ApiServices


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (BILLION_LAUGHS, "expands to more than"),
        (DEEP_YAML, "nested deeper than"),
        (DEEP_JSON, "nested deeper than"),
    ],
)
async def test_restore_refuses_them(
    client: httpx.AsyncClient, committed: int, services: ApiServices, content: str, words: str
) -> None:
    response = await client.post(
        "/api/v1/restore", content=content.encode(), headers={"Content-Type": "application/yaml"}
    )
    assert response.status_code == 422, response.text[:300]
    assert words in response.json()["error"]["message"]
    assert services.config.store.head_number() == committed


async def test_put_config_refuses_deep_json(
    client: httpx.AsyncClient, committed: int, services: ApiServices
) -> None:
    for deep in (DEEP_JSON, '{"virtual_services": [' + "[" * 2000 + "]" * 2000 + "]}"):
        response = await client.put(
            "/api/v1/config", content=deep.encode(), headers={"Content-Type": "application/json"}
        )
        assert 400 <= response.status_code < 500, response.text[:300]
    assert services.config.store.head_number() == committed
