"""Every failure leaves the API in one JSON shape, with a status that says who is at fault."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from api_apps import api_app
from fastapi import FastAPI

from bascule.api import ApiServices
from bascule.daemon.service import ConfigService
from bascule.store.revisions import RevisionStore

ERROR_KEYS = {"kind", "message", "fields", "current_revision"}


async def test_an_unknown_path(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/load-balancers")
    assert response.status_code == 404
    error = response.json()["error"]
    assert set(error) == ERROR_KEYS
    assert error["kind"] == "not_found"
    assert "/api/v1/load-balancers" in error["message"]


async def test_a_method_not_allowed(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/config")
    assert response.status_code == 405
    assert "allow" in response.headers
    assert response.json()["error"]["kind"] == "bad_request"


async def test_a_store_failure_is_a_server_error(
    client: httpx.AsyncClient, store: RevisionStore
) -> None:
    store.close()
    response = await client.get("/api/v1/config")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["kind"] == "store_error"
    assert "closed" in error["message"]


async def test_an_unexpected_error_keeps_the_shape(
    service: ConfigService, make_api_services: Callable[..., ApiServices]
) -> None:
    async def broken_system() -> dict[str, Any]:
        raise RuntimeError("the probe broke")

    app: FastAPI = api_app(make_api_services(service, broken_system))
    # Starlette re-raises after answering, for the server to log; the client still gets JSON.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://bascule") as client:
        response = await client.get("/api/v1/system")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["kind"] == "internal_error"
    assert "the probe broke" in error["message"]


async def test_an_author_that_is_too_long(client: httpx.AsyncClient) -> None:
    response = await client.put(
        "/api/v1/config", json={"virtual_services": []}, headers={"X-Bascule-Author": "a" * 200}
    )
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["path"] == "header.x-bascule-author"
