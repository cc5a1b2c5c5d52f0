"""Every WUI page renders for an admin, well-formed, with the contract's hooks."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from change_requests import by
from wui_client import Browser, CheckedFakeEngine

from bascule.daemon.service import ConfigService
from bascule.daemon.statistics import Statistics
from bascule.web.templating import rate, sparkline

PAGES = [
    "/",
    "/virtual-services/new",
    "/virtual-services/web",
    "/virtual-services/web/real-servers/new",
    "/virtual-services/web/real-servers/198.18.0.4:80",
    "/preview",
    "/statistics",
    "/history",
    "/users",
    "/tokens",
    "/access-lists",
    "/backup",
    "/ha",
    "/system",
]


@pytest.mark.parametrize("url", PAGES)
async def test_page_renders_for_admin(
    admin: Browser, web_service: int, url: str, check_html: Callable[[str], None]
) -> None:
    response = await admin.client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    check_html(response.text)
    assert 'hx-headers=\'{"X-CSRF-Token": "' + admin.csrf + "\"}'" in response.text
    for nav in ("/statistics", "/history", "/users", "/tokens", "/backup", "/ha", "/system"):
        assert f'href="{nav}"' in response.text


async def test_fragments_render(
    admin: Browser, web_service: int, check_html: Callable[[str], None]
) -> None:
    for url in ("/dashboard/live", "/virtual-services/web/live"):
        response = await admin.client.get(url, headers={"HX-Request": "true"})
        assert response.status_code == 200
        check_html(response.text)
        assert 'hx-trigger="every 2s"' in response.text
        assert "<html" not in response.text


async def test_static_files_are_served(admin: Browser) -> None:
    css = await admin.client.get("/static/bascule.css")
    assert css.status_code == 200
    assert ".status-apply_error" in css.text


async def test_unknown_service_is_a_404_page(admin: Browser) -> None:
    response = await admin.client.get("/virtual-services/nope")
    assert response.status_code == 404
    assert "there is no virtual service named" in response.text


async def test_form_hooks(admin: Browser, web_service: int) -> None:
    new = (await admin.client.get("/virtual-services/new")).text
    for name in ("address", "port", "protocol", "type", "name", "check.interval"):
        assert f'name="{name}" id="field-{name}"' in new
    assert '<option value="auto" selected>' in new
    assert re.search(r'<details class="more" id="more-options">', new)  # collapsed
    server = (await admin.client.get("/virtual-services/web/real-servers/new")).text
    for name in ("address", "port", "forwarding", "weight"):
        assert f'name="{name}" id="field-{name}"' in server


async def test_dashboard_rows_reflect_status(
    admin: Browser, web_service: int, engine: CheckedFakeEngine, statistics: Statistics
) -> None:
    await statistics.sample()
    live = await admin.client.get("/dashboard/live", headers={"HX-Request": "true"})
    assert '<tr data-vs="web" data-status="up">' in live.text
    assert '<td class="num" data-field="servers">2/2</td>' in live.text
    assert '<svg class="sparkline"' in live.text
    # one real server goes down: the row turns degraded, the server's row down
    engine.set_health("web", "198.18.0.4:80", "down")
    live = await admin.client.get("/dashboard/live", headers={"HX-Request": "true"})
    assert '<tr data-vs="web" data-status="degraded">' in live.text
    assert '<td class="num" data-field="servers">1/2</td>' in live.text
    page = await admin.client.get("/virtual-services/web/live", headers={"HX-Request": "true"})
    assert '<tr data-rs="198.18.0.4:80" data-status="down" data-state="enabled">' in page.text
    assert '<tr data-rs="198.18.0.5:80" data-status="up" data-state="enabled">' in page.text


async def test_apply_error_shows_on_dashboard(
    admin: Browser, web_service: int, engine: CheckedFakeEngine
) -> None:
    engine.fail_apply_with = "boom"
    await admin.post("/virtual-services/web/real-servers/198.18.0.4:80", {"port": "81"})
    await admin.post("/preview/apply")
    live = await admin.client.get("/dashboard/live", headers={"HX-Request": "true"})
    assert 'data-status="apply_error"' in live.text
    assert 'id="apply-error"' in live.text


def test_sparkline_and_rate_filters() -> None:
    svg = str(sparkline([0, 1, 2, 4]))
    assert svg.startswith('<svg class="sparkline"') and "polyline" in svg
    assert "nan" not in str(sparkline([float("nan"), 1.0]))
    assert str(sparkline([])).count(",") == 2
    assert [rate(None), rate(0), rate(3.25), rate(41.6), rate(1234)] == [
        "\u2013",
        "0",
        "3.2",
        "42",
        "1.2k",
    ]


async def test_service_page_shows_rules_and_sub_services(
    admin: Browser, service: ConfigService, check_html: Callable[[str], None]
) -> None:
    site = {
        "name": "site",
        "address": "198.18.0.100",
        "port": 80,
        "real_servers": [{"address": "198.18.0.4", "port": 80}],
        "sub_services": [{"name": "api", "real_servers": [{"address": "198.18.0.5", "port": 80}]}],
        "rules": [
            {"name": "to-api", "match": {"path_prefix": "/api/<b>"}, "action": {"use": "api"}},
            {
                "name": "not-www",
                "match": {"host": "www.example.com", "negate": True},
                "action": {"redirect": "/", "code": 301},
            },
        ],
    }
    await service.apply({"virtual_services": [site]}, by("test"))
    page = await admin.client.get("/virtual-services/site")
    assert page.status_code == 200, page.text
    check_html(page.text)
    assert '<tr data-rule="to-api">' in page.text
    assert "path_prefix=/api/&lt;b&gt;" in page.text  # escaped, like every value
    assert "not (host=www.example.com)" in page.text
    assert 'data-pool="site/api"' in page.text
    assert '<tr data-rs="198.18.0.5:80"' in page.text
