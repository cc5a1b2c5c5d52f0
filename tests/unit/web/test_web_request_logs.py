"""The Request logs page: HAProxy's lines as the daemon keeps them, newest first, with filters
(service, text, since, how many), for every role; a line is text, never markup."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from wui_client import BASE_URL, Browser

from bascule.daemon.request_logs import RequestLogFile
from bascule.web import WebServices, create_wui


def line(client: str, when: datetime, service: str, status: int, path: str) -> str:
    date = when.strftime("%d/%b/%Y:%H:%M:%S.000")
    return (
        f"{client}:50000 [{date}] {service} {service}/198.18.0.11:80 0/0/1/2/3 {status} 120 "
        f'- - ---- 1/1/0/0/0 0/0 "GET {path} HTTP/1.1"'
    )


@pytest.fixture
def wui_with_request_logs(wui: FastAPI, tmp_path: Path) -> FastAPI:
    services: WebServices = wui.state.web_services
    logs = RequestLogFile(tmp_path / "requests.log", max_bytes=1 << 20, keep=2)
    now = datetime.now().astimezone()
    logs.write(line("198.18.0.10", now - timedelta(hours=2), "web", 200, "/old"))
    logs.write(line("198.18.0.10", now, "web", 200, "/echo?n=1"))
    logs.write(line("198.18.0.12", now, "web", 503, "/<script>alert(1)</script>"))
    logs.write(line("198.18.0.10", now, "shop", 404, "/missing"))
    return create_wui(
        WebServices(
            config=services.config,
            accounts=services.accounts,
            audit=services.audit,
            statistics=services.statistics,
            system=services.system,
            request_logs=logs,
        )
    )


async def get(app: FastAPI, browser: Browser, url: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=("198.18.0.9", 50000))
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE_URL, cookies=browser.client.cookies
    ) as client:
        return await client.get(url)


async def test_every_role_reads_the_lines_newest_first(
    wui_with_request_logs: FastAPI, viewer: Browser, check_html: Callable[[str], None]
) -> None:
    page = await get(wui_with_request_logs, viewer, "/request-logs")
    assert page.status_code == 200
    check_html(page.text)
    assert page.text.index("/missing") < page.text.index("/echo?n=1") < page.text.index("/old")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text  # escaped, never markup
    assert "<script>alert(1)" not in page.text
    assert 'data-nav="request_logs"' in page.text


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ("?vs=shop", ["/missing"], ["/echo?n=1", "/old"]),
        ("?text=+503+", ["alert(1)"], ["/echo?n=1", "/missing"]),
        ("?text=198.18.0.12", ["alert(1)"], ["/missing"]),
        ("?since=60", ["/echo?n=1", "/missing"], ["/old"]),
        ("?vs=web&limit=50", ["/echo?n=1", "/old"], ["/missing"]),
        # the form sends every field, the empty ones too
        ("?vs=shop&text=&since=&limit=200", ["/missing"], ["/echo?n=1", "/old"]),
    ],
)
async def test_filters(
    wui_with_request_logs: FastAPI,
    viewer: Browser,
    query: str,
    shown: list[str],
    hidden: list[str],
) -> None:
    page = await get(wui_with_request_logs, viewer, f"/request-logs{query}")
    assert page.status_code == 200
    for text in shown:
        assert text in page.text, text
    for text in hidden:
        assert text not in page.text, text


async def test_bad_filters_are_refused_and_no_logs_is_said(
    wui_with_request_logs: FastAPI, viewer: Browser
) -> None:
    for query in ("?limit=0", "?limit=100000", "?since=0", "?since=x", f"?vs={'a' * 64}"):
        page = await get(wui_with_request_logs, viewer, f"/request-logs{query}")
        assert page.status_code in (400, 422), query
    page = await viewer.client.get("/request-logs")  # the default WUI has no request logs
    assert page.status_code == 200
    assert "This daemon keeps no request logs." in page.text
