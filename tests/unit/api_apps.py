"""``api_app(services, local=...)``: what ``create_app(services, local=...)`` returns, without
building FastAPI's routes again for every test.

Building the API's routes (a pydantic model per parameter, for ~250 routes, both when
``create_app`` includes the routers and lazily on the first requests) costs about a second of
CPU; the unit tests of the doors made two apps per test, which was most of the unit suite's
time. The routes hold no state: a request finds its services in ``request.app.state``, where
``create_app`` puts them. So the app is built once per test process and every test gets a door
of it (``bascule.api.app.door``, as the daemon serves both of its doors from one app): a shallow
copy with its own state (its services), its own exception handlers and its own middleware
stack (``Gate``, ``SecurityHeaders``: built afresh on the copy's first request), over the
shared routes. Tests of ``create_app``'s own options (``docs_assets``)
still call it.
"""

from __future__ import annotations

from fastapi import FastAPI

from bascule.api import ApiServices, create_app
from bascule.api.app import door

_BUILT: list[FastAPI] = []


def api_app(services: ApiServices, *, local: bool = True) -> FastAPI:
    if not _BUILT:
        _BUILT.append(create_app(services))
    app = door(_BUILT[0], local=local)
    app.state.services = services  # each test its own
    return app
