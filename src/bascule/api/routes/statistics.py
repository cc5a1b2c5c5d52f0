"""/statistics: the time series the daemon samples from the status, for graphs and sparklines.

After the flow of a change (status & stats): the daemon's ``Statistics`` sampler reads the
engines' counters every ``stats_interval`` seconds; these routes read its windows back. The
virtual services are those of the current revision: one created a moment ago is listed with
empty series until its first samples, one removed is gone.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from bascule.api import documents
from bascule.api.deps import ConfigServiceDep, get_services
from bascule.api.pagination import Limit, Offset, page
from bascule.daemon.statistics import Statistics
from bascule.stats import ServiceSeries

router = APIRouter(prefix="/statistics", tags=["statistics"])

WindowName = Literal["hour", "day"]

Series = dict[str, list[float | None]]


def get_statistics(request: Request) -> Statistics:
    return get_services(request).statistics


StatisticsDep = Annotated[Statistics, Depends(get_statistics)]


class SeriesOut(BaseModel):
    """One window of a virtual service: ``timestamps`` are the starts of the buckets (Unix
    seconds, ``step`` apart, the newest last); every series has one value per timestamp,
    null where nothing was sampled. Rates are per second, ``check_duration_ms`` in ms."""

    virtual_service: str
    window: WindowName
    step: float = Field(description="Seconds per bucket: 10 (hour) or 300 (day)")
    main: str = Field(description="The rate the dashboard shows for this service")
    timestamps: list[float]
    values: Series = Field(description="The service's own series, by metric name")
    real_servers: dict[str, Series] = Field(
        description="Each real server's series, by address:port"
    )

    @classmethod
    def of(cls, series: ServiceSeries, window: WindowName) -> SeriesOut:
        return cls(
            virtual_service=series.virtual_service,
            window=window,
            step=series.step,
            main=series.main,
            timestamps=list(series.timestamps),
            values={name: list(column) for name, column in series.values.items()},
            real_servers={
                key: {name: list(column) for name, column in columns.items()}
                for key, columns in series.real_servers.items()
            },
        )


class ServiceSummaryOut(BaseModel):
    """A virtual service at a glance: its newest values and the recent main rate."""

    name: str
    main: str
    latest: dict[str, float | None] = Field(
        description="The newest 10 s bucket by metric name (empty: not sampled yet)"
    )
    sparkline: list[float] = Field(description="Up to 30 recent values of the main rate")


class SummaryOut(BaseModel):
    revision: int | None
    interval: float = Field(description="Seconds between samples (setting stats_interval)")
    items: list[ServiceSummaryOut]
    total: int
    next_offset: int | None = None


@router.get("/virtual-services", summary="Every virtual service: newest values and sparkline")
async def statistics_summary(
    config: ConfigServiceDep,
    statistics: StatisticsDep,
    limit: Limit = None,
    offset: Offset = 0,
) -> SummaryOut:
    revision, document = config.document()
    names = [vs["name"] for vs in document["virtual_services"]]
    chosen = page(names, limit=limit, offset=offset)
    return SummaryOut(
        revision=revision,
        interval=statistics.interval,
        items=[
            ServiceSummaryOut(
                name=name,
                main=statistics.main(name),
                latest=statistics.latest(name),
                sparkline=statistics.sparkline(name),
            )
            for name in chosen.items
        ],
        total=chosen.total,
        next_offset=chosen.next_offset,
    )


@router.get(
    "/virtual-services/{name}",
    summary="The time series of a virtual service and its real servers, last hour or day",
)
async def virtual_service_series(
    name: str,
    config: ConfigServiceDep,
    statistics: StatisticsDep,
    window: Annotated[
        WindowName, Query(description="hour: 10 s buckets; day: 5 min buckets")
    ] = "hour",
) -> SeriesOut:
    _, document = config.document()
    documents.virtual_service(document, name)  # NotFound for a service not in the document
    return SeriesOut.of(statistics.series(name, window), window)
