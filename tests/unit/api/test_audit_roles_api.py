"""The audit entry of a change made through the API carries the caller's role: the token's on
the HTTPS app, ``admin`` for the trusted caller of the unix socket."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bascule.api import ApiServices

ClientAs = Callable[[str | None], Awaitable[httpx.AsyncClient]]  # the conftest's client_as

RS = "/api/v1/virtual-services/web/real-servers/198.18.0.4:80"


def newest(services: ApiServices) -> tuple[str, str, str, str, int | None]:
    [entry], _ = services.audit.page(0, 1)
    return entry.action, entry.actor, entry.role, entry.remote, entry.revision


async def test_an_operator_token_change_records_operator(
    client_as: ClientAs, services: ApiServices, committed: int
) -> None:
    operator = await client_as("operator")
    response = await operator.post(f"{RS}/drain")
    assert response.status_code == 200, response.text
    action, actor, role, _, revision = newest(services)
    assert (action, actor, role, revision) == ("real_server.state", "operator", "operator", 2)


async def test_a_unix_socket_change_records_admin(
    client: httpx.AsyncClient,
    services: ApiServices,
    make_document: Callable[..., dict[str, Any]],
) -> None:
    response = await client.put(
        "/api/v1/config", json=make_document(), headers={"X-Bascule-Author": "alice@cli"}
    )
    assert response.status_code == 200, response.text
    assert newest(services) == ("config.apply", "alice@cli", "admin", "unix socket", 1)
