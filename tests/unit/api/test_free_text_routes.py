"""Free text through the API (finding 5): a revision message, the author the unix socket's
caller names, an API token's name: control characters are refused with a field error and
nothing is stored."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from bascule.api import ApiServices

ClientAs = Callable[[str | None], Awaitable[httpx.AsyncClient]]
RS = "/api/v1/virtual-services/web/real-servers/198.18.0.4:80"


@pytest.mark.parametrize("message", ["\x1b[2Jowned", "two\nlines", "csi\x9b31m", "nul\x00"])
async def test_a_revision_message_is_one_printable_line(
    client: httpx.AsyncClient, committed: int, services: ApiServices, message: str
) -> None:
    response = await client.patch(RS, params={"message": message}, json={"weight": 7})
    assert response.status_code == 422, response.text
    fields = response.json()["error"]["fields"]
    assert [f["path"] for f in fields] == ["message"]
    assert services.config.store.head_number() == committed


async def test_a_message_in_a_put_is_refused_too(
    client: httpx.AsyncClient, make_document: Callable[..., dict[str, Any]]
) -> None:
    response = await client.put(
        "/api/v1/config", params={"message": "ok\x1b]0;title\x07"}, json=make_document()
    )
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["path"] == "message"


async def test_the_socket_callers_author_is_one_printable_line(
    client: httpx.AsyncClient, committed: int, services: ApiServices
) -> None:
    response = await client.post(f"{RS}/drain", headers={"X-Bascule-Author": "root\x1b[8m@cli"})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["path"] == "header.X-Bascule-Author"
    assert services.config.store.head_number() == committed


@pytest.mark.parametrize("name", ["ci\x1b[2J", "ci\x9bjob", "ci\njob"])
async def test_a_token_name_is_one_printable_line(
    client_as: ClientAs, services: ApiServices, name: str
) -> None:
    admin = await client_as("admin")
    response = await admin.post("/api/v1/tokens", json={"name": name, "role": "viewer"})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["path"] == "name"
    assert all(t.name != name for t in services.accounts.tokens())
