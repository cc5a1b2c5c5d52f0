"""A ring of fixed time buckets holding the mean of the samples that fell in each.

The storage of the time series at the end of the flow of a change (status & stats): the daemon's
sampler reads the engines every few seconds and adds one sample per virtual service and real
server; each window (an hour of 10 s buckets, a day of 5 min buckets) is a ``Ring``. Pure: the
caller passes every timestamp, nothing here reads the clock.

Memory is what the values need, in compact arrays (issue 15: 10,000 real servers in a daemon
under 150 MB). A ring holds the number of its newest bucket and one ``array`` of sample counts
per slot (one byte each when a bucket counts at most 255 samples, ``max_samples``, else two):
the slots between the newest bucket and a newer one are cleared when time moves on, so no slot
needs to say which bucket it holds; a slot without a sample is a gap (``None``). Each metric's
means (single-precision floats) are allocated at its first value other than zero: a server
without traffic or a service without checks keeps no column at all (1 or 2 bytes per bucket for
the ring, against 80 before). A metric's first bucket with a value is remembered (one array for
the ring's metrics): every sample before it had none (a rate's first reading, an unchecked
server's check time); the samples after it without a value are counted per slot in a small
dict, made at the first; a metric that never had a value reads as gaps.

The sample counts may be shared (``Counts``): rings that are given exactly the same samples
(the tracks created in one sample and recorded at every sample after it, stats/tracks.py) have
the same counts, kept once for all of them instead of once per ring (issue 15: 10,000 real
servers held 9 MiB of identical counts).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_EMPTY = -1
# a metric without a value yet, in ``_since``
_NO_VALUE = -(2**63)
# each metrics tuple's positions, shared by every ring of those metrics
_POSITIONS: dict[tuple[str, ...], dict[str, int]] = {}
# the largest count of a slot: a running mean past it weighs new samples 1/max_samples
_MAX_COUNT = 0xFFFF


@dataclass(frozen=True, kw_only=True)
class Points:
    """What a ring holds between two times: bucket start times and one column per metric."""

    timestamps: tuple[float, ...]
    values: Mapping[str, tuple[float | None, ...]]


class Sampling:
    """Which sample is being recorded: ``next()`` before each sample given to every ring of
    the ``Counts`` that follow it (``Tracks.record``)."""

    __slots__ = ("number",)

    def __init__(self) -> None:
        self.number = 0

    def next(self) -> None:
        self.number += 1


class Counts:
    """The sample counts of the slots of one ring, or of every ring that shares them.

    Shared (``sampling`` given): every ring sharing them is given one sample per ``sampling``
    number, of the same timestamp, and the first of them to add it counts it for all; a ring
    created later than the others, or given other samples, needs counts of its own."""

    __slots__ = ("_before", "_counted", "_max", "_sampling", "newest", "samples", "size")

    def __init__(self, *, size: int, max_samples: int, sampling: Sampling | None = None) -> None:
        width = 1 if max_samples <= 0xFF else 2
        self.samples = array("B" if width == 1 else "H", bytes(width * size))
        self.size = size
        self.newest = _EMPTY
        self._max = max_samples
        self._sampling = sampling
        self._counted = -1  # the sampling number counted last
        self._before = 0  # its slot's count before it

    def count(self, bucket: int) -> int:
        """Count a sample of ``bucket`` (once per sampling number when shared); its slot's
        count before it."""
        if self._sampling is not None:
            if self._sampling.number == self._counted:
                return self._before
            self._counted = self._sampling.number
        if bucket > self.newest:
            _clear(self.samples, self.newest, bucket, self.size)
            self.newest = bucket
        slot = bucket % self.size
        before = self.samples[slot]
        if before == self._max:
            before -= 1  # saturated: keep weighing new samples in
        self.samples[slot] = before + 1
        self._before = before
        return before


def _clear(samples: array[int], newest: int, bucket: int, size: int) -> None:
    """Clear the slots of the buckets after ``newest`` up to ``bucket``: gaps until counted."""
    first = bucket - size + 1 if newest == _EMPTY else newest + 1
    for cleared in range(max(first, bucket - size + 1), bucket + 1):
        samples[cleared % size] = 0


class Ring:
    """``size`` buckets of ``step`` seconds; bucket ``n`` covers ``[n * step, (n+1) * step)``."""

    __slots__ = (
        "_counts",
        "_max",
        "_means",
        "_missing",
        "_newest",
        "_positions",
        "_samples",
        "_since",
        "metrics",
        "size",
        "step",
    )

    def __init__(
        self,
        *,
        step: float,
        size: int,
        metrics: Iterable[str],
        max_samples: int = _MAX_COUNT,
        counts: Counts | None = None,
    ) -> None:
        """``max_samples``: the samples a bucket counts exactly (at most 65,535); 255 or less
        keeps one byte per slot instead of two. ``counts``: the sample counts shared with other
        rings of the same ``size`` and ``max_samples`` that are given the same timestamps
        (``Counts``); by default the ring keeps its own."""
        if step <= 0 or size <= 0:
            raise ValueError("a ring needs a positive step and size")
        if not 0 < max_samples <= _MAX_COUNT:
            raise ValueError(f"a ring counts 1 to {_MAX_COUNT} samples a bucket")
        self.step = step
        self.size = size
        self.metrics = tuple(metrics)
        self._positions = _POSITIONS.setdefault(
            self.metrics, {metric: i for i, metric in enumerate(self.metrics)}
        )
        self._newest = _EMPTY
        self._max = max_samples
        if counts is None:
            counts = Counts(size=size, max_samples=max_samples)
        elif counts.size != size or counts._max != max_samples:
            raise ValueError("shared counts must have the ring's size and max_samples")
        self._counts = counts
        self._samples = counts.samples
        # per metric, only once needed (None: no metric needs one yet): its means (at its first
        # value other than zero); the samples of the buckets after its first value without
        # one, by slot
        self._means: dict[str, array[float]] | None = None
        self._missing: dict[str, dict[int, int]] | None = None
        # per metric (by position), its first bucket with a value (_NO_VALUE: none yet) and
        # the samples of that bucket before it: one array, not a dict of tuples (10,000 real
        # servers have 100,000 of them)
        self._since = array("q", (_NO_VALUE, 0) * len(self.metrics))

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
        if bucket > self._newest:
            self._advance(bucket)
        slot = bucket % self.size
        samples = self._counts.count(bucket)
        for metric in self.metrics:
            value = values.get(metric)
            if value is None or math.isnan(value) or math.isinf(value):
                since = self._first(metric)
                if since is not None and bucket >= since[0]:  # before it: none implied
                    missing = self._missing_of(metric)
                    missing[slot] = missing.get(slot, 0) + 1
                continue
            since = self._first(metric)
            if since is None:
                # the metric's first value; the samples of any newer bucket (this one is
                # late) had none
                self._set_first(metric, bucket, samples)
                self._without(metric, bucket + 1, self._newest)
            elif bucket < since[0]:
                # a late value before the first one: the buckets since then had none
                first, before = since
                self._without(metric, bucket + 1, first - 1)
                if before:
                    missing = self._missing_of(metric)
                    missing[first % self.size] = missing.get(first % self.size, 0) + before
                self._set_first(metric, bucket, samples)
            count = self._count(metric, slot, bucket)
            means = self._means.get(metric) if self._means is not None else None
            if means is None:
                if value == 0:
                    continue  # still all zeros: nothing to keep
                if self._means is None:
                    self._means = {}
                means = self._means[metric] = array("f", bytes(4 * self.size))
            mean = means[slot] if count > 1 else 0.0
            # A running mean: one slot per bucket whatever the number of samples in it.
            means[slot] = mean + (value - mean) / count

    def _first(self, metric: str) -> tuple[int, int] | None:
        """The metric's first bucket with a value and the samples of that bucket before it;
        None while it has had none (or the ring does not know it)."""
        position = self._positions.get(metric)
        if position is None or self._since[2 * position] == _NO_VALUE:
            return None
        return self._since[2 * position], self._since[2 * position + 1]

    def _set_first(self, metric: str, bucket: int, samples: int) -> None:
        position = self._positions[metric]
        self._since[2 * position] = bucket
        self._since[2 * position + 1] = samples

    def _missing_of(self, metric: str) -> dict[int, int]:
        """The samples without ``metric`` by slot, made at the first."""
        if self._missing is None:
            self._missing = {}
        return self._missing.setdefault(metric, {})

    def _without(self, metric: str, first: int, last: int) -> None:
        """Count every sample of the buckets ``first`` to ``last`` as without ``metric``."""
        for bucket in range(first, last + 1):
            slot = bucket % self.size
            if self._samples[slot]:
                missing = self._missing_of(metric)
                missing[slot] = missing.get(slot, 0) + self._samples[slot]

    def _count(self, metric: str, slot: int, bucket: int) -> int:
        """The samples of ``bucket`` (in ``slot``) with a value of ``metric``."""
        since = self._first(metric)
        if since is None or bucket < since[0]:
            return 0
        missing = self._missing.get(metric) if self._missing is not None else None
        count = self._samples[slot] - (missing.get(slot, 0) if missing else 0)
        return count - since[1] if bucket == since[0] else count

    def _advance(self, bucket: int) -> None:
        """Make ``bucket`` the newest: the slots of the buckets skipped on the way are gaps."""
        if self._missing is not None:  # the counts' slots are cleared by ``Counts``
            first = bucket - self.size + 1 if self._newest == _EMPTY else self._newest + 1
            for cleared in range(max(first, bucket - self.size + 1), bucket + 1):
                slot = cleared % self.size
                for metric, missing in list(self._missing.items()):
                    missing.pop(slot, None)
                    if not missing:
                        del self._missing[metric]
        self._newest = bucket

    def points(self, until: float | None = None) -> Points:
        """Every bucket of the window that ends with the bucket of ``until`` (default: the
        newest sample), oldest first; buckets without a sample are ``None``."""
        last = self.bucket(until) if until is not None else self._newest
        if last == _EMPTY:
            return Points(timestamps=(), values={m: () for m in self.metrics})
        buckets = range(last - self.size + 1, last + 1)
        slots = [self._slot(b) for b in buckets]
        return Points(
            timestamps=tuple(b * self.step for b in buckets),
            values={m: self._column(m, slots, buckets) for m in self.metrics},
        )

    def _slot(self, bucket: int) -> int | None:
        """The slot holding ``bucket``, None when no sample fell in it (or it is out of reach)."""
        if bucket > self._newest or bucket <= self._newest - self.size:
            return None
        slot = bucket % self.size
        return slot if self._samples[slot] else None

    def last(self, metric: str, count: int, until: float | None = None) -> list[float]:
        """The values of ``metric`` in the last ``count`` buckets that have one, oldest first."""
        column = self.points(until).values.get(metric, ())
        present = [v for v in column if v is not None]
        return present[-count:] if count > 0 else []

    def latest(self, metric: str) -> float | None:
        """The newest bucket's value of ``metric``."""
        if self._newest == _EMPTY or metric not in self.metrics:
            return None
        return self._value(metric, self._newest % self.size, self._newest)

    def _column(
        self, metric: str, slots: list[int | None], buckets: range
    ) -> tuple[float | None, ...]:
        return tuple(
            None if slot is None else self._value(metric, slot, bucket)
            for slot, bucket in zip(slots, buckets, strict=True)
        )

    def _value(self, metric: str, slot: int, bucket: int) -> float | None:
        if self._count(metric, slot, bucket) <= 0:
            return None
        means = self._means.get(metric) if self._means is not None else None
        return 0.0 if means is None else means[slot]

    def nbytes(self) -> int:
        """The bytes of the ring's arrays (its objects aside), its sample counts included
        even when shared with other rings (``Counts``)."""
        return (
            self._samples.itemsize * self.size
            + self._since.itemsize * len(self._since)
            + sum(means.itemsize * self.size for means in (self._means or {}).values())
        )
