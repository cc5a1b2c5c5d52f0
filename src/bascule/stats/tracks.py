"""The time series of every virtual service and real server: readings in, graphs out.

End of the flow of a change (status & stats): the daemon's sampler (daemon/statistics.py)
turns each status report into one ``Reading`` per virtual service and real server and hands
them, with the time it read them, to ``Tracks.record``. Each tracked object keeps two windows
(``WINDOWS``): the last hour in 10 s buckets and the last day in 5 min buckets, each bucket the
mean of the samples in it (so a day bucket is the mean of the hour's samples of those five
minutes). Gauges are kept as read; counters become per-second rates (stats/rates.py, resets
handled). The tracks of one kind created in one sample are a ``Cohort`` and keep their windows
and counters column-wise (stats/ring.py's ``Rings``): a ``Track`` is its number in its cohort.
Pure: no clock, no I/O; the caller passes every timestamp.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bascule.errors import NotFound
from bascule.stats.rates import CounterRates
from bascule.stats.ring import Counts, Ring, Rings, Sampling


class Metric(enum.StrEnum):
    """The series kept for each virtual service and real server."""

    connections = "connections"  # current connections (a gauge)
    new_connections = "new_connections_per_s"
    requests = "requests_per_s"  # L7 HTTP only
    packets = "packets_per_s"  # L4 only
    bytes_in = "bytes_in_per_s"
    bytes_out = "bytes_out_per_s"
    check_duration = "check_duration_ms"  # the last health check's duration (a gauge)
    cache_hits = "cache_hits_per_s"  # L7 HTTP with a cache: requests answered from it
    cache_hit_ratio = "cache_hit_ratio"  # hits / lookups over the sample's interval


@dataclass(frozen=True, kw_only=True)
class Window:
    name: str
    step: float  # seconds per bucket
    size: int  # buckets
    max_samples: int  # the samples a bucket counts exactly (Ring)


# A bucket counts 255 samples exactly (one byte a slot): a sample every 40 ms or more in a 10 s
# bucket, every 1.2 s or more in a 5 min one (the default interval is 10 s; past 255 a bucket's
# mean weighs each new sample 1/255); the sampler skips ticks rather than catching up in a
# burst (daemon/statistics.py).
HOUR = Window(name="hour", step=10.0, size=360, max_samples=0xFF)
DAY = Window(name="day", step=300.0, size=288, max_samples=0xFF)
WINDOWS: Mapping[str, Window] = {w.name: w for w in (HOUR, DAY)}

SPARKLINE_POINTS = 30  # five minutes of the hour window


_METRICS: dict[tuple[Metric, ...], tuple[Metric, ...]] = {}


@dataclass(frozen=True, kw_only=True)
class Reading:
    """One object's numbers at one moment; ``None`` where a number does not apply (requests
    for L4 and non-HTTP services, packets for L7) or is not known (no health check yet)."""

    current_connections: int
    total_connections: int
    bytes_in: int
    bytes_out: int
    total_requests: int | None = None
    packets: int | None = None
    check_duration_ms: float | None = None
    # an HTTP service's own reading (not its real servers'): it has the cache's series, kept
    # whether or not it has a cache, so that a cache's first lookup (or a cache added) does
    # not start the service's history afresh; the counters: None when none was read
    cacheable: bool = False
    cache_lookups: int | None = None
    cache_hits: int | None = None

    def metrics(self) -> tuple[Metric, ...]:
        """The series of the object."""
        kept = [Metric.connections, Metric.new_connections]
        if self.total_requests is not None:
            kept.append(Metric.requests)
        if self.packets is not None:
            kept.append(Metric.packets)
        kept += [Metric.bytes_in, Metric.bytes_out, Metric.check_duration]
        if self.cacheable:
            kept += [Metric.cache_hits, Metric.cache_hit_ratio]
        metrics = tuple(kept)
        # one tuple for every track of the same kind (10,000 real servers keep one each)
        return _METRICS.setdefault(metrics, metrics)


@dataclass(frozen=True, kw_only=True)
class ServiceReading:
    """A virtual service's reading and its real servers' readings, by ``address:port``."""

    own: Reading
    real_servers: Mapping[str, Reading] = field(default_factory=dict)

    @property
    def main(self) -> Metric:
        """The rate the dashboard shows: requests/s for HTTP, new connections/s otherwise."""
        return Metric.requests if self.own.total_requests is not None else Metric.new_connections


Columns = Mapping[str, tuple[float | None, ...]]


@dataclass(frozen=True, kw_only=True)
class ServiceSeries:
    """A window of one virtual service: bucket start times (Unix seconds), the service's own
    series by metric name, and each real server's, by ``address:port``."""

    virtual_service: str
    window: str
    step: float
    main: str
    timestamps: tuple[float, ...]
    values: Columns
    real_servers: Mapping[str, Columns]


