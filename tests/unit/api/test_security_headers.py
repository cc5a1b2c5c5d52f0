"""Security headers on every answer (finding 8): the API's JSON, its errors, ``/metrics`` and
the Swagger page carry ``Cache-Control: no-store``, ``nosniff`` and frame protection, like the
WUI's pages; the HTTPS listener adds HSTS to all of them (the composed app, as ``bascule run``
serves it); static files stay cacheable."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from bascule.api import ApiServices
from bascule.daemon.doors import DaemonServices
from bascule.serve import _Apps


@pytest.fixture
def composed(daemon_services: DaemonServices) -> FastAPI:
    """The HTTPS listener's app as the composition root builds it (API + WUI)."""
    app: FastAPI = _Apps()(daemon_services, local=False)
    return app


@pytest.fixture
async def admin(composed: FastAPI, tokens: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=composed)
    headers = {"Authorization": f"Bearer {tokens['admin']}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="https://bascule", headers=headers
    ) as client:
        yield client


def assert_protected(response: httpx.Response, *, hsts: bool = True) -> None:
    headers = response.headers
    assert headers["Cache-Control"] == "no-store", response.url
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert ("Strict-Transport-Security" in headers) is hsts
    if hsts:
        assert headers["Strict-Transport-Security"].startswith("max-age=")


async def test_every_api_answer_is_protected(admin: httpx.AsyncClient, committed: int) -> None:
    for path in ("/api/v1/status", "/api/v1/config", "/metrics", "/api/v1/openapi.json"):
        response = await admin.get(path)
        assert response.status_code == 200, path
        assert_protected(response)
    assert (
        (await admin.get("/api/v1/status"))
        .headers["Content-Security-Policy"]
        .startswith("default-src 'none'")
    )
    for error in (
        await admin.get("/api/v1/virtual-services/nope"),
        await admin.get("/api/v1/status", headers={"Authorization": "Bearer bad"}),
    ):
        assert error.status_code in {401, 404}
        assert_protected(error)


async def test_the_wui_gets_hsts_too(admin: httpx.AsyncClient) -> None:
    page = await admin.get("/login")
    assert page.status_code == 200
    assert_protected(page)
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]  # the WUI's own


async def test_the_unix_socket_app_has_no_hsts(client: httpx.AsyncClient) -> None:
    assert_protected(await client.get("/api/v1/status"), hsts=False)


async def test_the_swagger_page_cannot_be_framed_and_runs_only_its_own_script(
    tmp_path: Path, services: ApiServices
) -> None:
    from bascule.api import create_app

    (tmp_path / "swagger-ui-bundle.js").write_text("/* swagger */")
    (tmp_path / "swagger-ui.css").write_text("/* css */")
    app = create_app(services, local=False, docs_assets=tmp_path)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://bascule") as anyone:
        page = await anyone.get("/api/v1/docs")
        asset = await anyone.get("/api/v1/docs/assets/swagger-ui.css")
    assert_protected(page)
    policy = page.headers["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]*)", policy)
    assert script_src is not None and "'unsafe-inline'" not in script_src[1]
    assert re.search(r"'sha256-[A-Za-z0-9+/=]{44}'", script_src[1])
    assert "Cache-Control" not in asset.headers  # a static file: cacheable
    assert asset.headers["X-Content-Type-Options"] == "nosniff"
