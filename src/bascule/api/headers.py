"""The security headers of every answer: no caching, no sniffing, no framing, HTTPS only.

Outermost layer of both apps, after everything else has answered: each response gets the
headers below unless a layer closer to the route set its own (the WUI's pages carry their
Content-Security-Policy, the Swagger page its own). Responses hold configuration, tokens,
audit entries and metrics, so none may be kept by a cache (``Cache-Control: no-store``) but the
static files under ``STATIC_PREFIXES``; none may be read as another type than the one sent
(``nosniff``: a JSON error quoting a user's text must never run as HTML); none may be framed
(``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``: no clickjacking of the WUI or
the Swagger page). An API answer's CSP forbids everything (``default-src 'none'``): a JSON
document opened as a page runs nothing. The HTTPS listener adds HSTS, so a browser that has
reached it once never tries it over plain HTTP again.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Paths whose answers are static files, which may be cached (they hold no data).
STATIC_PREFIXES = ("/static/", "/api/v1/docs/assets/")

#: What an answer that says nothing itself gets.
DEFAULT_HEADERS: Mapping[str, str] = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "same-origin",
}
#: HTTPS only, for a year (RFC 6797). Not ``includeSubDomains``: the appliance's name is not
#: ours to speak for.
HSTS = "max-age=31536000"


class SecurityHeaders:
    """ASGI middleware: the headers above on every response (``hsts``: on the HTTPS app)."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith(STATIC_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in DEFAULT_HEADERS.items():
                    if name == "Cache-Control" and static:
                        continue
                    if name not in headers:
                        headers[name] = value
                if self.hsts:
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, send_with_headers)
