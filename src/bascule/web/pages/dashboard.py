"""The dashboard: every virtual service at a glance, kept live by htmx.

Reads only: ``ConfigService.status()`` for status, real servers up/total and connections,
``Statistics`` for the rate and its sparkline. The page embeds the live section; htmx
replaces it with ``GET /dashboard/live`` every 2 s (no page reload). Rows carry
``data-vs`` and ``data-status`` (the contract's hooks for browser tests).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from bascule.daemon.results import StatusReport, VirtualServiceStatus
from bascule.daemon.statistics import Statistics
from bascule.web.auth import Reader
from bascule.web.services import Services
from bascule.web.templating import render

router = APIRouter()

_RATE_LABELS = {
    "requests_per_s": "req/s",
    "new_connections_per_s": "conn/s",
    "packets_per_s": "pkt/s",
}


@dataclass(frozen=True, kw_only=True)
class ServiceRow:
    """One dashboard row: the status of a virtual service and its recent rate."""

    status: VirtualServiceStatus
    rate: float | None
    rate_label: str
    sparkline: tuple[float, ...]
    sparkline_label: str


def rows(report: StatusReport, statistics: Statistics) -> list[ServiceRow]:
    result = []
    for vs in report.virtual_services:
        main = statistics.main(vs.name)
        shown = "packets_per_s" if vs.mode == "l4" else main
        result.append(
            ServiceRow(
                status=vs,
                rate=statistics.latest(vs.name).get(shown),
                rate_label=_RATE_LABELS.get(shown, shown),
                sparkline=tuple(statistics.sparkline(vs.name)),
                sparkline_label=_RATE_LABELS.get(main, main),
            )
        )
    return result


async def _context(services: Services) -> dict[str, object]:
    report = await services.config.status()
    return {"report": report, "rows": rows(report, services.statistics)}


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, session: Reader, services: Services) -> HTMLResponse:
    context = await _context(services)
    return render(
        request, "dashboard/index.html", {**context, "page": "dashboard", "title": "Dashboard"}
    )


@router.get("/dashboard/live", response_class=HTMLResponse)
async def dashboard_live(request: Request, session: Reader, services: Services) -> HTMLResponse:
    return render(request, "dashboard/live.html", await _context(services))
