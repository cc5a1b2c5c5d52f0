"""``create_wui``: the WUI application, one router per page module under ``web/pages/``.

The composition root (bascule.main) mounts it at ``/`` on the HTTPS app, after the API
routes (``/api/v1``, ``/metrics``) so those keep precedence. Static files are served under
``/static/`` (our CSS; the npm packages copied into ``static/vendor/`` by setup.sh). Every
response carries a strict Content-Security-Policy: scripts only from ``/static/``, so no
inline ``<script>`` or ``on*=`` handler anywhere (pages pass data to scripts in
``data-*`` attributes or ``<script type="application/json">``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from bascule.errors import BasculeError, Conflict, NotApplicable, NotFound, NotTheActive
from bascule.web.auth import LoginRequired
from bascule.web.pages import (
    access_lists,
    audit,
    backup,
    cache_and_limits,
    certificates,
    dashboard,
    ha,
    history,
    http_users,
    login,
    page_store,
    preview,
    real_servers,
    request_logs,
    rules,
    statistics,
    sub_services,
    system,
    tokens,
    users,
    virtual_services,
)
from bascule.web.services import WebServices
from bascule.web.state import SessionStates
from bascule.web.templating import render

STATIC_DIR = Path(__file__).parent / "static"

PAGES = (
    login,
    dashboard,
    virtual_services,
    rules,
    sub_services,
    real_servers,
    cache_and_limits,
    preview,
    statistics,
    request_logs,
    history,
    audit,
    users,
    tokens,
    http_users,
    access_lists,
    certificates,
    page_store,
    backup,
    ha,
    system,
)

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def create_wui(services: WebServices) -> FastAPI:
    """The WUI over ``services``; mount it at ``/`` of the HTTPS app."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.web_services = services
    app.state.web_states = SessionStates()
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for page in PAGES:
        app.include_router(page.router)
    _install_handlers(app)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app


def _install_handlers(app: FastAPI) -> None:
    async def login_required(request: Request, exc: Exception) -> Response:
        next_url = exc.next_url if isinstance(exc, LoginRequired) else "/"
        target = "/login" + (f"?{urlencode({'next': next_url})}" if next_url != "/" else "")
        if request.headers.get("HX-Request"):
            # htmx follows HX-Redirect with a full page load, whatever the status
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, StarletteHTTPException):  # pragma: no cover (registered for it)
            raise exc
        return _error_page(request, exc.status_code, str(exc.detail))

    async def invalid_request(request: Request, exc: Exception) -> Response:
        return _error_page(request, 400, "The request was not understood.")

    async def bascule_error(request: Request, exc: Exception) -> Response:
        status = 500
        if isinstance(exc, NotFound):
            status = 404
        elif isinstance(exc, Conflict | NotTheActive):
            status = 409
        elif isinstance(exc, NotApplicable):
            status = 400
        return _error_page(request, status, str(exc))

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(BasculeError, bascule_error)


_TITLES = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Changed meanwhile"}


def _error_page(request: Request, status: int, message: str) -> Response:
    if status == 404 and message == "Not Found":
        message = "There is no such page."
    return render(
        request,
        "error.html",
        {
            "status": status,
            "title": _TITLES.get(status, "Something went wrong"),
            "message": message,
        },
        status_code=status,
    )
