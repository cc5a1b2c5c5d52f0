"""Every API route that takes a body parses it off the event loop when it is large
(``api/bodies.py``): a route added without ``route_class=OffLoopRoute`` fails here."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from bascule.api import bodies
from bascule.api.bodies import OFF_LOOP_BYTES, OffLoopRequest, OffLoopRoute


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, inside included routers too (FastAPI includes them lazily)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)


def takes_body(dependant: Any) -> bool:
    return bool(dependant.body_params) or any(takes_body(d) for d in dependant.dependencies)


def test_every_route_with_a_body_uses_the_off_loop_route(remote_app: FastAPI) -> None:
    with_body = [
        route
        for route in api_routes(list(remote_app.routes))
        if takes_body(route.dependant) or "requestBody" in (route.openapi_extra or {})
    ]
    assert len(with_body) >= 10
    assert [route.name for route in with_body if not isinstance(route, OffLoopRoute)] == []


async def test_a_large_body_is_parsed_in_another_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    real_loads = json.loads

    def loads(text: bytes) -> object:
        threads.append(threading.current_thread().name)
        return real_loads(text)

    monkeypatch.setattr(bodies.json, "loads", loads)
    for size in (10, OFF_LOOP_BYTES + 10):
        messages = [
            {"type": "http.request", "body": json.dumps({"x": "y" * size}).encode()},
            {"type": "http.disconnect"},
        ]

        async def receive(messages: list[dict[str, object]] = messages) -> dict[str, object]:
            return messages.pop(0)

        request = OffLoopRequest({"type": "http", "method": "PUT", "headers": []}, receive)
        assert (await request.json())["x"] == "y" * size
    main = threading.current_thread().name
    assert threads[0] == main and threads[1] != main
