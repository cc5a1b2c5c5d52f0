"""The time series of every virtual service and real server: readings in, graphs out.

End of the flow of a change (status & stats): the daemon's sampler (daemon/statistics.py)
turns each status report into one ``Reading`` per virtual service and real server and hands
them, with the time it read them, to ``Tracks.record``. Each tracked object keeps two windows
(``WINDOWS``): the last hour in 10 s buckets and the last day in 5 min buckets, each bucket the
mean of the samples in it (so a day bucket is the mean of the hour's samples of those five
minutes). Gauges are kept as read; counters become per-second rates (stats/rates.py, resets
handled). Pure: no clock, no I/O; the caller passes every timestamp.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from bascule.errors import NotFound
from bascule.stats.rates import CounterRates
from bascule.stats.ring import Counts, Ring, Sampling


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


class Track:
    """The two windows of one virtual service or real server."""

    # the two rings in slots, not a dict by window name: 11,000 tracks kept 11,000 dicts
    __slots__ = ("_rates", "day", "hour", "metrics")

    def __init__(self, metrics: tuple[Metric, ...], *, counts: Cohort | None = None) -> None:
        """``counts``: the sample counts of the hour and the day shared with the other tracks
        of a ``Cohort``; by default the track keeps its own."""
        self.metrics = metrics
        hour, day = (None, None) if counts is None else (counts.hour, counts.day)
        self.hour = Ring(
            step=HOUR.step,
            size=HOUR.size,
            metrics=metrics,
            max_samples=HOUR.max_samples,
            counts=hour,
        )
        self.day = Ring(
            step=DAY.step, size=DAY.size, metrics=metrics, max_samples=DAY.max_samples, counts=day
        )
        self._rates = CounterRates()

    def ring(self, window: str) -> Ring:
        """The ring of ``window`` (a name of ``WINDOWS``)."""
        return self.hour if window == HOUR.name else self.day

    def record(self, timestamp: float, reading: Reading) -> None:
        rate = self._rates.update
        values: dict[str, float | None] = {
            Metric.connections: float(reading.current_connections),
            Metric.new_connections: rate("connections", timestamp, reading.total_connections),
            Metric.bytes_in: rate("bytes_in", timestamp, reading.bytes_in),
            Metric.bytes_out: rate("bytes_out", timestamp, reading.bytes_out),
            Metric.check_duration: reading.check_duration_ms,
        }
        if reading.total_requests is not None:
            values[Metric.requests] = rate("requests", timestamp, reading.total_requests)
        if reading.packets is not None:
            values[Metric.packets] = rate("packets", timestamp, reading.packets)
        if reading.cache_lookups is not None and reading.cache_hits is not None:
            lookups = rate("cache_lookups", timestamp, reading.cache_lookups)
            hits = values[Metric.cache_hits] = rate("cache_hits", timestamp, reading.cache_hits)
            if lookups and hits is not None:
                values[Metric.cache_hit_ratio] = min(1.0, hits / lookups)
        self.hour.add(timestamp, values)
        self.day.add(timestamp, values)


class Cohort:
    """The sample counts of the tracks created in one sample of ``Tracks``: each of them is
    given every sample after it (or forgotten), so they all count the same samples; one array
    of counts per window for all of them, not one per track (issue 15: 9 MiB at 10,000 real
    servers)."""

    __slots__ = ("day", "hour", "number")

    def __init__(self, sampling: Sampling) -> None:
        self.number = sampling.number
        self.hour = Counts(size=HOUR.size, max_samples=HOUR.max_samples, sampling=sampling)
        self.day = Counts(size=DAY.size, max_samples=DAY.max_samples, sampling=sampling)


class ServiceTrack:
    """A virtual service's track and its real servers' tracks."""

    def __init__(self, reading: ServiceReading, counts: Cohort | None = None) -> None:
        self.main = reading.main
        self.own = Track(reading.own.metrics(), counts=counts)
        self.real_servers: dict[str, Track] = {}

    def fits(self, reading: ServiceReading) -> bool:
        """False when the service changed kind (L7 to L4, HTTP to generic): start afresh."""
        return reading.main is self.main and reading.own.metrics() == self.own.metrics

    def record(
        self, timestamp: float, reading: ServiceReading, counts: Cohort | None = None
    ) -> None:
        """``counts``: those of the tracks created in this sample (``Tracks``)."""
        self.own.record(timestamp, reading.own)
        for key in set(self.real_servers) - set(reading.real_servers):
            del self.real_servers[key]  # removed from the service: its history goes with it
        for key, server in reading.real_servers.items():
            track = self.real_servers.get(key)
            if track is None or track.metrics != server.metrics():
                track = self.real_servers[key] = Track(server.metrics(), counts=counts)
            track.record(timestamp, server)


class Tracks:
    """Every virtual service's track, by name; what the sampler records and the API reads."""

    def __init__(self) -> None:
        self._services: dict[str, ServiceTrack] = {}
        self._sampling = Sampling()
        self._cohort: Cohort | None = None  # of the tracks created in the current sample

    def __contains__(self, name: object) -> bool:
        return name in self._services

    def names(self) -> list[str]:
        return sorted(self._services)

    def record(self, timestamp: float, readings: Mapping[str, ServiceReading]) -> None:
        """One sample of every virtual service; services no longer read are forgotten."""
        for name in set(self._services) - set(readings):
            del self._services[name]
        self._sampling.next()
        for name, reading in readings.items():
            track = self._services.get(name)
            if track is None or not track.fits(reading):
                track = self._services[name] = ServiceTrack(reading, self._counts())
            track.record(timestamp, reading, self._counts())

    def _counts(self) -> Cohort:
        """The sample counts of the tracks created in this sample."""
        if self._cohort is None or self._cohort.number != self._sampling.number:
            self._cohort = Cohort(self._sampling)
        return self._cohort

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
