"""The gate of the HTTPS app: who is asking, decided from the headers, before any body is read.

Outermost layer of the HTTPS listener's app (the API and the WUI mounted in it), ahead of the
flow of a change. FastAPI reads and parses a route's body (JSON, a form) *before* it runs the
route's dependencies, authentication included; so without the gate anyone who reaches the
listener could make the daemon read 16 MiB and parse it (0.46 s of the event loop each) only to
be told 401. The gate looks at every request that carries a body or an unsafe method:

- the public routes (the login forms: ``POST /api/v1/auth/login``, ``POST /login``, and
  ``POST /api/v1/auth/logout``) pass with a body of at most ``PUBLIC_REQUEST_BYTES``;
- any other needs credentials in its headers, an API token (``Authorization: Bearer``) or a
  session cookie, resolved here exactly as ``auth.get_actor`` will (``AccountService``). None,
  or bad ones: refused at once, the body unread and the connection closed (an API path gets
  ``401``, a WUI path goes to ``/login``);
- an authenticated caller may send ``MAX_REQUEST_BYTES`` if their role may ``configure`` (a
  document, a backup), ``SMALL_REQUEST_BYTES`` otherwise (``limits.py``); beyond, 413 unread.

The gate is an early refusal, not the authority: the route's dependencies still authenticate
the request and check its permission and CSRF token as before (``auth.py``, ``web/auth.py``).
A ``GET`` without a body costs nothing to refuse later, so it goes straight through.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from bascule.api.auth import SAFE_METHODS, SESSION_COOKIE
from bascule.api.errors import error_response
from bascule.api.limits import (
    MAX_REQUEST_BYTES,
    PUBLIC_REQUEST_BYTES,
    SMALL_REQUEST_BYTES,
    has_body,
    read_bounded,
)
from bascule.daemon.accounts import AccountService
from bascule.model.access import Actor, Permission

#: (method, path) of the routes anyone may call with a body.
PUBLIC_ROUTES = frozenset(
    {
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/login"),
    }
)
_API_PATHS = ("/api/", "/metrics")


class Gate:
    """ASGI middleware: authenticate from the headers, then bound the body by role."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope["method"])
        if method in SAFE_METHODS and not has_body(scope):
            await self.app(scope, receive, send)
            return
        if (method, str(scope["path"])) in PUBLIC_ROUTES:
            limit = PUBLIC_REQUEST_BYTES
        else:
            actor = caller(scope)
            if actor is None:
                await _refusal(scope)(scope, receive, send)
                return
            limit = MAX_REQUEST_BYTES if actor.may(Permission.configure) else SMALL_REQUEST_BYTES
        await read_bounded(self.app, scope, receive, send, max_bytes=limit)


def caller(scope: Scope) -> Actor | None:
    """The actor the request's headers name (a valid API token, else a live session), as
    ``auth.get_actor`` would find it; ``None`` without valid credentials."""
    connection = HTTPConnection(scope)
    accounts: AccountService = scope["app"].state.services.accounts
    remote = connection.client.host if connection.client else "unknown"
    authorization = connection.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return accounts.authenticate_token(token.strip(), remote=remote)
    session_id = connection.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    session = accounts.resume(session_id, remote=remote)
    return None if session is None else session.actor


def _refusal(scope: Scope) -> Response:
    path = str(scope["path"])
    close = {"Connection": "close"}  # the body stays unread: this connection is done
    if path.startswith(_API_PATHS):
        return error_response(
            401,
            "unauthorized",
            "authentication required: send Authorization: Bearer <API token>, or log in "
            "(nothing of the request body was read)",
            headers={"WWW-Authenticate": "Bearer", **close},
        )
    if HTTPConnection(scope).headers.get("hx-request"):
        # htmx follows HX-Redirect with a full page load, whatever the status (web/app.py)
        return Response(status_code=401, headers={"HX-Redirect": "/login", **close})
    return Response(status_code=303, headers={"Location": "/login", **close})
