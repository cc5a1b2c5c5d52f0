"""The dashboard: every virtual service at a glance, kept live by htmx.

Reads only: ``ConfigService.recent_status()`` for status, real servers up/total and
connections (the engines' last reading while it is recent), ``Statistics`` for the rate and its
sparkline. The page embeds the live section; htmx replaces it with ``GET /dashboard/live``
every 2 s (no page reload). Rows carry ``data-vs`` and ``data-status`` (the contract's hooks
for browser tests). Services are shown a page at a time (``?page=N&per_page=M``, 50 by
default): at 1,000 services a page of every row took over a second to make and to show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, Request
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


PER_PAGE = 50
MAX_PER_PAGE = 500

PageNumber = Annotated[int, Query(ge=1, le=1_000_000, description="1 is the first page")]
PerPage = Annotated[int, Query(ge=1, le=MAX_PER_PAGE, description="services per page")]


@dataclass(frozen=True, kw_only=True)
class Pager:
    """Which services a dashboard page shows: ``first`` to ``last`` (1-based) of ``total``."""

    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def start(self) -> int:
        """The index of the page's first service (a page past the end shows the last one)."""
        return (min(self.page, self.pages) - 1) * self.per_page

    @property
    def first(self) -> int:
        return min(self.start + 1, self.total)

    @property
    def last(self) -> int:
        return min(self.start + self.per_page, self.total)

    def link(self, page: int) -> str:
        """The query of page ``page`` (the page size kept when it is not the default)."""
        size = "" if self.per_page == PER_PAGE else f"&per_page={self.per_page}"
        return f"?page={page}{size}"


def rows(
    report: StatusReport, statistics: Statistics, pager: Pager | None = None
) -> list[ServiceRow]:
    """The rows of the services ``pager`` shows (all without one)."""
    services = report.virtual_services
    if pager is not None:
        services = services[pager.start : pager.start + pager.per_page]
    result = []
    for vs in services:
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


async def _context(services: Services, page: int, per_page: int) -> dict[str, object]:
    report = await services.config.recent_status()
    pager = Pager(page=page, per_page=per_page, total=len(report.virtual_services))
    return {"report": report, "rows": rows(report, services.statistics, pager), "pager": pager}


@router.get("/", response_class=HTMLResponse)
async def dashboard(
    request: Request,
    session: Reader,
    services: Services,
    page: PageNumber = 1,
    per_page: PerPage = PER_PAGE,
) -> HTMLResponse:
    context = await _context(services, page, per_page)
    return render(
        request, "dashboard/index.html", {**context, "page": "dashboard", "title": "Dashboard"}
    )


@router.get("/dashboard/live", response_class=HTMLResponse)
async def dashboard_live(
    request: Request,
    session: Reader,
    services: Services,
    page: PageNumber = 1,
    per_page: PerPage = PER_PAGE,
) -> HTMLResponse:
    return render(request, "dashboard/live.html", await _context(services, page, per_page))
