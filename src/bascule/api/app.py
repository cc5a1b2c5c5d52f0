"""``create_app``: the FastAPI application the daemon serves, one router per noun under /api/v1.

Top of the flow of a change: requests come in here and go, through the dependencies of
``deps``, to the one service layer. Authentication is one dependency on the ``/api/v1`` router
below (``require(Permission.read)``, see ``auth``), so that no route can be reached without
credentials; write routes ask for more. Only ``POST /auth/login`` and ``/auth/logout`` are
outside it. ``local``: the unix socket's app, whose caller is trusted as a local administrator.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

import bascule
from bascule.api.auth import require
from bascule.api.deps import ApiServices
from bascule.api.errors import ERROR_RESPONSES, install_error_handlers
from bascule.api.limits import RequestSizeLimit
from bascule.api.routes import (
    audit,
    auth,
    backup,
    config,
    dsr,
    metrics,
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


def create_app(services: ApiServices, *, local: bool = True) -> FastAPI:
    app = FastAPI(
        title="Bascule",
        summary="Load balancer appliance: configuration, history and status",
        version=bascule.__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.services = services
    app.state.local = local
    install_error_handlers(app)
    if not local:  # reachable from the network: bodies are bounded before anyone reads them
        app.add_middleware(RequestSizeLimit)
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
    ):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(metrics.router, responses=ERROR_RESPONSES)  # /metrics, where scrapers look
    return app