class Cohort:
    """The tracks of one kind (``metrics``) created in one sample of ``Tracks``, column-wise:
    each of them is given every sample after it (or forgotten), so they count the same samples
    and keep their hour, their day and their counters' last readings in a few arrays for all of
    them (``Rings``, ``CounterRates``), not in objects per track (issue 15: 10,000 real servers
    without traffic held 13 MiB of them)."""

    __slots__ = ("day", "hour", "metrics", "rates")

    def __init__(self, metrics: tuple[Metric, ...], counts: SampleCounts | None = None) -> None:
        """``counts``: the sample counts of the hour and the day of every cohort of one sample;
        by default the cohort keeps its own."""
        self.metrics = metrics
        hour, day = (None, None) if counts is None else (counts.hour, counts.day)
        self.hour = Rings(
            step=HOUR.step,
            size=HOUR.size,
            metrics=metrics,
            max_samples=HOUR.max_samples,
            counts=hour,
        )
        self.day = Rings(
            step=DAY.step, size=DAY.size, metrics=metrics, max_samples=DAY.max_samples, counts=day
        )
        self.rates = CounterRates()

    def new_track(self) -> int:
        """A new track's number in the hour, the day and the rates."""
        self.day.new_track()
        return self.hour.new_track()


class SampleCounts:
    """The sample counts of the hour and the day of the tracks created in one sample (their
    cohorts, whatever their kind): one array of counts per window for all of them, not one per
    track (issue 15: 9 MiB at 10,000 real servers)."""

    __slots__ = ("day", "hour")

    def __init__(self, sampling: Sampling) -> None:
        self.hour = Counts(size=HOUR.size, max_samples=HOUR.max_samples, sampling=sampling)
        self.day = Counts(size=DAY.size, max_samples=DAY.max_samples, sampling=sampling)


CohortOf = Callable[[tuple[Metric, ...]], Cohort]
"""The cohort of the tracks of a kind created in the current sample (``Tracks``)."""


class Track:
    """The two windows of one virtual service or real server: its number in its cohort."""

    __slots__ = ("_cohort", "_number")

    def __init__(self, metrics: tuple[Metric, ...], *, cohort: Cohort | None = None) -> None:
        """``cohort``: that of the tracks of ``metrics`` created in this sample; by default the
        track is alone in its own."""
        if cohort is None:
            cohort = Cohort(metrics)
        elif cohort.metrics != metrics:
            raise ValueError("a track's cohort keeps the track's metrics")
        self._cohort = cohort
        self._number = cohort.new_track()

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return self._cohort.metrics

    @property
    def hour(self) -> Ring:
        return Ring.of(self._cohort.hour, self._number)

    @property
    def day(self) -> Ring:
        return Ring.of(self._cohort.day, self._number)

    def ring(self, window: str) -> Ring:
        """The ring of ``window`` (a name of ``WINDOWS``)."""
        return self.hour if window == HOUR.name else self.day

    def record(self, timestamp: float, reading: Reading) -> None:
        rates, number = self._cohort.rates, self._number

        def rate(name: str, total: int) -> float | None:
            return rates.update(name, timestamp, total, number)

        values: dict[str, float | None] = {
            Metric.connections: float(reading.current_connections),
            Metric.new_connections: rate("connections", reading.total_connections),
            Metric.bytes_in: rate("bytes_in", reading.bytes_in),
            Metric.bytes_out: rate("bytes_out", reading.bytes_out),
            Metric.check_duration: reading.check_duration_ms,
        }
        if reading.total_requests is not None:
            values[Metric.requests] = rate("requests", reading.total_requests)
        if reading.packets is not None:
            values[Metric.packets] = rate("packets", reading.packets)
        if reading.cache_lookups is not None and reading.cache_hits is not None:
            lookups = rate("cache_lookups", reading.cache_lookups)
            hits = values[Metric.cache_hits] = rate("cache_hits", reading.cache_hits)
            if lookups and hits is not None:
                values[Metric.cache_hit_ratio] = min(1.0, hits / lookups)
        self._cohort.hour.add(self._number, timestamp, values)
        self._cohort.day.add(self._number, timestamp, values)

    def forget(self) -> None:
        """Give the track's means back to its cohort: it is recorded and read no more."""
        self._cohort.hour.forget(self._number)
        self._cohort.day.forget(self._number)


