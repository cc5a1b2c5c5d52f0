"""/http-users: administrators only, never a password or a hash in an answer, field errors
with their paths, and a document naming a user the store lacks refused on its field."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

ClientAs = Callable[[str | None], Awaitable[httpx.AsyncClient]]

USERS = "/api/v1/http-users"


def fields(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    result: list[dict[str, Any]] = response.json()["error"]["fields"]
    return result


async def test_an_admin_manages_http_users_and_no_answer_holds_a_secret(
    client_as: ClientAs,
) -> None:
    admin = await client_as("admin")
    created = await admin.post(USERS, json={"name": "ops", "password": "ops-password-1"})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "ops" and created.json()["used_by"] == []
    changed = await admin.put(f"{USERS}/ops/password", json={"password": "ops-password-2"})
    assert changed.status_code == 200, changed.text
    listed = await admin.get(USERS)
    for answer in (created, changed, listed, await admin.get(f"{USERS}/ops")):
        assert "ops-password" not in answer.text and "$y$" not in answer.text
        assert "hash" not in answer.text
    assert [item["name"] for item in listed.json()["items"]] == ["ops"]
    assert (await admin.delete(f"{USERS}/ops")).status_code == 204
    assert (await admin.get(f"{USERS}/ops")).status_code == 404


async def test_only_an_admin_may_see_or_change_them(client_as: ClientAs) -> None:
    for role in ("operator", "viewer"):
        client = await client_as(role)
        assert (await client.get(USERS)).status_code == 403
        body = {"name": "ops", "password": "ops-password-1"}
        assert (await client.post(USERS, json=body)).status_code == 403


async def test_field_errors_name_the_field(client_as: ClientAs) -> None:
    admin = await client_as("admin")
    short = await admin.post(USERS, json={"name": "ops", "password": "short"})
    assert fields(short) == [{"path": "password", "message": "must be at least 8 characters"}]
    bad_name = await admin.post(USERS, json={"name": "o:ps", "password": "long-enough"})
    assert [f["path"] for f in fields(bad_name)] == ["name"]
    missing = await admin.put(f"{USERS}/nobody/password", json={"password": "long-enough"})
    assert missing.status_code == 404


async def test_a_document_naming_a_missing_user_is_refused_on_its_field(
    client_as: ClientAs,
) -> None:
    admin = await client_as("admin")
    document = {
        "virtual_services": [
            {
                "name": "ops",
                "address": "198.18.0.100",
                "port": 80,
                "authentication": {"realm": "Operations", "users": ["ops"]},
            }
        ]
    }
    refused = await admin.put("/api/v1/config", json=document)
    assert fields(refused)[0]["path"] == "virtual_services[0].authentication.users[0]"
    await admin.post(USERS, json={"name": "ops", "password": "ops-password-1"})
    accepted = await admin.put("/api/v1/config", json=document)
    assert accepted.status_code == 200, accepted.text
    assert (await admin.get(f"{USERS}/ops")).json()["used_by"] == ["ops"]
    in_use = await admin.delete(f"{USERS}/ops")
    assert [f["path"] for f in fields(in_use)] == ["name"]
