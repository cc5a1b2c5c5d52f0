"""Statistics pages: the list of services, the graphs page and its JSON series."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from change_requests import by
from wui_client import Browser

from bascule.daemon.service import ConfigService
from bascule.daemon.statistics import Statistics


async def test_statistics_lists_the_virtual_services(
    viewer: Browser,
    web_service: int,
    statistics: Statistics,
    check_html: Callable[[str], None],
) -> None:
    await statistics.sample()
    page = await viewer.client.get("/statistics")
    assert page.status_code == 200
    check_html(page.text)
    assert 'data-vs="web"' in page.text and 'href="/statistics/web"' in page.text


async def test_service_page_has_a_graph_per_metric_and_refreshes(
    viewer: Browser, web_service: int, check_html: Callable[[str], None]
) -> None:
    page = await viewer.client.get("/statistics/web")
    assert page.status_code == 200
    check_html(page.text)
    assert 'data-series-url="/statistics/web/series?window=hour"' in page.text
    assert 'data-refresh-ms="10000"' in page.text
    assert '<script src="/static/statistics.js" defer></script>' in page.text
    assert '<script src="/static/vendor/uPlot.iife.min.js" defer></script>' in page.text
    for chart in ("vs-connections", "vs-bytes", "vs-check", "rs-connections", "rs-check"):
        assert f'data-chart="{chart}"' in page.text
    assert 'data-metrics="requests_per_s"' in page.text  # web is an L7 HTTP service
    day = await viewer.client.get("/statistics/web?window=day")
    assert 'data-series-url="/statistics/web/series?window=day"' in day.text
    assert 'data-refresh-ms="300000"' in day.text


async def test_generic_services_graph_new_connections(
    viewer: Browser, service: ConfigService
) -> None:
    document = {
        "virtual_services": [
            {
                "name": "db",
                "address": "198.18.0.100",
                "port": 5432,
                "type": "generic",
                "real_servers": [{"address": "198.18.0.4", "port": 5432}],
            }
        ]
    }
    await service.apply(document, by("t"))
    page = await viewer.client.get("/statistics/db")
    assert 'data-metrics="requests_per_s"' not in page.text
    assert 'data-chart="rs-rate"' in page.text
    assert 'data-metrics="new_connections_per_s"' in page.text


async def test_series_is_json_of_the_window(
    viewer: Browser, web_service: int, statistics: Statistics
) -> None:
    await statistics.sample()
    await statistics.sample()
    response = await viewer.client.get("/statistics/web/series?window=hour")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    series = response.json()
    assert series["window"] == "hour" and series["step"] == 10.0
    assert len(series["timestamps"]) == 360
    assert len(series["values"]["connections"]) == 360
    assert sorted(series["real_servers"]) == ["198.18.0.4:80", "198.18.0.5:80"]


async def test_unknown_service_or_window(viewer: Browser, web_service: int) -> None:
    assert (await viewer.client.get("/statistics/nope")).status_code == 404
    assert (await viewer.client.get("/statistics/nope/series")).status_code == 404
    assert (await viewer.client.get("/statistics/web?window=year")).status_code == 400
    assert (await viewer.client.get("/statistics/web/series?window=week")).status_code == 400


async def test_series_needs_a_session(anonymous: httpx.AsyncClient, web_service: int) -> None:
    response = await anonymous.get("/statistics/web/series")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
