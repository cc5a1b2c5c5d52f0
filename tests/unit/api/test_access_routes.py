"""Every route of the HTTPS app: 401 without credentials, 403 for a role that may not, the
happy path for the least role that may; 409 for a stale If-Match on every write.

``ROUTES`` is the permission table of the API; ``test_the_table_covers_every_route`` fails when
a route is added without a line here, so no route escapes these tests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bascule.model.access import Actor, Permission, Role
from bascule.pki.selfsigned import self_signed

Document = dict[str, Any]
ClientAs = Callable[[str | None], Awaitable[httpx.AsyncClient]]  # the conftest's client_as

RS = "198.18.0.4:80"
WEB = "/api/v1/virtual-services/web"
SUB = f"{WEB}/sub-services/app"


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # {token} is the id of the viewer's own token
    permission: Permission
    happy: int = 200  # the status the least role that may gets (the request gets that far)
    body: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    writes: bool = False  # a configuration write: takes If-Match

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


PEER_JOIN = {"port": 1, "certificate": "", "token": "t"}
SUB_SERVICE = {"name": "app", "real_servers": [{"address": "198.18.0.4", "port": 80}]}


@pytest.fixture
def make_document(make_service: Callable[..., Document]) -> Callable[..., Document]:
    """The committed document of these tests: ``web`` with a sub-service ``app``."""

    def make(*weights: int) -> Document:
        return {
            "virtual_services": [
                {**make_service("web", 80, *weights), "sub_services": [SUB_SERVICE]}
            ]
        }

    return make


def new_service() -> Document:
    return {
        "name": "api",
        "address": "198.18.0.101",
        "port": 80,
        "real_servers": [{"address": "198.18.0.6", "port": 80}],
    }


def document() -> Document:
    return {
        "virtual_services": [
            {
                "name": "web",
                "address": "198.18.0.100",
                "port": 80,
                "scheduler": "weighted_round_robin",
                "real_servers": [
                    {"address": "198.18.0.4", "port": 80, "weight": 500},
                    {"address": "198.18.0.5", "port": 80, "weight": 1000},
                ],
                "sub_services": [SUB_SERVICE],
            }
        ]
    }


def _pem() -> dict[str, str]:
    bundle = self_signed(dns=["new.test"], now=datetime.now(UTC))
    return {"cert": bundle.certificate_pem.decode(), "key": bundle.key_pem.decode()}


#: a certificate with its key, and a CA certificate, for the certificate store's routes
NEW_PEM = _pem()
CA_PEM = NEW_PEM["cert"]


@pytest.fixture(autouse=True)
async def store_entries(services: Any) -> None:
    """The store holds ``shop`` (a certificate) and ``corp`` (a CA bundle); the page store
    ``maint``; the HTTP user store ``ops``."""
    admin = Actor(name="root@local", role=Role.admin, via="local", remote="test")
    await services.certificates.self_signed("shop", dns=["shop.test"], actor=admin)
    await services.certificates.import_ca("corp", CA_PEM.encode(), actor=admin)
    await services.pages.add("maint", b"<h1>Back soon</h1>", actor=admin)
    await services.http_users.add("ops", "ops-password-1", actor=admin)


read, operate, configure, administer = (
    Permission.read,
    Permission.operate,
    Permission.configure,
    Permission.administer,
)

ROUTES = [
    Route("GET", "/api/v1/config", read),
    Route("PUT", "/api/v1/config", configure, body=document(), writes=True),
    Route("POST", "/api/v1/config/plan", configure, body=document(), writes=True),
    Route("GET", "/api/v1/virtual-services", read),
    Route("POST", "/api/v1/virtual-services", configure, 201, new_service(), writes=True),
    Route("GET", WEB, read),
    Route(
        "PUT", WEB, configure, body={**document()["virtual_services"][0], "port": 81}, writes=True
    ),
    Route("PATCH", WEB, configure, body={"port": 81}, writes=True),
    Route("DELETE", WEB, configure, writes=True),
    Route("GET", "/api/v1/logs", read),
    Route("GET", f"{WEB}/real-servers", read),
    Route(
        "POST",
        f"{WEB}/real-servers",
        configure,
        201,
        {"address": "198.18.0.7", "port": 80},
        writes=True,
    ),
    Route("GET", f"{WEB}/real-servers/{RS}", read),
    Route("PATCH", f"{WEB}/real-servers/{RS}", operate, body={"weight": 7}, writes=True),
    Route("DELETE", f"{WEB}/real-servers/{RS}", configure, writes=True),
    Route("POST", f"{WEB}/real-servers/{RS}/enable", operate, writes=True),
    Route("POST", f"{WEB}/real-servers/{RS}/disable", operate, writes=True),
    Route("POST", f"{WEB}/real-servers/{RS}/drain", operate, writes=True),
    Route("PATCH", f"{SUB}/real-servers/{RS}", operate, body={"weight": 7}, writes=True),
    Route("POST", f"{SUB}/real-servers/{RS}/drain", operate, writes=True),
    Route(
        "POST", "/api/v1/real-servers/drain", operate, body={"address": "198.18.0.4"}, writes=True
    ),
    Route("GET", f"{WEB}/dsr/script", read, 422),  # web is NAT: not_applicable, but allowed
    Route("POST", f"{WEB}/dsr/verify", operate, 422),
    Route("GET", f"{WEB}/persistence", read),
    Route("DELETE", f"{WEB}/persistence", configure),
    Route("GET", f"{WEB}/limits", read, 422),  # web has no per-client limits
    Route("POST", f"{WEB}/cache/purge", operate, 422),  # web has no cache
    Route("GET", f"{SUB}/limits", read, 422),  # nor its sub-service app
    Route("POST", f"{SUB}/cache/purge", operate, 422),
    Route("GET", SUB, read),
    Route(
        "PATCH",
        SUB,
        configure,
        body={"limits": {"per_client": {"requests_per_second": 5}}},
        writes=True,
    ),
    Route("GET", f"{WEB}/rules/login", read, 404),  # web has no rules
    Route("GET", f"{WEB}/rules/login/limits", read, 404),
    Route("PATCH", f"{WEB}/rules/login", configure, 404, body={"limits": None}, writes=True),
    Route("GET", "/api/v1/revisions", read),
    Route("GET", "/api/v1/revisions/1", read),
    Route("GET", "/api/v1/revisions/1/diff/1", read),
    Route("POST", "/api/v1/revisions/1/rollback", configure, writes=True),
    Route("GET", "/api/v1/status", read),
    Route("GET", "/api/v1/system", read),
    # no HA service in these tests: 422 not_applicable once the caller may (test_ha_routes.py)
    Route("GET", "/api/v1/ha", read, 422),
    Route("POST", "/api/v1/ha/standby", operate, 422),
    Route("POST", "/api/v1/ha/takeover", operate, 422),
    Route("POST", "/api/v1/ha/join", administer, 422, {"url": "https://198.18.0.3", "token": "t"}),
    Route("POST", "/api/v1/ha/leave", administer, 422),
    Route("POST", "/api/v1/ha/resolve", administer, 422, {"keep": "lb1"}),
    Route("POST", "/api/v1/ha/peer/join", administer, 422, PEER_JOIN),
    # only the peer's own token gets further (test_pair_routes.py)
    Route("GET", "/api/v1/ha/peer/state", administer, 403),
    Route("GET", "/api/v1/ha/peer/revisions", administer, 403),
    Route("POST", "/api/v1/ha/peer/revisions", administer, 403, {"revisions": []}),
    Route("POST", "/api/v1/ha/peer/standby", administer, 403),
    Route("GET", "/api/v1/ha/peer/digests", administer, 403),
    Route("POST", "/api/v1/ha/peer/resolve", administer, 403, {"keep": "lb1", "by": "a"}),
    Route(
        "POST",
        "/api/v1/ha/peer/replace",
        administer,
        403,
        {"revisions": [], "fork": 1, "kept": "lb1", "by": "a"},
    ),
    Route("POST", "/api/v1/ha/peer/drain", administer, 403, {"services": []}),
    Route("POST", "/api/v1/ha/peer/leave", administer, 403),
    Route("POST", "/api/v1/system/stop", administer, 202),
    Route("GET", "/api/v1/auth/whoami", read),
    Route("GET", "/api/v1/users", administer),
    Route(
        "POST",
        "/api/v1/users",
        administer,
        201,
        {"name": "dave", "role": "viewer", "password": "dave-password"},
    ),
    Route("GET", "/api/v1/users/admin", administer),
    Route("PATCH", "/api/v1/users/viewer", administer, body={"role": "operator"}),
    Route("DELETE", "/api/v1/users/viewer", administer, 204),
    Route("GET", "/api/v1/tokens", read),
    Route("POST", "/api/v1/tokens", read, 201, {"name": "script", "role": "viewer"}),
    Route("DELETE", "/api/v1/tokens/{token}", read, 204),
    Route("GET", "/api/v1/audit", administer),
    Route("GET", "/api/v1/statistics/virtual-services", read),
    Route("GET", "/api/v1/statistics/virtual-services/web", read),
    Route("GET", "/api/v1/backup", read),
    Route("POST", "/api/v1/backup", administer, body={"passphrase": "a long passphrase"}),
    Route(
        "POST",
        "/api/v1/restore",
        configure,
        body=document(),
        headers={"Content-Type": "application/json"},
        writes=True,
    ),
    Route("GET", "/metrics", read),
    Route("GET", "/api/v1/certificates", administer),
    Route("POST", "/api/v1/certificates", administer, 201, {"name": "new", **NEW_PEM}),
    Route(
        "POST",
        "/api/v1/certificates/self-signed",
        administer,
        201,
        {"name": "lab", "dns": ["lab.test"]},
    ),
    Route("GET", "/api/v1/certificates/shop", administer),
    # no ACME client in these tests: not_applicable, but allowed
    Route(
        "POST",
        "/api/v1/certificates/acme",
        administer,
        422,
        {"name": "le", "domains": ["le.test"], "email": "a@b.test"},
    ),
    Route("POST", "/api/v1/certificates/shop/renew", administer, 422),
    Route("PUT", "/api/v1/certificates/shop", administer, body=NEW_PEM),
    Route("DELETE", "/api/v1/certificates/shop", administer, 204),
    Route("POST", "/api/v1/ca-bundles", administer, 201, {"name": "corp2", "pem": CA_PEM}),
    Route("PUT", "/api/v1/ca-bundles/corp", administer, body={"pem": CA_PEM}),
    Route("GET", "/api/v1/http-users", administer),
    Route("GET", "/api/v1/http-users/ops", administer),
    Route("POST", "/api/v1/http-users", administer, 201, {"name": "new", "password": "x" * 9}),
    Route("PUT", "/api/v1/http-users/ops/password", administer, body={"password": "y" * 9}),
    Route("DELETE", "/api/v1/http-users/ops", administer, 204),
    Route("GET", "/api/v1/pages", read),
    Route("GET", "/api/v1/pages/maint", read),
    Route("POST", "/api/v1/pages", configure, 201, {"name": "new", "content": "<p>x</p>"}),
    Route("DELETE", "/api/v1/pages/maint", configure, 204),
    Route("GET", "/api/v1/access-lists", read),
    Route("GET", "/api/v1/access-lists/office", read, 404),
    Route(
        "PUT",
        "/api/v1/access-lists/office",
        configure,
        body={"addresses": ["198.18.0.0/24"]},
        writes=True,
    ),
    Route(
        "POST",
        "/api/v1/access-lists/office/import",
        configure,
        body={"text": "198.18.0.0/24  # the office\n"},
        writes=True,
    ),
    Route("DELETE", "/api/v1/access-lists/office", configure, 404, writes=True),
    Route("PUT", "/api/v1/access-lists/office/block", configure, 404, writes=True),
    Route("DELETE", "/api/v1/access-lists/office/block", configure, 404, writes=True),
]

#: Reachable without credentials: tested in test_auth_routes.py.
PUBLIC = {"POST /api/v1/auth/login", "POST /api/v1/auth/logout"}

#: The most powerful role that lacks each permission (None: every role has it).
REFUSED = {read: None, operate: "viewer", configure: "operator", administer: "operator"}
#: The least powerful role that has it.
ALLOWED = {read: "viewer", operate: "operator", configure: "admin", administer: "admin"}


def route_ids(routes: list[Route]) -> list[str]:
    return [route.id for route in routes]


def template(path: str) -> str:
    """A concrete path back to its OpenAPI template (for the coverage check)."""
    if path.startswith(SUB):
        path = path.replace(SUB, "/api/v1/virtual-services/{name}/sub-services/{sub}")
    if "/real-servers/" in path:
        for verb in ("/enable", "/disable", "/drain"):
            path = path.replace(verb, "/{verb}")
    return (
        path.replace(WEB, "/api/v1/virtual-services/{name}")
        .replace(RS, "{key}")
        .replace("/revisions/1/diff/1", "/revisions/{a}/diff/{b}")
        .replace("/revisions/1", "/revisions/{number}")
        .replace("/users/admin", "/users/{user}")
        .replace("/users/viewer", "/users/{user}")
        .replace("/tokens/{token}", "/tokens/{token_id}")
        .replace("/statistics/virtual-services/web", "/statistics/virtual-services/{name}")
        .replace("/certificates/shop", "/certificates/{name}")
        .replace("/ca-bundles/corp", "/ca-bundles/{name}")
        .replace("/pages/maint", "/pages/{name}")
        .replace("/http-users/ops", "/http-users/{name}")
        .replace("/access-lists/office", "/access-lists/{name}")
        .replace("/rules/login", "/rules/{rule}")
    )


def test_the_table_covers_every_route(remote_app: FastAPI) -> None:
    served = {
        f"{method.upper()} {path}"
        for path, operations in remote_app.openapi()["paths"].items()
        for method in operations
    }
    tested = {f"{route.method} {template(route.path)}" for route in ROUTES} | PUBLIC
    assert served - tested == set(), "add these routes to ROUTES"
    assert tested - served == set(), "these routes are gone"


async def call(
    client: httpx.AsyncClient,
    route: Route,
    tokens: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    token_id = tokens["viewer"].split("_")[1] if tokens else "0123456789abcdef"
    path = route.path.replace("{token}", token_id)
    kwargs: dict[str, Any] = {
        "params": route.params,
        "headers": {**route.headers, **(headers or {})},
    }
    if route.body is not None:
        kwargs["json"] = route.body
    return await client.request(route.method, path, **kwargs)


async def test_no_credentials_is_401_on_every_route(remote_app: FastAPI) -> None:
    # Refused before any handler runs: no data needed, one app for all routes.
    transport = httpx.ASGITransport(app=remote_app)
    async with httpx.AsyncClient(transport=transport, base_url="https://bascule") as client:
        for route in ROUTES:
            response = await call(client, route)
            assert response.status_code == 401, (route.id, response.text)
            assert response.headers["WWW-Authenticate"] == "Bearer", route.id
            assert response.json()["error"]["kind"] == "unauthorized", route.id


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer bsc_0123456789abcdef_not-the-secret",
        "Bearer not-a-token",
        "Basic YWRtaW46YWRtaW4=",
        "Bearer ",
    ],
)
async def test_a_bad_token_is_401_on_every_route(
    remote_app: FastAPI, tokens: dict[str, str], authorization: str
) -> None:
    transport = httpx.ASGITransport(app=remote_app)
    async with httpx.AsyncClient(
        transport=transport, base_url="https://bascule", headers={"Authorization": authorization}
    ) as client:
        for route in ROUTES:
            response = await call(client, route, tokens)
            assert response.status_code == 401, (route.id, response.text)


async def test_a_forged_secret_of_a_real_token_id_is_401(
    client_as: ClientAs, remote_app: FastAPI, tokens: dict[str, str]
) -> None:
    viewer = tokens["viewer"]
    forged = viewer[:-4] + ("AAAA" if not viewer.endswith("AAAA") else "BBBB")
    transport = httpx.ASGITransport(app=remote_app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="https://bascule",
        headers={"Authorization": f"Bearer {forged}"},
    ) as client:
        assert (await client.get("/api/v1/status")).status_code == 401
    assert (await (await client_as("viewer")).get("/api/v1/status")).status_code == 200


REFUSABLE = [route for route in ROUTES if REFUSED[route.permission] is not None]


@pytest.mark.parametrize("route", REFUSABLE, ids=route_ids(REFUSABLE))
async def test_a_role_that_may_not_is_403(
    route: Route,
    client_as: ClientAs,
    tokens: dict[str, str],
    committed: int,
    services_head: Callable[[], int | None],
) -> None:
    role = REFUSED[route.permission]
    response = await call(await client_as(role), route, tokens)
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["kind"] == "forbidden"
    assert route.permission.value in error["message"]
    assert services_head() == committed  # nothing changed


@pytest.mark.parametrize("route", ROUTES, ids=route_ids(ROUTES))
async def test_the_least_role_that_may_gets_through(
    route: Route, client_as: ClientAs, tokens: dict[str, str], committed: int
) -> None:
    response = await call(await client_as(ALLOWED[route.permission]), route, tokens)
    assert response.status_code == route.happy, response.text


WRITES = [route for route in ROUTES if route.writes]


@pytest.mark.parametrize("route", WRITES, ids=route_ids(WRITES))
async def test_a_stale_if_match_is_409(
    route: Route,
    client_as: ClientAs,
    tokens: dict[str, str],
    committed: int,
    services_head: Callable[[], int | None],
) -> None:
    client = await client_as(ALLOWED[route.permission])
    response = await call(client, route, tokens, headers={"If-Match": f'"{committed + 5}"'})
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert (error["kind"], error["current_revision"]) == ("conflict", committed)
    assert response.headers["ETag"] == f'"{committed}"'
    assert services_head() == committed


@pytest.fixture
def services_head(services: Any) -> Callable[[], int | None]:
    def head() -> int | None:
        number: int | None = services.config.store.head_number()
        return number

    return head
