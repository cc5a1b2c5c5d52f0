"""The interactive API documentation is served by the daemon itself, never from a CDN."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from bascule.api import ApiServices, create_app
from bascule.daemon.service import ConfigService


async def _get(app: object, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://bascule") as client:
        return await client.get(path)


async def test_the_docs_page_loads_swagger_ui_from_the_daemon(
    tmp_path: Path, service: ConfigService, make_api_services: Callable[..., ApiServices]
) -> None:
    (tmp_path / "swagger-ui-bundle.js").write_text("/* swagger */")
    (tmp_path / "swagger-ui.css").write_text("/* css */")
    app = create_app(make_api_services(service), local=False, docs_assets=tmp_path)

    page = await _get(app, "/api/v1/docs")
    assert page.status_code == 200
    assert "/api/v1/docs/assets/swagger-ui-bundle.js" in page.text
    assert "/api/v1/openapi.json" in page.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    script = await _get(app, "/api/v1/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and script.text == "/* swagger */"


async def test_without_the_assets_there_is_no_docs_page_rather_than_a_cdn_one(
    tmp_path: Path, service: ConfigService, make_api_services: Callable[..., ApiServices]
) -> None:
    app = create_app(make_api_services(service), local=False, docs_assets=tmp_path)
    assert (await _get(app, "/api/v1/docs")).status_code == 404
    assert (await _get(app, "/api/v1/openapi.json")).status_code == 200
