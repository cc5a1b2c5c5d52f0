"""Statistics: graphs of every virtual service and its real servers, last hour or last day.

The last step of the flow of a change (status & stats): the daemon's sampler
(``daemon/statistics.py``) keeps the time series in memory; ``/statistics`` lists the virtual
services with their current rate, ``/statistics/{name}?window=hour|day`` draws the graphs with
uPlot (``static/statistics.js``), which reads ``/statistics/{name}/series`` (JSON, the same
``ServiceSeries`` the API serves) and refreshes itself every step of the window.

Which graphs a service has follows its kind: requests per second for L7 HTTP services, packets
per second for L4 ones, new connections per second always.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from bascule.errors import NotFound
from bascule.model import Mode, ServiceType, VirtualService
from bascule.stats import WINDOWS, Metric
from bascule.web.auth import Reader
from bascule.web.services import Services, WebServices
from bascule.web.templating import render

router = APIRouter()

Window = Annotated[str, Query(pattern="^(hour|day)$")]


@dataclass(frozen=True, kw_only=True)
class Chart:
    """One graph: ``scope`` vs draws the service's ``metrics`` (a line each), rs draws
    ``metrics[0]`` with a line per real server (``sum`` adds all ``metrics`` per server)."""

    id: str
    title: str
    unit: str  # "", "/s", "B/s", "ms"
    scope: str  # vs | rs
    metrics: tuple[str, ...]
    labels: tuple[str, ...] = ()

    def data(self) -> dict[str, str]:
        """The ``data-*`` attributes the script reads."""
        return {
            "chart": self.id,
            "title": self.title,
            "unit": self.unit,
            "scope": self.scope,
            "metrics": ",".join(self.metrics),
            "labels": ",".join(self.labels),
        }


def rate_metric(vs: VirtualService) -> tuple[str, str] | None:
    """The kind-specific rate of ``vs`` (metric, title), if it has one."""
    if vs.mode is Mode.l4:
        return Metric.packets.value, "Packets"
    if vs.type is ServiceType.http:
        return Metric.requests.value, "Requests"
    return None


def charts(vs: VirtualService) -> tuple[list[Chart], list[Chart]]:
    """The graphs of a virtual service and those of its real servers."""
    rate = rate_metric(vs)
    own = [
        Chart(
            id="vs-connections",
            title="Connections",
            unit="",
            scope="vs",
            metrics=(Metric.connections.value, Metric.new_connections.value),
            labels=("current", "new per second"),
        ),
    ]
    servers = [
        Chart(
            id="rs-connections",
            title="Current connections",
            unit="",
            scope="rs",
            metrics=(Metric.connections.value,),
        ),
    ]
    if rate is not None:
        metric, title = rate
        own.append(
            Chart(
                id="vs-rate",
                title=f"{title} per second",
                unit="/s",
                scope="vs",
                metrics=(metric,),
                labels=(title.lower(),),
            )
        )
        servers.append(
            Chart(
                id="rs-rate", title=f"{title} per second", unit="/s", scope="rs", metrics=(metric,)
            )
        )
        if vs.cache is not None:
            own.append(
                Chart(
                    id="vs-cache",
                    title="Cache hit ratio",
                    unit="",
                    scope="vs",
                    metrics=(Metric.cache_hit_ratio.value,),
                    labels=("hits / lookups",),
                )
            )
    else:
        servers.append(
            Chart(
                id="rs-rate",
                title="New connections per second",
                unit="/s",
                scope="rs",
                metrics=(Metric.new_connections.value,),
            )
        )
    own += [
        Chart(
            id="vs-bytes",
            title="Traffic",
            unit="B/s",
            scope="vs",
            metrics=(Metric.bytes_in.value, Metric.bytes_out.value),
            labels=("in", "out"),
        ),
        Chart(
            id="vs-check",
            title="Health check time (mean of the real servers)",
            unit="ms",
            scope="vs",
            metrics=(Metric.check_duration.value,),
            labels=("check",),
        ),
    ]
    servers += [
        Chart(
            id="rs-bytes",
            title="Traffic (in + out)",
            unit="B/s",
            scope="rs",
            metrics=(Metric.bytes_in.value, Metric.bytes_out.value),
        ),
        Chart(
            id="rs-check",
            title="Health check time",
            unit="ms",
            scope="rs",
            metrics=(Metric.check_duration.value,),
        ),
    ]
    return own, servers


def _service(services: WebServices, name: str) -> VirtualService:
    vs = next((vs for vs in services.config.desired().virtual_services if vs.name == name), None)
    if vs is None:
        raise NotFound(f"there is no virtual service named {name!r}")
    return vs


@router.get("/statistics", response_class=HTMLResponse)
async def statistics_page(request: Request, session: Reader, services: Services) -> HTMLResponse:
    stats = services.statistics
    rows = []
    for vs in services.config.desired().virtual_services:
        latest = stats.latest(vs.name)
        main = stats.main(vs.name)
        rows.append(
            {
                "vs": vs,
                "main": "req/s" if main == Metric.requests.value else "conn/s",
                "rate": latest.get(main),
                "connections": latest.get(Metric.connections.value),
                "sparkline": stats.sparkline(vs.name),
            }
        )
    return render(
        request,
        "statistics/index.html",
        {"page": "statistics", "title": "Statistics", "rows": rows, "interval": stats.interval},
    )


@router.get("/statistics/{name}", response_class=HTMLResponse)
async def service_statistics(
    request: Request, name: str, session: Reader, services: Services, window: Window = "hour"
) -> HTMLResponse:
    vs = _service(services, name)
    own, servers = charts(vs)
    shape = WINDOWS[window]
    return render(
        request,
        "statistics/service.html",
        {
            "page": "statistics",
            "title": f"Statistics of {name}",
            "vs": vs,
            "window": window,
            "windows": list(WINDOWS),
            "own_charts": own,
            "server_charts": servers,
            "series_url": f"/statistics/{name}/series?window={window}",
            # refresh once per bucket, but not more often than the sampler samples
            "refresh_ms": int(max(shape.step, services.statistics.interval) * 1000),
        },
    )


@router.get("/statistics/{name}/series")
async def service_series(
    name: str, session: Reader, services: Services, window: Window = "hour"
) -> JSONResponse:
    """The window's time series as JSON, for the page's graphs."""
    _service(services, name)
    series = services.statistics.series(name, window)
    body: dict[str, Any] = {
        "virtual_service": series.virtual_service,
        "window": series.window,
        "step": series.step,
        "main": series.main,
        "timestamps": list(series.timestamps),
        "values": {metric: list(values) for metric, values in series.values.items()},
        "real_servers": {
            key: {metric: list(values) for metric, values in columns.items()}
            for key, columns in series.real_servers.items()
        },
    }
    return JSONResponse(body)
