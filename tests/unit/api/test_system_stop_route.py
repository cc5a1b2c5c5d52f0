"""POST /api/v1/system/stop: the daemon is asked to stop (with or without its data plane),
after the answer, and the audit log says who asked."""

from __future__ import annotations

import dataclasses

import httpx

from bascule.api import ApiServices


async def test_stop_asks_the_daemon_after_answering(
    client: httpx.AsyncClient, services: ApiServices
) -> None:
    recorder = services.stop  # the conftest's StopRecorder
    assert recorder is not None
    response = await client.post("/api/v1/system/stop")
    assert response.status_code == 202
    assert response.json() == {"stopping": True, "data_plane": False}
    response = await client.post("/api/v1/system/stop", params={"data_plane": "true"})
    assert response.json() == {"stopping": True, "data_plane": True}
    assert recorder.requests == [False, True]  # type: ignore[attr-defined]
    entries, _ = services.audit.page(0, 10, action="daemon.stop")
    assert [(e.action, e.detail) for e in entries[:2]] == [
        ("daemon.stop", "with the data plane"),
        ("daemon.stop", "daemon"),
    ]


async def test_an_app_without_a_daemon_cannot_stop(services: ApiServices) -> None:
    from api_apps import api_app

    app = api_app(dataclasses.replace(services, stop=None), local=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bascule") as client:
        response = await client.post("/api/v1/system/stop")
    assert response.status_code == 422
    assert response.json()["error"]["kind"] == "not_applicable"
