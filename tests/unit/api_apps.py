"""``api_app(services, local=...)``: what ``create_app(services, local=...)`` returns, without
building FastAPI's routes again for every test.

Building the API's routes (a pydantic model per parameter, for ~250 routes, both when
``create_app`` includes the routers and lazily on the first requests) costs about a second of
CPU; the unit tests of the doors made two apps per test, which was most of the unit suite's
time. The routes hold no state: a request finds its services in ``request.app.state``, where
``create_app`` puts them. So each kind of app (``local`` or not) is built once per test process
and every test gets a shallow copy of it with its own state (its services), its own exception
handlers and its own middleware stack (``Gate``, ``SecurityHeaders``: built afresh on the copy's
first request), over the shared routes. Tests of ``create_app``'s own options (``docs_assets``)
still call it.
"""

from __future__ import annotations

import copy

from fastapi import FastAPI
from starlette.datastructures import State

from bascule.api import ApiServices, create_app

_BUILT: dict[bool, FastAPI] = {}


def api_app(services: ApiServices, *, local: bool = True) -> FastAPI:
    built = _BUILT.get(local)
    if built is None:
        built = _BUILT[local] = create_app(services, local=local)
        built.state = State()  # only its copies serve, each with its own services
    app = copy.copy(built)
    app.state = State()
    app.state.services = services
    app.state.local = local
    app.exception_handlers = dict(built.exception_handlers)
    app.user_middleware = list(built.user_middleware)
    app.middleware_stack = None
    return app
