"""How big a request may be: refused (413) before anything reads it, even before the caller is
authenticated.

Outermost layer of the HTTPS app (API and WUI), ahead of the flow of a change: FastAPI reads a
route's body before it runs the route's dependencies, authentication included, so without this
anyone who reaches the listener could make the daemon read a body of any size into memory and
only then be told 401. A body announced by ``Content-Length`` is checked against the limit from
the header alone (the HTTP server never delivers more than announced); a chunked one, which
announces nothing, is read up to the limit and handed on only if it stays within.

The limit (``MAX_REQUEST_BYTES``) leaves room for the largest legitimate request: a backup file
of ``daemon.backup.MAX_BACKUP_BYTES`` uploaded as a form.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bascule.api.errors import error_response
from bascule.daemon.backup import MAX_BACKUP_BYTES

#: The largest request body the HTTPS app reads (a backup upload plus its form's envelope).
MAX_REQUEST_BYTES = MAX_BACKUP_BYTES + 1024 * 1024


class RequestSizeLimit:
    """ASGI middleware: a request body beyond ``max_bytes`` is answered 413, unread."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_REQUEST_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if _header(scope, b"transfer-encoding") is None:
            await self.app(scope, receive, send)  # no body
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client went away: let the app see it
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = f"{self.max_bytes // (1024 * 1024)} MiB"
        response = error_response(
            413,
            "bad_request",
            f"the request body is larger than {limit}: nothing was read",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1").strip())
    return None
