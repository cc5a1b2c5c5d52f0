"""A ring of fixed time buckets holding the mean of the samples that fell in each.

The storage of the time series at the end of the flow of a change (status & stats): the daemon's
sampler reads the engines every few seconds and adds one sample per virtual service and real
server; each window (an hour of 10 s buckets, a day of 5 min buckets) is a ``Ring``. Pure: the
caller passes every timestamp, nothing here reads the clock.

Memory is bounded and allocated once: one ``array`` of single-precision floats per metric
(NaN marks a bucket without a value) plus the bucket number each slot holds, so 200 virtual
services of 10 real servers each cost a few tens of megabytes for both windows. A slot is
reused when time comes round to it; a bucket the sampler missed reads as a gap (``None``).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_EMPTY = -1


@dataclass(frozen=True, kw_only=True)
class Points:
    """What a ring holds between two times: bucket start times and one column per metric."""

    timestamps: tuple[float, ...]
    values: Mapping[str, tuple[float | None, ...]]


class Ring:
    """``size`` buckets of ``step`` seconds; bucket ``n`` covers ``[n * step, (n+1) * step)``."""

    def __init__(self, *, step: float, size: int, metrics: Iterable[str]) -> None:
        if step <= 0 or size <= 0:
            raise ValueError("a ring needs a positive step and size")
        self.step = step
        self.size = size
        self.metrics = tuple(metrics)
        self._buckets = array("q", [_EMPTY]) * size
        self._newest = _EMPTY
        self._means = {m: array("f", [math.nan]) * size for m in self.metrics}
        self._counts = {m: array("L", [0]) * size for m in self.metrics}

    def bucket(self, timestamp: float) -> int:
        return math.floor(timestamp / self.step)

    @property
    def newest(self) -> int | None:
        """The newest bucket that holds a sample, None while the ring is empty."""
        return None if self._newest == _EMPTY else self._newest

    def add(self, timestamp: float, values: Mapping[str, float | None]) -> None:
        """Fold one sample into its bucket; ``None`` (or NaN) is no value for that metric.

        A sample older than the ring reaches is dropped; metrics the ring does not know are
        ignored.
        """
        bucket = self.bucket(timestamp)
        if self._newest != _EMPTY and bucket <= self._newest - self.size:
            return
        slot = bucket % self.size
        if self._buckets[slot] != bucket:
            self._buckets[slot] = bucket
            for metric in self.metrics:
                self._means[metric][slot] = math.nan
                self._counts[metric][slot] = 0
        self._newest = max(self._newest, bucket)
        for metric in self.metrics:
            value = values.get(metric)
            if value is None or math.isnan(value) or math.isinf(value):
                continue
            count = self._counts[metric][slot] + 1
            mean = self._means[metric][slot]
            # A running mean: one slot per bucket whatever the number of samples in it.
            self._means[metric][slot] = value if count == 1 else mean + (value - mean) / count
            self._counts[metric][slot] = count

    def points(self, until: float | None = None) -> Points:
        """Every bucket of the window that ends with the bucket of ``until`` (default: the
        newest sample), oldest first; buckets without a sample are ``None``."""
        last = self.bucket(until) if until is not None else self._newest
        if last == _EMPTY:
            return Points(timestamps=(), values={m: () for m in self.metrics})
        buckets = range(last - self.size + 1, last + 1)
        slots = [b % self.size if self._buckets[b % self.size] == b else None for b in buckets]
        return Points(
            timestamps=tuple(b * self.step for b in buckets),
            values={m: self._column(m, slots) for m in self.metrics},
        )

    def last(self, metric: str, count: int, until: float | None = None) -> list[float]:
        """The values of ``metric`` in the last ``count`` buckets that have one, oldest first."""
        column = self.points(until).values.get(metric, ())
        present = [v for v in column if v is not None]
        return present[-count:] if count > 0 else []

    def latest(self, metric: str) -> float | None:
        """The newest bucket's value of ``metric``."""
        if self._newest == _EMPTY or metric not in self._means:
            return None
        return _value(self._means[metric][self._newest % self.size])

    def _column(self, metric: str, slots: list[int | None]) -> tuple[float | None, ...]:
        means = self._means[metric]
        return tuple(None if slot is None else _value(means[slot]) for slot in slots)


def _value(stored: float) -> float | None:
    return None if math.isnan(stored) else stored
