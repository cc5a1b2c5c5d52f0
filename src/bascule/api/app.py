"""``create_app``: the FastAPI application the daemon serves, one router per noun under /api/v1.

Top of the flow of a change: requests come in here and go, through the dependencies of
``deps``, to the one service layer. Authentication (HTTPS with API tokens, a later issue) will
be one dependency on the ``/api/v1`` router below, so that no route can be reached without it.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

import bascule
from bascule.api.deps import ApiServices
from bascule.api.errors import ERROR_RESPONSES, install_error_handlers
from bascule.api.routes import (
    config,
    dsr,
    persistence,
    real_servers,
    revisions,
    status,
    system,
    virtual_services,
)

API_PREFIX = "/api/v1"


def create_app(services: ApiServices) -> FastAPI:
    app = FastAPI(
        title="Bascule",
        summary="Load balancer appliance: configuration, history and status",
        version=bascule.__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.services = services
    install_error_handlers(app)
    api = APIRouter(prefix=API_PREFIX, responses=ERROR_RESPONSES)
    for module in (
        config,
        virtual_services,
        real_servers,
        dsr,
        persistence,
        revisions,
        status,
        system,
    ):
        api.include_router(module.router)
    app.include_router(api)
    return app
