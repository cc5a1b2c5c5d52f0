"""/api/v1/status and /api/v1/system, and the OpenAPI description."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

import bascule
from bascule.daemon.service import ConfigService


def shape(value: Any) -> Any:
    """The keys of a JSON tree, recursively, with the values left out."""
    if isinstance(value, dict):
        return {key: shape(child) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [shape(child) for child in value]
    return None


async def test_status_before_any_revision(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/status")
    assert response.status_code == 200
    body = response.json()
    assert (body["revision"], body["applied_revision"], body["apply_ok"]) == (None, None, True)
    assert body["virtual_services"] == []


async def test_status_is_the_service_report(
    client: httpx.AsyncClient, service: ConfigService, committed: int
) -> None:
    body = (await client.get("/api/v1/status")).json()
    report = dataclasses.asdict(await service.status())
    assert shape(body) == shape(report)  # no field of the report is lost on the way
    assert body["revision"] == body["applied_revision"] == committed
    [web] = body["virtual_services"]
    assert web["name"] == "web"
    assert [rs["key"] for rs in web["real_servers"]] == ["198.18.0.4:80", "198.18.0.5:80"]
    assert [rs["engine_weight"] for rs in web["real_servers"]] == [1, 1]


async def test_status_serves_the_recent_reading_unless_fresh_is_asked(
    client: httpx.AsyncClient, service: ConfigService, committed: int, monkeypatch: Any
) -> None:
    called: list[str] = []
    status = service.status

    async def counted_status() -> Any:
        called.append("fresh")
        return await status()

    async def counted_recent() -> Any:
        called.append("recent")
        return await status()  # (the real one would read too: no reading yet)

    monkeypatch.setattr(service, "status", counted_status)
    monkeypatch.setattr(service, "recent_status", counted_recent)
    assert (await client.get("/api/v1/status")).status_code == 200
    assert called == ["recent"]
    fresh = await client.get("/api/v1/status", params={"fresh": "true"})
    assert fresh.status_code == 200 and fresh.json()["revision"] == committed
    assert called == ["recent", "fresh"]  # a reading now, not the recent one


async def test_system_adds_the_version(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/system")
    assert response.status_code == 200
    assert response.json() == {
        "engines": {"haproxy": {"version": "2.6.12", "running": True}},
        "version": bascule.__version__,
    }


async def test_openapi_and_docs_are_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {
        "/api/v1/config",
        "/api/v1/config/plan",
        "/api/v1/virtual-services",
        "/api/v1/virtual-services/{name}",
        "/api/v1/virtual-services/{name}/real-servers",
        "/api/v1/virtual-services/{name}/real-servers/{key}",
        "/api/v1/virtual-services/{name}/real-servers/{key}/{verb}",  # enable, disable, drain
        "/api/v1/virtual-services/{name}/sub-services/{sub}/real-servers/{key}/{verb}",
        "/api/v1/revisions",
        "/api/v1/revisions/{number}",
        "/api/v1/revisions/{a}/diff/{b}",
        "/api/v1/revisions/{number}/rollback",
        "/api/v1/status",
        "/api/v1/system",
    } <= set(paths)
    verb = next(
        parameter
        for parameter in paths["/api/v1/virtual-services/{name}/real-servers/{key}/{verb}"]["post"][
            "parameters"
        ]
        if parameter["name"] == "verb"
    )
    schema = response.json()["components"]["schemas"][verb["schema"]["$ref"].split("/")[-1]]
    assert schema["enum"] == ["enable", "disable", "drain"]
    error = paths["/api/v1/config"]["put"]["responses"]["409"]
    assert error["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOut"
    }
    # The interactive page needs Swagger UI's files: test_api_docs_page.py
