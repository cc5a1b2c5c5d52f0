"""One app, two doors (bascule/serve.py ``_Apps``, api/app.py ``door``): the unix socket and the
HTTPS listener serve the same routes, each with what differs between them kept: the socket
trusts its caller as a local administrator and serves no WUI; the HTTPS door authenticates
every request, gates bodies and adds HSTS, and serves the WUI at ``/``."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from bascule.daemon.doors import DaemonServices
from bascule.serve import _Apps


@pytest.fixture
def doors(daemon_services: DaemonServices) -> tuple[FastAPI, FastAPI]:
    """The unix socket's door and the HTTPS listener's, from one factory as ``bascule run``
    asks for them (the socket's first)."""
    apps = _Apps()
    return apps(daemon_services, local=True), apps(daemon_services, local=False)


def client(app: FastAPI, **options: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://bascule", **options
    )


def test_both_doors_serve_the_same_routes(doors: tuple[FastAPI, FastAPI]) -> None:
    local, network = doors
    assert local is not network
    assert local.router is network.router  # FastAPI's routes, validators and serializers
    assert local.state.services is network.state.services
    assert local.state.local is True
    assert network.state.local is False


async def test_the_socket_trusts_its_caller_and_serves_no_wui(
    doors: tuple[FastAPI, FastAPI],
) -> None:
    local, _ = doors
    async with client(local) as socket:
        me = await socket.get("/api/v1/auth/whoami", headers={"X-Bascule-Author": "ops@cli"})
        assert me.status_code == 200, me.text
        assert me.json()["via"] == "local"
        assert me.json()["name"] == "ops@cli"
        assert (await socket.post("/api/v1/virtual_services", json={})).status_code != 401
        page = await socket.get("/")
        assert page.status_code == 404
        assert page.headers["content-type"] == "application/json"
        assert "Strict-Transport-Security" not in page.headers


async def test_the_network_door_authenticates_gates_and_serves_the_wui(
    doors: tuple[FastAPI, FastAPI], tokens: dict[str, str]
) -> None:
    _, network = doors
    async with client(network) as anyone:
        refused = await anyone.get("/api/v1/auth/whoami", headers={"X-Bascule-Author": "ops@cli"})
        assert refused.status_code == 401
        assert refused.headers["Strict-Transport-Security"]
        gated = await anyone.post("/api/v1/virtual_services", json={})
        assert gated.status_code == 401
        assert "nothing of the request body was read" in gated.text  # the gate's answer
        page = await anyone.get("/")
        assert page.status_code == 303
        assert page.headers["location"].startswith("/login")
    headers = {"Authorization": f"Bearer {tokens['admin']}"}
    async with client(network, headers=headers) as admin:
        me = await admin.get("/api/v1/auth/whoami")
        assert me.status_code == 200
        assert me.json()["via"] == "token"
