"""``create_app``: the FastAPI application the daemon serves, one router per noun under /api/v1.

Top of the flow of a change: requests come in here and go, through the dependencies of
``deps``, to the one service layer. Authentication is one dependency on the ``/api/v1`` router
below (``require(Permission.read)``, see ``auth``), so that no route can be reached without
credentials; write routes ask for more. Only ``POST /auth/login`` and ``/auth/logout`` are
outside it.

One app, two doors: FastAPI builds every route's validators and serializers once per app
(~11 MiB for the API's ~250 routes, docs/performance.md), so the unix socket and the HTTPS
listener serve the same routes through ``door``: each door is a shallow copy of the app with
its own state (``local``: the unix socket's, whose caller is trusted as a local administrator,
read by ``auth.is_local``), its own middleware (the gate and HSTS on the network door) and its
own exception handlers. What only the network door serves (the WUI) is mounted with
``mount_network_only``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import State
from starlette.middleware import Middleware
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Scope

import bascule
from bascule.api.auth import require
from bascule.api.deps import ApiServices
from bascule.api.errors import ERROR_RESPONSES, install_error_handlers
from bascule.api.gate import Gate
from bascule.api.headers import SecurityHeaders
from bascule.api.routes import (
    access_lists,
    audit,
    auth,
    backup,
    caches,
    certificates,
    config,
    content,
    dsr,
    ha,
    http_users,
    limits,
    logs,
    metrics,
    pages,
    persistence,
    real_servers,
    revisions,
    statistics,
    status,
    system,
    tokens,
    users,
    virtual_services,
)
from bascule.model.access import Permission

API_PREFIX = "/api/v1"


def create_app(
    services: ApiServices, *, local: bool = True, docs_assets: Path | None = None
) -> FastAPI:
    """The API's app on one door (``local``: the unix socket's; see ``door``).

    ``docs_assets``: a directory holding Swagger UI's ``swagger-ui-bundle.js`` and
    ``swagger-ui.css`` (installed from npm by setup.sh); the interactive documentation at
    /api/v1/docs is served from there, never from a CDN, and is absent without them."""
    app = FastAPI(
        title="Bascule",
        summary="Load balancer appliance: configuration, history and status",
        version=bascule.__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    if docs_assets is not None and (docs_assets / "swagger-ui-bundle.js").is_file():
        _serve_docs(app, docs_assets)
    app.state.services = services
    install_error_handlers(app)
    public = APIRouter(prefix=API_PREFIX, responses=ERROR_RESPONSES)
    public.include_router(auth.public)
    app.include_router(public)
    api = APIRouter(
        prefix=API_PREFIX,
        responses=ERROR_RESPONSES,
        dependencies=[Depends(require(Permission.read))],
    )
    for module in (
        config,
        virtual_services,
        real_servers,
        dsr,
        persistence,
        revisions,
        status,
        system,
        auth,
        users,
        tokens,
        audit,
        statistics,
        backup,
        certificates,
        pages,
        http_users,
        ha,
        logs,
        access_lists,
        limits,
        caches,
        content,
    ):
        api.include_router(module.router)
    api.include_router(real_servers.sub_service_router)
    api.include_router(real_servers.bulk_router)
    app.include_router(api)
    app.include_router(metrics.router, responses=ERROR_RESPONSES)  # /metrics, where scrapers look
    return door(app, local=local)


def door(app: FastAPI, *, local: bool) -> FastAPI:
    """``app``'s routes served on one door, over the same routes (and the same services):
    its own state, middleware and exception handlers, its middleware stack built on its
    first request."""
    served = copy.copy(app)
    served.state = State()
    served.state.services = app.state.services
    served.state.local = local
    served.exception_handlers = dict(app.exception_handlers)
    # SecurityHeaders outermost: every answer gets them, the gate's refusals too
    served.user_middleware = [Middleware(SecurityHeaders, hsts=not local)]
    if not local:
        # Reachable from the network: who asks is decided from the headers, and bodies are
        # bounded by role, before anyone reads them (gate.py).
        served.user_middleware.append(Middleware(Gate))
    served.middleware_stack = None
    return served


class _NetworkOnlyMount(Mount):
    """A mount the network door serves and the unix socket's does not: the socket answers
    its paths 404, as an app without it would."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["app"].state.local:
            return Match.NONE, {}
        return super().matches(scope)


def mount_network_only(app: FastAPI, path: str, served: ASGIApp, **options: Any) -> None:
    """Mount ``served`` at ``path`` of ``app`` (after the routes already there, which keep
    precedence) for the network door only (the WUI at ``/``)."""
    app.router.routes.append(_NetworkOnlyMount(path, app=served, **options))


def _serve_docs(app: FastAPI, assets: Path) -> None:
    """Swagger UI for the served OpenAPI document, with its script and style from ``assets``."""
    app.mount(f"{API_PREFIX}/docs/assets", StaticFiles(directory=assets), name="docs-assets")

    page = get_swagger_ui_html(
        openapi_url=f"{API_PREFIX}/openapi.json",
        title="Bascule API",
        swagger_js_url=f"{API_PREFIX}/docs/assets/swagger-ui-bundle.js",
        swagger_css_url=f"{API_PREFIX}/docs/assets/swagger-ui.css",
        swagger_favicon_url="data:,",
    )
    # Its one inline script is allowed by its hash, nothing else inline; never framed.
    policy = (
        "default-src 'self'; script-src 'self' "
        + " ".join(_script_hashes(bytes(page.body).decode()))
        + "; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
    )

    @app.get(f"{API_PREFIX}/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page.body, headers={"Content-Security-Policy": policy})


def _script_hashes(html: str) -> list[str]:
    """CSP source expressions (``'sha256-...'``) of the inline scripts of ``html``."""
    hashes = []
    for match in re.finditer(r"<script>(.*?)</script>", html, re.DOTALL):
        digest = hashlib.sha256(match[1].encode()).digest()
        hashes.append(f"'sha256-{base64.b64encode(digest).decode()}'")
    return hashes
