"""/api/v1/statistics: the sampled windows of a virtual service, and the summary of all."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bascule.daemon.results import StatusReport
from bascule.daemon.service import ConfigService
from bascule.daemon.statistics import Statistics

STATS = "/api/v1/statistics/virtual-services"


def statistics_of(app: FastAPI) -> Statistics:
    statistics: Statistics = app.state.services.statistics
    return statistics


def with_requests(report: StatusReport, total: int) -> StatusReport:
    """The report with ``total`` connections and twice as many requests on every service."""
    services = tuple(
        replace(vs, total_connections=total, total_requests=2 * total, current_connections=3)
        for vs in report.virtual_services
    )
    return replace(report, virtual_services=services)


@pytest.fixture
async def sampled(app: FastAPI, service: ConfigService, committed: int) -> Statistics:
    """Three samples of ``web``, 10 s apart, ending now: 1 connection/s, 2 requests/s."""
    statistics = statistics_of(app)
    report = await service.status()
    now = time.time()
    for step, total in enumerate((100, 110, 120)):
        statistics.record(with_requests(report, total), now - 20 + 10 * step)
    return statistics


async def test_the_hour_window_of_a_service(client: httpx.AsyncClient, sampled: Statistics) -> None:
    response = await client.get(f"{STATS}/web")
    assert response.status_code == 200
    body = response.json()
    assert (body["virtual_service"], body["window"], body["step"]) == ("web", "hour", 10.0)
    assert body["main"] == "requests_per_s"
    assert len(body["timestamps"]) == 360
    assert len(body["values"]["connections"]) == 360
    requests = [v for v in body["values"]["requests_per_s"] if v is not None]
    assert requests == [2.0, 2.0]
    assert sorted(body["real_servers"]) == ["198.18.0.4:80", "198.18.0.5:80"]
    assert "check_duration_ms" in body["real_servers"]["198.18.0.4:80"]


async def test_the_day_window(client: httpx.AsyncClient, sampled: Statistics) -> None:
    body = (await client.get(f"{STATS}/web", params={"window": "day"})).json()
    assert (body["window"], body["step"], len(body["timestamps"])) == ("day", 300.0, 288)
    assert [v for v in body["values"]["connections"] if v is not None] == [3.0] or (
        # the three samples may straddle a 5-minute boundary
        [v for v in body["values"]["connections"] if v is not None] == [3.0, 3.0]
    )


async def test_a_service_not_sampled_yet_has_empty_series(
    client: httpx.AsyncClient, committed: int
) -> None:
    body = (await client.get(f"{STATS}/web")).json()
    assert len(body["timestamps"]) == 360
    assert (body["values"], body["real_servers"]) == ({}, {})


async def test_an_unknown_service_is_not_found(client: httpx.AsyncClient, committed: int) -> None:
    response = await client.get(f"{STATS}/nope")
    assert response.status_code == 404
    assert response.json()["error"]["kind"] == "not_found"


async def test_an_unknown_window_is_a_field_error(
    client: httpx.AsyncClient, committed: int
) -> None:
    response = await client.get(f"{STATS}/web", params={"window": "week"})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["path"] == "query.window"


async def test_the_summary_lists_every_service_with_its_sparkline(
    client: httpx.AsyncClient, sampled: Statistics
) -> None:
    body = (await client.get(STATS)).json()
    assert (body["revision"], body["total"], body["next_offset"]) == (1, 1, None)
    assert body["interval"] == sampled.interval
    [web] = body["items"]
    assert web["name"] == "web"
    assert web["main"] == "requests_per_s"
    assert web["sparkline"] == [2.0, 2.0]
    assert web["latest"]["connections"] == 3.0


async def test_the_summary_pages(client: httpx.AsyncClient, committed: int) -> None:
    body = (await client.get(STATS, params={"limit": 1, "offset": 1})).json()
    assert (body["items"], body["total"]) == ([], 1)
    empty = (await client.get(STATS, params={"limit": 1})).json()["items"][0]
    assert (empty["latest"], empty["sparkline"]) == ({}, [])


async def test_statistics_need_read(client_as: Any, committed: int) -> None:
    for path in (STATS, f"{STATS}/web"):
        assert (await (await client_as(None)).get(path)).status_code == 401
        assert (await (await client_as("viewer")).get(path)).status_code == 200
