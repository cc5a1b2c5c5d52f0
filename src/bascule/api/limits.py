"""How big a request may be: refused (413) before anything reads it.

Part of the HTTPS app's gate (``gate.py``), ahead of the flow of a change: FastAPI reads a
route's body before it runs the route's dependencies, so the gate decides, from the headers
alone, who is asking and how much they may send, and ``read_bounded`` holds the body to that.
A body announced by ``Content-Length`` is checked against the limit from the header alone (the
HTTP server never delivers more than announced); a chunked one, which announces nothing, is
read up to the limit and handed on only if it stays within.

The limits, by who asks (docs/security.md):

- ``MAX_REQUEST_BYTES`` for a caller who may ``configure``: room for the largest legitimate
  request, a backup file of ``daemon.backup.MAX_BACKUP_BYTES`` uploaded as a form;
- ``SMALL_REQUEST_BYTES`` for any other authenticated caller (a weight, a password, a token:
  a few hundred bytes), so a viewer cannot make the daemon read and parse megabytes;
- ``PUBLIC_REQUEST_BYTES`` for the routes anyone may call (the login forms).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bascule.api.errors import error_response
from bascule.daemon.backup import MAX_BACKUP_BYTES

#: The largest request body the HTTPS app reads (a backup upload plus its form's envelope).
MAX_REQUEST_BYTES = MAX_BACKUP_BYTES + 1024 * 1024
#: The largest body of a caller without the configure permission.
SMALL_REQUEST_BYTES = 64 * 1024
#: The largest body of a request without credentials (a login: a name and a password).
PUBLIC_REQUEST_BYTES = 16 * 1024


class RequestSizeLimit:
    """ASGI middleware: a request body beyond ``max_bytes`` is answered 413, unread."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_REQUEST_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await read_bounded(self.app, scope, receive, send, max_bytes=self.max_bytes)


async def read_bounded(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, *, max_bytes: int
) -> None:
    """Run ``app`` on a request whose body is at most ``max_bytes``, else answer 413."""
    length = header(scope, b"content-length")
    if length is not None:
        if not length.isdigit() or int(length) > max_bytes:
            await _refuse(scope, receive, send, max_bytes)
            return
        await app(scope, receive, send)
        return
    if header(scope, b"transfer-encoding") is None:
        await app(scope, receive, send)  # no body
        return
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break  # the client went away: let the app see it
        size += len(message.get("body", b""))
        if size > max_bytes:
            await _refuse(scope, receive, send, max_bytes)
            return
        if not message.get("more_body", False):
            break

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    await app(scope, replay, send)


def has_body(scope: Scope) -> bool:
    """Whether the request announces a body (a length above zero, or chunks)."""
    length = header(scope, b"content-length")
    if length is not None:
        return length != "0"
    return header(scope, b"transfer-encoding") is not None


async def _refuse(scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
    limit = (
        f"{max_bytes // (1024 * 1024)} MiB" if max_bytes >= 1024 * 1024 else f"{max_bytes} bytes"
    )
    response = error_response(
        413,
        "bad_request",
        f"the request body is larger than {limit}: nothing was read",
        headers={"Connection": "close"},
    )
    await response(scope, receive, send)


def header(scope: Scope, name: bytes) -> str | None:
    """The value of header ``name`` (lower case) in ``scope``, if present."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1").strip())
    return None
