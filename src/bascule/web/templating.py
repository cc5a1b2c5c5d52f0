"""The HTML template environment of the WUI and ``render``, which every page uses.

One Jinja2 environment for HTML (DESIGN.md: never the engines' one): autoescape on for every
template, ``StrictUndefined`` so a misspelt variable fails the test that renders it instead of
showing an empty cell, templates loaded from the package (``web/templates/<page>/...``).
``render`` adds what the layout needs to every page: the session and its actor, the CSRF
token, the flash messages, the active navigation entry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from bascule.model.access import Permission
from bascule.web.auth import session_of
from bascule.web.state import session_states


def sparkline(values: Sequence[float], width: int = 120, height: int = 28) -> Markup:
    """An inline SVG polyline of ``values`` (numbers only, so the markup is safe)."""
    points = [v if isinstance(v, int | float) and math.isfinite(v) else 0.0 for v in values]
    if len(points) < 2:
        points = [0.0, *points] if points else [0.0, 0.0]
    top = max(max(points), 1e-9)
    step = width / (len(points) - 1)
    coords = " ".join(
        f"{i * step:.1f},{height - 1 - (v / top) * (height - 2):.1f}" for i, v in enumerate(points)
    )
    # Safe: only numbers are interpolated, never text from a person.
    return Markup(  # noqa: S704
        f'<svg class="sparkline" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="recent rate">'
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{coords}"/>'
        "</svg>"
    )


def rate(value: float | None) -> str:
    """A per-second rate as a person reads it: ``0``, ``3.2``, ``41``, ``1.2k``."""
    if value is None:
        return "\u2013"  # en dash: no value
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    if value >= 10 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.1f}"


def byte_size(value: float | None) -> str:
    if value is None:
        return "\u2013"  # en dash: no value
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def path_part(value: object) -> str:
    """Quote a value for one segment of a URL path (a real server key ``[2001:db8::1]:80``)."""
    return quote(str(value), safe="")


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("bascule.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["sparkline"] = sparkline
    env.filters["rate"] = rate
    env.filters["bytes"] = byte_size
    env.filters["path_part"] = path_part
    env.globals["Permission"] = Permission
    return env


ENVIRONMENT = environment()


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render ``template`` (a page or a fragment) with the layout's context added.

    The layout's names (``session``, ``actor``, ``csrf_token``, ``flashes``, ``page``,
    ``can``, ``request``) are always defined; a page's own context overrides ``page`` (the
    active navigation entry: dashboard, statistics, history, users, tokens, backup, system).
    ``can.operate`` etc. say what the actor may do, so templates hide what it may not.
    A fragment fetched by htmx leaves the flash messages for the next full page.
    """
    session = session_of(request)
    fragment = bool(request.headers.get("HX-Request")) and not request.headers.get("HX-Boosted")
    states = session_states(request)
    flashes = states.take_flashes(session.id) if session and not fragment else []
    actor = session.actor if session else None
    values: dict[str, Any] = {
        "request": request,
        "session": session,
        "actor": actor,
        "can": {p.value: bool(actor and actor.may(p)) for p in Permission},
        "csrf_token": session.csrf_token if session else "",
        "flashes": flashes,
        "page": "",
        "title": "",
    }
    values.update(context or {})
    html = ENVIRONMENT.get_template(template).render(values)
    return HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))
