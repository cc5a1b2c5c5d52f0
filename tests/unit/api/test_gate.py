"""The HTTPS app's gate (finding 3): a request with a body is authenticated from its headers
before a byte of the body is read, and its body is bounded by what the caller may do."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from bascule.api import ApiServices
from bascule.api.limits import PUBLIC_REQUEST_BYTES, SMALL_REQUEST_BYTES

ClientAs = Callable[[str | None], Awaitable[httpx.AsyncClient]]
MIB = 1024 * 1024


class Body:
    """A 16 MiB JSON document sent in 1 MiB chunks, counting the chunks the server pulled."""

    def __init__(self, mebibytes: int = 16) -> None:
        self.mebibytes = mebibytes
        self.read = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        yield b'{"virtual_services": ['
        for index in range(self.mebibytes):
            self.read += 1
            yield (b'{"name": "x"},' * (MIB // 14))[: MIB - 1] + (b"," if index else b" ")
        yield b"]}"


def client(app: FastAPI, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    return httpx.AsyncClient(transport=transport, base_url="https://bascule", headers=headers)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer bsc_0123456789abcdef_not-a-secret"},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"Cookie": "bascule_session=forged"},
    ],
)
async def test_no_credentials_no_body_read(
    remote_app: FastAPI, tokens: dict[str, str], headers: dict[str, str]
) -> None:
    for length in (True, False):  # announced by Content-Length, or chunked
        body = Body()
        async with client(remote_app, headers) as anonymous:
            if length:
                content: bytes | AsyncIterator[bytes] = b"x" * (16 * MIB)
                body.read = -1  # httpx holds it already; what counts is the answer
            else:
                content = body.chunks()
            response = await anonymous.put(
                "/api/v1/config", content=content, headers={"Content-Type": "application/json"}
            )
        assert response.status_code == 401, response.text
        assert "nothing of the request body was read" in response.json()["error"]["message"]
        assert response.headers["Connection"] == "close"
        assert body.read <= 0


async def test_a_wui_form_without_a_session_is_not_read(remote_app: FastAPI) -> None:
    body = Body()
    async with client(remote_app) as anonymous:
        response = await anonymous.post(
            "/virtual-services",
            content=body.chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert body.read == 0


async def test_a_viewer_may_not_send_megabytes(
    remote_app: FastAPI, tokens: dict[str, str], services: ApiServices
) -> None:
    for role in ("viewer", "operator"):
        body = Body()
        async with client(remote_app, {"Authorization": f"Bearer {tokens[role]}"}) as caller:
            response = await caller.put(
                "/api/v1/config",
                content=body.chunks(),
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 413
            assert body.read <= SMALL_REQUEST_BYTES // MIB + 1
            # what they may do still fits
            small = await caller.patch(
                "/api/v1/users/" + role, json={"password": "x" * 900, "current_password": "y"}
            )
            assert small.status_code == 422


async def test_an_administrator_may(
    remote_app: FastAPI, tokens: dict[str, str], services: ApiServices
) -> None:
    async with client(remote_app, {"Authorization": f"Bearer {tokens['admin']}"}) as admin:
        document = {"virtual_services": []}
        response = await admin.put("/api/v1/config", json=document)
        assert response.status_code == 200


async def test_a_login_is_small(remote_app: FastAPI, tokens: dict[str, str]) -> None:
    async with client(remote_app) as anonymous:
        big = await anonymous.post(
            "/api/v1/auth/login",
            content=b'{"username": "admin", "password": "' + b"x" * PUBLIC_REQUEST_BYTES + b'"}',
            headers={"Content-Type": "application/json"},
        )
        assert big.status_code == 413
        login = await anonymous.post(
            "/api/v1/auth/login", json={"username": "admin", "password": "admin-password-1"}
        )
        assert login.status_code == 200