class ServiceTrack:
    """A virtual service's track and its real servers' tracks."""

    def __init__(self, reading: ServiceReading, cohorts: CohortOf = Cohort) -> None:
        """``cohorts``: those of the tracks created in this sample (``Tracks``); by default
        each track is alone in its own."""
        self.main = reading.main
        metrics = reading.own.metrics()
        self.own = Track(metrics, cohort=cohorts(metrics))
        self.real_servers: dict[str, Track] = {}

    def fits(self, reading: ServiceReading) -> bool:
        """False when the service changed kind (L7 to L4, HTTP to generic): start afresh."""
        return reading.main is self.main and reading.own.metrics() == self.own.metrics

    def record(self, timestamp: float, reading: ServiceReading, cohorts: CohortOf = Cohort) -> None:
        """``cohorts``: those of the tracks created in this sample (``Tracks``)."""
        self.own.record(timestamp, reading.own)
        for key in set(self.real_servers) - set(reading.real_servers):
            # removed from the service: its history goes with it
            self.real_servers.pop(key).forget()
        for key, server in reading.real_servers.items():
            track = self.real_servers.get(key)
            metrics = server.metrics()
            if track is None or track.metrics != metrics:
                if track is not None:
                    track.forget()
                track = self.real_servers[key] = Track(metrics, cohort=cohorts(metrics))
            track.record(timestamp, server)

    def forget(self) -> None:
        """Give every track's means back to its cohort."""
        self.own.forget()
        for track in self.real_servers.values():
            track.forget()


class Tracks:
    """Every virtual service's track, by name; what the sampler records and the API reads."""

    def __init__(self) -> None:
        self._services: dict[str, ServiceTrack] = {}
        self._sampling = Sampling()
        # the cohorts of the tracks created in the current sample, by kind, and their counts
        self._cohorts: dict[tuple[Metric, ...], Cohort] = {}
        self._counts: SampleCounts | None = None

    def __contains__(self, name: object) -> bool:
        return name in self._services

    def names(self) -> list[str]:
        return sorted(self._services)

    def record(self, timestamp: float, readings: Mapping[str, ServiceReading]) -> None:
        """One sample of every virtual service; services no longer read are forgotten."""
        for name in set(self._services) - set(readings):
            self._services.pop(name).forget()
        self._sampling.next()
        self._cohorts, self._counts = {}, None
        for name, reading in readings.items():
            track = self._services.get(name)
            if track is None or not track.fits(reading):
                if track is not None:
                    track.forget()
                track = self._services[name] = ServiceTrack(reading, self._cohort)
            track.record(timestamp, reading, self._cohort)
        self._cohorts, self._counts = {}, None

    def _cohort(self, metrics: tuple[Metric, ...]) -> Cohort:
        """The cohort of the tracks of ``metrics`` created in this sample."""
        cohort = self._cohorts.get(metrics)
        if cohort is None:
            if self._counts is None:
                self._counts = SampleCounts(self._sampling)
            cohort = self._cohorts[metrics] = Cohort(metrics, self._counts)
        return cohort

    def series(self, name: str, window: str, *, until: float) -> ServiceSeries:
        """The ``window`` ending at ``until``; a service not sampled yet has empty columns.

        Raises NotFound for a window other than ``WINDOWS``.
        """
        shape = WINDOWS.get(window)
        if shape is None:
            raise NotFound(f"there is no statistics window {window!r} (hour or day)")
        track = self._services.get(name)
        if track is None:
            last = math.floor(until / shape.step)
            stamps = tuple((last - shape.size + 1 + i) * shape.step for i in range(shape.size))
            return ServiceSeries(
                virtual_service=name,
                window=window,
                step=shape.step,
                main=Metric.new_connections.value,
                timestamps=stamps,
                values={},
                real_servers={},
            )
        own = track.own.ring(window).points(until)
        return ServiceSeries(
            virtual_service=name,
            window=window,
            step=shape.step,
            main=track.main.value,
            timestamps=own.timestamps,
            values=own.values,
            real_servers={
                key: server.ring(window).points(until).values
                for key, server in sorted(track.real_servers.items())
            },
        )

    def sparkline(self, name: str, *, until: float, points: int = SPARKLINE_POINTS) -> list[float]:
        """The last ``points`` values of the service's main rate (hour window), oldest first;
        empty while the service has no rate yet."""
        track = self._services.get(name)
        if track is None:
            return []
        return track.own.hour.last(track.main, points, until)

    def main(self, name: str) -> str:
        track = self._services.get(name)
        return (track.main if track else Metric.new_connections).value

    def latest(self, name: str) -> dict[str, float | None]:
        """The newest hour bucket of the service, by metric name (empty: never sampled)."""
        track = self._services.get(name)
        if track is None:
            return {}
        ring = track.own.hour
        return {metric.value: ring.latest(metric) for metric in track.own.metrics}
