"""The System page: version, engines and their state, the listener, recent log lines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from wui_client import BASE_URL, Browser, csrf_of

import bascule
from bascule.web import WebServices, create_wui
from bascule.web.pages.system import engine_rows


def test_engine_states() -> None:
    rows = engine_rows(
        {
            "haproxy": {"version": "2.6.12", "running": True, "worker_pids": [7]},
            "nftables": {"version": "1.0.6", "running": False, "idle": True, "tables": []},
            "other": {"running": False},
        }
    )
    assert [(r.name, r.state) for r in rows] == [
        ("haproxy", "running"),
        ("nftables", "idle"),
        ("other", "stopped"),
    ]
    assert rows[0].details == [("worker_pids", "[7]")]
    assert rows[1].details == []


async def test_system_page_shows_versions_and_engines(
    viewer: Browser, check_html: Callable[[str], None]
) -> None:
    page = await viewer.client.get("/system")
    assert page.status_code == 200
    check_html(page.text)
    assert f'data-fact="version">{bascule.__version__}<' in page.text
    assert 'data-engine="fake" data-state="running"' in page.text
    assert "Log lines are shown to administrators." in page.text


@pytest.fixture
def wui_with_logs(wui: FastAPI) -> FastAPI:
    services: WebServices = wui.state.web_services

    async def system() -> dict[str, Any]:
        return {
            "engines": {"haproxy": {"version": "2.6.12", "running": True}},
            "data_dir": "/var/lib/bascule",
            "pid": 42,
            "listen": "127.0.0.1:8443",
            "tls": {"subject": "CN=bascule", "not_after": "2035-01-01T00:00:00+00:00"},
        }

    def logs(limit: int) -> list[str]:
        return [f'ts=now level=info msg="line {i}"' for i in range(3)][-limit:]

    return create_wui(
        WebServices(
            config=services.config,
            accounts=services.accounts,
            audit=services.audit,
            statistics=services.statistics,
            system=system,
            logs=logs,
        )
    )


async def test_administrators_see_the_listener_certificate_and_logs(
    wui_with_logs: FastAPI, admin: Browser, check_html: Callable[[str], None]
) -> None:
    transport = httpx.ASGITransport(app=wui_with_logs, client=("198.18.0.9", 50000))
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE_URL, cookies=admin.client.cookies
    ) as client:
        page = await client.get("/system")
    assert page.status_code == 200
    check_html(page.text)
    csrf_of(page.text)
    assert 'data-fact="listen">https://127.0.0.1:8443<' in page.text
    assert 'data-fact="data_dir">/var/lib/bascule<' in page.text
    assert 'data-tls="subject">CN=bascule<' in page.text
    assert "msg=&#34;line 2&#34;" in page.text
