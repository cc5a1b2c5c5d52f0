"""/virtual-services/{name}/persistence through the service layer, on the FakeEngine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from bascule.engines.base import FakeEngine, PersistenceEntry

URL = "/api/v1/virtual-services/{}/persistence"


async def test_show_and_clear(
    client: httpx.AsyncClient, engine: FakeEngine, make_service: Callable[..., dict[str, Any]]
) -> None:
    response = await client.put("/api/v1/config", json={"virtual_services": [make_service()]})
    assert response.status_code == 200, response.text
    engine.persisted["web"] = [
        PersistenceEntry(
            table="primary", key="198.18.0.10", real_server="198.18.0.4:80", expires_in_s=59.5
        )
    ]

    shown = await client.get(URL.format("web"))
    assert shown.status_code == 200
    assert shown.json() == {
        "service": "web",
        "entries": [
            {
                "table": "primary",
                "key": "198.18.0.10",
                "real_server": "198.18.0.4:80",
                "expires_in_s": 59.5,
            }
        ],
    }
    cleared = await client.delete(URL.format("web"))
    assert cleared.json() == {"service": "web", "cleared": 1}
    assert (await client.get(URL.format("web"))).json()["entries"] == []


async def test_unknown_service_is_404(client: httpx.AsyncClient) -> None:
    for method in ("GET", "DELETE"):
        response = await client.request(method, URL.format("nope"))
        assert response.status_code == 404
        assert response.json()["error"]["message"] == "there is no virtual service named 'nope'"
