"""Request bodies parsed off the event loop: the route class of every router that takes one.

At the door of the flow of a change, before a handler runs: FastAPI parses a JSON body with
``Request.json()`` on the event loop, where 16 MiB take a few hundred milliseconds that no
other request (``status``, a login, the WUI) gets. ``OffLoopRoute`` hands FastAPI a request
whose ``json()`` parses a body larger than ``OFF_LOOP_BYTES`` in a worker thread; smaller ones
are parsed in place, where a thread would cost more than it saves. The gate (``gate.py``) has
already bounded the body by the caller's role. Every router with a body route uses it
(``tests/unit/api/test_bodies_off_loop.py`` holds them to it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

#: Bodies up to this size are parsed on the loop (a millisecond or less).
OFF_LOOP_BYTES = 64 * 1024


class OffLoopRequest(Request):
    """A request whose JSON body, when large, is parsed in a worker thread."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            if len(body) > OFF_LOOP_BYTES:
                self._json = await asyncio.to_thread(json.loads, body)
            else:
                self._json = json.loads(body)
        return self._json


class OffLoopRoute(APIRoute):
    """An APIRoute whose handler sees an ``OffLoopRequest``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def off_loop_handler(request: Request) -> Response:
            return await handler(OffLoopRequest(request.scope, request.receive))

        return off_loop_handler
