"""``Statistics``: the daemon's sampler of the status into time series, and what reads them.

The last step of the flow of a change (status & stats): every ``interval`` seconds (setting
``stats_interval``, 10 by default) the sampler asks the service layer for its status (the
engines' counters and health), turns each virtual service and real server into a
``stats.Reading`` and records it in ``stats.Tracks`` (pure: rings, rates, counter resets), in
a worker thread so that requests are not held behind it.
The API (``/api/v1/statistics``), the WUI's graphs and dashboard sparklines read the windows
back through ``series``, ``sparkline`` and ``latest``. Everything is in memory: a restart
starts the graphs afresh, as LoadMaster's do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import statistics as mean_of
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bascule.daemon.results import RealServerStatus, StatusReport, VirtualServiceStatus
from bascule.errors import BasculeError
from bascule.stats import (
    SPARKLINE_POINTS,
    Reading,
    ServiceReading,
    ServiceSeries,
    Tracks,
)

log = logging.getLogger("bascule.statistics")

StatusSource = Callable[[], Awaitable[StatusReport]]
"""Where the sampler reads the status: ``ConfigService.status`` in the daemon."""

DEFAULT_INTERVAL = 10.0


class Statistics:
    """The time series of every virtual service and real server, sampled from the status."""

    def __init__(
        self,
        source: StatusSource,
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.time,
        after_sample: Callable[[], object] | None = None,
    ) -> None:
        """``after_sample``: run in a worker thread after each sample (the daemon gives the
        memory its status report freed back to the system, daemon/heap.py)."""
        if interval <= 0:
            raise ValueError("the statistics interval must be positive")
        self._source = source
        self.interval = interval
        self._clock = clock
        self._after_sample = after_sample
        self._tracks = Tracks()
        # a sample is recorded in a worker thread (80-150 ms of Python at 10,000 real
        # servers, which held every request on the event loop behind it); the readers wait
        # for a whole sample: a window half recorded would mix two samples
        self._lock = threading.Lock()
        self.samples = 0  # how many samples were recorded, for tests and the System page

    # -- sampling -------------------------------------------------------------------------------

    async def sample(self) -> None:
        """Read the status once and record it."""
        report = await self._source()
        await asyncio.to_thread(self.record, report, self._clock())
        del report
        if self._after_sample is not None:
            await asyncio.to_thread(self._after_sample)

    def record(self, report: StatusReport, timestamp: float) -> None:
        """Record one status report read at ``timestamp`` (Unix seconds); the sampler calls
        it in a worker thread."""
        caches: Mapping[str, Mapping[str, Any]] = (report.engine.get("haproxy") or {}).get(
            "caches"
        ) or {}
        readings = {vs.name: reading(vs, caches.get(vs.name)) for vs in report.virtual_services}
        with self._lock:
            self._tracks.record(timestamp, readings)
            self.samples += 1

    async def run(self) -> None:
        """Sample every ``interval`` seconds until cancelled; a failed read is logged and
        leaves a gap in the graphs."""
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            try:
                await self.sample()
            except (BasculeError, OSError) as exc:
                log.warning("statistics sample failed", extra={"error": str(exc)})
            next_tick += self.interval
            # A slow read skips ticks rather than sampling in a burst to catch up.
            while next_tick <= loop.time():
                next_tick += self.interval
            await asyncio.sleep(next_tick - loop.time())

    # -- reading --------------------------------------------------------------------------------

    def series(self, vs: str, window: str) -> ServiceSeries:
        """The ``hour`` or ``day`` window of ``vs`` up to now (NotFound for another window)."""
        with self._lock:
            return self._tracks.series(vs, window, until=self._clock())

    def sparkline(self, vs: str) -> list[float]:
        """The last values of the main rate of ``vs``: requests/s for L7 HTTP services, new
        connections/s otherwise (see ``main``)."""
        with self._lock:
            return self._tracks.sparkline(vs, until=self._clock(), points=SPARKLINE_POINTS)

    def main(self, vs: str) -> str:
        """The name of the main rate of ``vs`` (``requests_per_s`` or
        ``new_connections_per_s``)."""
        with self._lock:
            return self._tracks.main(vs)

    def latest(self, vs: str) -> dict[str, float | None]:
        """The newest value of every series of ``vs`` by metric name (empty: not sampled)."""
        with self._lock:
            return self._tracks.latest(vs)

    def names(self) -> list[str]:
        """The virtual services sampled so far."""
        with self._lock:
            return self._tracks.names()


def counts_requests(vs: VirtualServiceStatus) -> bool:
    """HTTP requests are counted by HAProxy for L7 services of type http only."""
    return vs.mode == "l7" and vs.type == "http"


def reading(vs: VirtualServiceStatus, cache: Mapping[str, Any] | None = None) -> ServiceReading:
    """A virtual service's status as numbers: the service's own counters (its front end) and
    its real servers'; the service's check duration is the mean of its servers' last checks."""
    requests = counts_requests(vs)
    packets = vs.mode == "l4"
    durations = [s.check_duration_ms for s in vs.real_servers if s.check_duration_ms is not None]
    own = _reading(vs, requests, packets, mean_of.fmean(durations) if durations else None)
    if requests:  # the service's cache, if any (HAProxy's counters)
        own = dataclasses.replace(
            own,
            cacheable=True,
            cache_lookups=None if cache is None else int(cache.get("lookups", 0)),
            cache_hits=None if cache is None else int(cache.get("hits", 0)),
        )
    return ServiceReading(
        own=own,
        real_servers={
            s.key: _reading(s, requests, packets, s.check_duration_ms) for s in vs.real_servers
        },
    )


def _reading(
    status: VirtualServiceStatus | RealServerStatus,
    requests: bool,
    packets: bool,
    check_duration_ms: float | None,
) -> Reading:
    """The counters of a service's or a real server's status; requests and packets only where
    the engine counts them."""
    return Reading(
        current_connections=status.current_connections,
        total_connections=status.total_connections,
        bytes_in=status.bytes_in,
        bytes_out=status.bytes_out,
        total_requests=status.total_requests if requests else None,
        packets=status.packets if packets else None,
        check_duration_ms=None if check_duration_ms is None else float(check_duration_ms),
    )
