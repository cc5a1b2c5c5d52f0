"""A service's cache purge and its limits view: run-time actions and state, no configuration
change.

``POST /virtual-services/{name}/cache/purge`` empties the service's cache (and
``.../sub-services/{sub}/cache/purge`` a sub-service's), as ``bascule cache purge VS`` and
the API's ``/cache/purge`` do: the same service call
(daemon/caches.py ``purge_cache``), which records it in the audit log; the API asks the
operate permission for it, so does this page (CSRF-checked like every POST). The outcome is
flashed on the service page.

``GET /virtual-services/{name}/limits`` shows the busiest clients of a service with per-client
limits and whether a limit holds each (``bascule limits show VS``, the API's ``/limits``:
``ConfigService.client_loads``); its table is refreshed by htmx from ``.../limits/live``
every 2 s, like the service page's real servers.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bascule.daemon.accounts import WebSession
from bascule.daemon.caches import purge_cache
from bascule.errors import NotApplicable, NotFound
from bascule.web.auth import Operator, Reader
from bascule.web.pages.virtual_services import service_document
from bascule.web.services import Services, WebServices
from bascule.web.state import flash
from bascule.web.templating import render

router = APIRouter()

#: How many clients the limits view lists (the CLI's and the API's default).
TOP_CLIENTS = 20


@router.post("/virtual-services/{name}/cache/purge")
async def purge(request: Request, name: str, session: Operator, services: Services) -> Response:
    return await _purge(request, services, session, name, back=f"/virtual-services/{name}")


@router.post("/virtual-services/{name}/sub-services/{sub}/cache/purge")
async def purge_sub_service(
    request: Request, name: str, sub: str, session: Operator, services: Services
) -> Response:
    back = f"/virtual-services/{name}/sub-services/{sub}"
    return await _purge(request, services, session, f"{name}/{sub}", back=back)


async def _purge(
    request: Request, services: WebServices, session: WebSession, pool: str, *, back: str
) -> Response:
    """Purge ``pool``'s cache (a service, or ``site/api``), say how it went on ``back``."""
    try:
        purged = await purge_cache(services.config, pool, actor=session.actor)
    except (NotApplicable, NotFound) as exc:
        flash(request, f"The cache was not purged: {exc}", "error")
    else:
        if purged.running:
            flash(request, f"The cache of {pool} was purged.")
        else:
            flash(
                request,
                f"The cache of {pool} is not running yet: the purge holds from its next start.",
                "info",
            )
    return RedirectResponse(back, status_code=303)


@router.get("/virtual-services/{name}/limits", response_class=HTMLResponse)
async def limits_page(
    request: Request, name: str, session: Reader, services: Services
) -> HTMLResponse:
    return render(
        request,
        "virtual_services/limits.html",
        {
            "title": f"Limits of {name}",
            "page": "dashboard",
            **await _client_loads(services, name),
        },
    )


@router.get("/virtual-services/{name}/limits/live", response_class=HTMLResponse)
async def limits_live(
    request: Request, name: str, session: Reader, services: Services
) -> HTMLResponse:
    return render(
        request, "virtual_services/_client_loads.html", await _client_loads(services, name)
    )


async def _client_loads(services: WebServices, name: str) -> dict[str, Any]:
    """The busiest clients of ``name``, or why there are none to show."""
    _, stored = service_document(services, name)
    try:
        loads = await services.config.client_loads(name, top=TOP_CLIENTS)
    except NotApplicable as exc:
        return {
            "name": name,
            "loads": [],
            "not_applicable": str(exc),
            "limits": stored.get("limits"),
        }
    return {"name": name, "loads": loads, "not_applicable": "", "limits": stored.get("limits")}
