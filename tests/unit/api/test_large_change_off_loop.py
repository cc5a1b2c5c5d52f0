"""A large change does not hold the event loop (finding 3): while a 10,000-service dry run is
validated, rendered and checked by HAProxy (the real engine's ``check``: render and
``haproxy -c``; nothing is started), ``GET /status`` keeps answering.

Before: validation compared every pair of services on the loop (29 s for 10,000), and the
rendering ran there too; ``status`` waited for all of it (41 s). The test asserts on progress,
not on timings of this machine: status answers several times while the dry run is in flight,
and none of them waits for more than a fraction of the dry run's own time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_apps import api_app
from fastapi import FastAPI

from bascule.api import ApiServices
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.haproxy.engine import HaproxyEngine
from bascule.store.revisions import RevisionStore

HAPROXY = Path("/usr/sbin/haproxy")
SERVICES = 10_000

pytestmark = pytest.mark.skipif(not HAPROXY.exists(), reason=f"HAProxy is not at {HAPROXY}")


def large_document() -> dict[str, Any]:
    return {
        "virtual_services": [
            {
                "name": f"vs-{i:05d}",
                "address": "198.18.0.100",
                "port": 10_000 + i,
                "type": "http",
                "check": {"type": "none"},
                "real_servers": [{"address": f"198.19.{i // 250}.{i % 250 + 1}", "port": 80}],
            }
            for i in range(SERVICES)
        ]
    }


@pytest.fixture
async def client(
    tmp_path: Path, make_api_services: Callable[..., ApiServices]
) -> AsyncIterator[httpx.AsyncClient]:
    engine = HaproxyEngine(
        tmp_path / "haproxy", binary=str(HAPROXY), maxconn=10_000, nbthread=1, peers=False
    )
    with RevisionStore(tmp_path / "bascule.db") as store:
        service = ConfigService(store=store, engines=[engine], vips=NullVipManager())
        app: FastAPI = api_app(make_api_services(service), local=True)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bascule", timeout=300
        ) as opened:
            yield opened


async def test_status_answers_while_a_large_dry_run_is_checked(
    client: httpx.AsyncClient,
) -> None:
    body = json.dumps(large_document()).encode()  # the client's work, before the clock
    started = time.monotonic()
    dry_run = asyncio.create_task(
        client.put(
            "/api/v1/config",
            params={"dry_run": "true"},
            content=body,
            headers={"Content-Type": "application/json"},
        )
    )
    latencies: list[float] = []
    while not dry_run.done():
        asked = time.monotonic()
        status = await client.get("/api/v1/status")
        assert status.status_code == 200
        if not dry_run.done():
            latencies.append(time.monotonic() - asked)
        await asyncio.sleep(0.05)
    took = time.monotonic() - started
    answer = await dry_run
    assert answer.status_code == 200, answer.text[:500]
    assert answer.json()["dry_run"] is True and answer.json()["changed"] is True
    # Progress, not a stopwatch: status kept answering all along, each time in a small
    # share of the dry run's own duration (before, one status waited for all of it).
    assert len(latencies) >= 5, (latencies, took)
    assert max(latencies) < took / 3, (max(latencies), took)
