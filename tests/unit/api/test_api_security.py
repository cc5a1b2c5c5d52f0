"""The HTTPS API's security: refusals are audited, an operator cannot slip a
structural change past the weight rule, audit entries carry no secret, the OpenAPI document
is public but holds no data, an oversized body is refused before it is read."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bascule.api import ApiServices
from bascule.api.limits import MAX_REQUEST_BYTES, RequestSizeLimit
from bascule.daemon.accounts import AccountService

ClientAs = Callable[[str | None], Awaitable[httpx.AsyncClient]]
Document = dict[str, Any]

RS = "/api/v1/virtual-services/web/real-servers/198.18.0.4:80"


@pytest.fixture
async def browser(remote_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=remote_app, client=("192.0.2.10", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="https://bascule") as client:
        yield client


def audit_entries(services: ApiServices, action: str | None = None) -> list[Any]:
    entries, _ = services.audit.page(0, 1000, action=action)
    return entries


async def test_a_role_refusal_is_in_the_audit_log(
    client_as: ClientAs, committed: int, services: ApiServices
) -> None:
    viewer = await client_as("viewer")
    assert (await viewer.post(f"{RS}/drain")).status_code == 403
    [entry] = audit_entries(services, "access.denied")
    assert (entry.actor, entry.role, entry.remote, entry.outcome) == (
        "viewer",
        "viewer",
        "127.0.0.1",
        "refused",
    )
    assert entry.target == f"POST {RS}/drain"
    assert "operate" in entry.detail


async def test_a_csrf_refusal_is_in_the_audit_log(
    browser: httpx.AsyncClient, tokens: dict[str, str], committed: int, services: ApiServices
) -> None:
    login = await browser.post(
        "/api/v1/auth/login", json={"username": "admin", "password": "admin-password-1"}
    )
    assert login.status_code == 200
    assert (await browser.post(f"{RS}/drain")).status_code == 403
    assert (await browser.post("/api/v1/auth/logout")).status_code == 403
    entries = audit_entries(services, "access.denied")
    assert [(e.actor, e.remote, e.target) for e in reversed(entries)] == [
        ("admin", "192.0.2.10", f"POST {RS}/drain"),
        ("admin", "192.0.2.10", "POST /api/v1/auth/logout"),
    ]
    assert services.config.store.head_number() == committed


async def test_logout_is_audited_with_where_it_came_from(
    browser: httpx.AsyncClient, tokens: dict[str, str], services: ApiServices
) -> None:
    login = await browser.post(
        "/api/v1/auth/login", json={"username": "viewer", "password": "viewer-password"}
    )
    csrf = login.json()["csrf_token"]
    assert (await browser.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})).is_success
    [entry] = audit_entries(services, "logout")
    assert (entry.actor, entry.role, entry.remote) == ("viewer", "viewer", "192.0.2.10")


@pytest.mark.parametrize(
    "changes",
    [
        {"weight": 10, "address": "198.18.0.9"},
        {"weight": 10, "port": 8080},
        {"weight": 10, "state": "disabled"},
        {"weight": 10, "backup": True},
        {},
    ],
)
async def test_an_operator_patch_is_the_weight_alone(
    client_as: ClientAs, committed: int, services: ApiServices, changes: Document
) -> None:
    operator = await client_as("operator")
    response = await operator.patch(RS, json=changes)
    assert response.status_code == 403, response.text
    assert services.config.store.head_number() == committed
    assert (await operator.patch(RS, json={"weight": 10})).status_code == 200


async def test_an_operator_cannot_apply_a_document_even_of_weights_only(
    client_as: ClientAs, committed: int, services: ApiServices
) -> None:
    operator = await client_as("operator")
    document = (await operator.get("/api/v1/config")).json()["document"]
    for server in document["virtual_services"][0]["real_servers"]:
        server["weight"] = 7
    for method, path in (("PUT", "/api/v1/config"), ("POST", "/api/v1/config/plan")):
        response = await operator.request(method, path, json=document)
        assert response.status_code == 403, (path, response.text)
    assert services.config.store.head_number() == committed


async def test_no_secret_reaches_the_audit_log(
    client_as: ClientAs, services: ApiServices, accounts: AccountService
) -> None:
    admin = await client_as("admin")
    password = "a-password-nobody-may-read"
    created = await admin.post(
        "/api/v1/users", json={"name": "carol", "role": "operator", "password": password}
    )
    assert created.status_code == 201
    changed = await admin.patch("/api/v1/users/carol", json={"password": password + "-2"})
    assert changed.status_code == 200
    token = await admin.post("/api/v1/tokens", json={"name": "ci", "role": "viewer"})
    secret = token.json()["secret"]
    failed = await admin.post(
        "/api/v1/auth/login", json={"username": "carol", "password": "wrong-" + password}
    )
    assert failed.status_code == 401
    everything = json.dumps(
        [entry.__dict__ for entry in audit_entries(services)], default=str, ensure_ascii=False
    )
    for secret_text in (password, secret, secret.split("_", 2)[2]):
        assert secret_text not in everything
    assert "user.create" in everything and "token.create" in everything


async def test_the_openapi_document_is_public_but_holds_no_data(
    remote_app: FastAPI, committed: int, tokens: dict[str, str]
) -> None:
    transport = httpx.ASGITransport(app=remote_app)
    async with httpx.AsyncClient(transport=transport, base_url="https://bascule") as anonymous:
        schema = await anonymous.get("/api/v1/openapi.json")
    assert schema.status_code == 200
    text = schema.text
    for data in ("198.18.0.100", "198.18.0.4", "viewer token", *tokens.values()):
        assert data not in text


async def test_an_oversized_body_is_refused_before_anyone_reads_it(
    remote_app: FastAPI, tokens: dict[str, str]
) -> None:
    chunks_read = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal chunks_read
        yield b'{"virtual_services": "'
        for _ in range(100):
            chunks_read += 1
            yield b"x" * 1024 * 1024
        yield b'"}'

    transport = httpx.ASGITransport(app=remote_app)
    # An administrator's, who may send the most (anyone else is refused sooner: test_gate.py).
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="https://bascule", headers=admin
    ) as anonymous:
        announced = await anonymous.put(
            "/api/v1/config",
            content=b"x" * (MAX_REQUEST_BYTES + 1),
            headers={"Content-Type": "application/json"},
        )
        chunked = await anonymous.put(
            "/api/v1/config", content=endless(), headers={"Content-Type": "application/json"}
        )
    for response in (announced, chunked):
        assert response.status_code == 413
        assert response.json()["error"]["kind"] == "bad_request"
    assert chunks_read <= MAX_REQUEST_BYTES // (1024 * 1024) + 1  # not the 100 MiB sent


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"abc", b"def", b"gh"):
            yield part

    limited = RequestSizeLimit(echo, max_bytes=8)
    transport = httpx.ASGITransport(app=limited)
    async with httpx.AsyncClient(transport=transport, base_url="https://bascule") as client:
        assert (await client.post("/", content=b"12345678")).text == "12345678"
        assert (await client.post("/", content=b"123456789")).status_code == 413
        assert (await client.post("/", content=chunks())).text == "abcdefgh"
        assert (await client.get("/")).status_code == 200


async def test_authenticated_requests_pass_the_limit(client_as: ClientAs, committed: int) -> None:
    admin = await client_as("admin")
    document = (await admin.get("/api/v1/config")).json()["document"]
    assert (await admin.put("/api/v1/config", json=document)).status_code == 200
