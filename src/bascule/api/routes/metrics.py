"""/metrics: the status in Prometheus's text exposition format, for a scraper.

After the flow of a change (status & stats): each scrape reads the status from the service
layer (the engines' counters and health, at that moment) and writes it as Prometheus text
(``api/exposition.py``, imported at the first scrape: a daemon never scraped does not keep
prometheus-client resident). Served outside ``/api/v1`` at ``/metrics``, where scrapers look;
it needs the ``read`` permission like every reading route.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from bascule.api.auth import require
from bascule.api.deps import ConfigServiceDep, get_services
from bascule.model.access import Permission

# Mounted outside /api/v1, so outside the router that asks every caller for ``read``.
router = APIRouter(tags=["metrics"], dependencies=[Depends(require(Permission.read))])

#: prometheus-client's ``CONTENT_TYPE_PLAIN_0_0_4``, spelled here so that declaring the route
#: imports none of it (tests/unit/api/test_metrics_route.py checks they are the same).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get(
    "/metrics",
    summary="The status as Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
)
async def metrics(config: ConfigServiceDep, request: Request) -> Response:
    from bascule.api.exposition import exposition

    certificates = get_services(request).certificates
    expiry = certificates.expiry_seconds() if certificates is not None else {}
    return Response(exposition(await config.status(), expiry), media_type=CONTENT_TYPE)
