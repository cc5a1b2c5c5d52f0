"""Rings of fixed time buckets holding the mean of the samples that fell in each.

The storage of the time series at the end of the flow of a change (status & stats): the daemon's
sampler reads the engines every few seconds and adds one sample per virtual service and real
server; each window (an hour of 10 s buckets, a day of 5 min buckets) of each of them is a ring.
Pure: the caller passes every timestamp, nothing here reads the clock.

Memory is what the values need (issue 15: 10,000 real servers in a daemon under 150 MB), so
the rings of many tracks are kept column-wise: a ``Rings`` holds one window of every track
given the same samples (the tracks created in one sample, stats/tracks.py) in a few arrays for
all of them, and a ``Ring`` is one track's view of it (or a ring of its own). What a ``Rings``
holds:

- the sample counts per slot (``Counts``, one byte each when a bucket counts at most 255
  samples, ``max_samples``, else two), shared with the other windows' rings of the same
  samples; the number of the newest bucket: the slots between it and a newer one are cleared
  when time moves on, so no slot says which bucket it holds; a slot without a sample is a gap;
- per track and metric, its first bucket with a value and the samples of that bucket before it
  (one array for all): every sample before it had none (a rate's first reading, an unchecked
  server's check time);
- per track and metric, its means (one row of ``size``) from its first value other than zero,
  in pools of rows for all the tracks (a row freed by a forgotten track is reused): a server
  without traffic or a service without checks keeps no row; a row is of bytes or 16-bit
  integers while every mean it held was a whole number that fits (the hour's gauges, check
  times in whole milliseconds), then of single-precision floats (copied exactly: a whole
  number up to 65,535 is a float exactly);
- the samples after a first value that had none, per slot, in small dicts made at the first;
  a metric that never had a value reads as gaps.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_EMPTY = -1
# a metric without a value yet, in ``_first``
_NO_VALUE = -(2**63)
# each metrics tuple's positions, shared by every ring of those metrics
_POSITIONS: dict[tuple[str, ...], dict[str, int]] = {}
# the largest count of a slot: a running mean past it weighs new samples 1/max_samples
_MAX_COUNT = 0xFFFF
# a metric of a track whose values were all zeros so far, in ``Rings._rows``
_NO_ROW = -1
# The pools of rows of means, by what they hold: integers up to 255, up to 65,535, or any
# mean (single-precision floats). A row's entry in ``Rings._rows`` is ``row << 2 | kind``.
_INTEGERS_8, _INTEGERS_16, _FLOATS = 0, 1, 2
_TYPECODES = ("B", "H", "f")


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


class Rings:
    """One window of many tracks, column-wise: ``size`` buckets of ``step`` seconds each;
    bucket ``n`` covers ``[n * step, (n+1) * step)``. A track is a number (``new_track``);
    every track is given the same samples, counted once in ``counts``."""

    __slots__ = (
        "_before",
        "_counts",
        "_first",
        "_missing",
        "_newest",
        "_pools",
        "_positions",
        "_rows",
        "_samples",
        "metrics",
        "size",
        "step",
        "tracks",
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
        keeps one byte per slot instead of two. ``counts``: the sample counts shared with the
        rings of other windows of the same ``size`` and ``max_samples`` given the same
        timestamps (``Counts``); by default the rings keep their own."""
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
        if counts is None:
            counts = Counts(size=size, max_samples=max_samples)
        elif counts.size != size or counts._max != max_samples:
            raise ValueError("shared counts must have the ring's size and max_samples")
        self._counts = counts
        self._samples = counts.samples
        self._newest = _EMPTY
        self.tracks = 0
        # A track's metric is ``track * len(metrics) + position``, its "key" below.
        # Per key, its first bucket with a value (_NO_VALUE: none yet) and the samples of that
        # bucket before it (as many bytes as a count): arrays for every track, not an array (or
        # a dict of tuples) per ring (10,000 real servers have 140,000 of them)
        self._first = array("q")
        self._before = array(self._samples.typecode)
        # Per key, its row of means in a pool (_NO_ROW: all zeros so far), made at the first
        # row: a row of integers while every mean it held was one (the hour's gauges and
        # check times: one sample a bucket), then of floats
        self._rows: array[int] | None = None
        self._pools = tuple(_Pool(typecode, size) for typecode in _TYPECODES)
        # per key, once needed: the samples of the buckets after its first value without one,
        # by slot
        self._missing: dict[int, dict[int, int]] | None = None

    def bucket(self, timestamp: float) -> int:
        return math.floor(timestamp / self.step)

    @property
    def newest(self) -> int | None:
        """The newest bucket that holds a sample, None while the rings are empty."""
        return None if self._newest == _EMPTY else self._newest

    def new_track(self) -> int:
        """A new track's number: no value yet in any bucket."""
        self._first.extend(array("q", (_NO_VALUE,)) * len(self.metrics))
        self._before.frombytes(bytes(self._before.itemsize * len(self.metrics)))
        if self._rows is not None:
            self._rows.extend(array("i", (_NO_ROW,)) * len(self.metrics))
        self.tracks += 1
        return self.tracks - 1

    def forget(self, track: int) -> None:
        """Drop what ``track`` holds (its rows go back to the pool): it is given no more
        samples and read no more."""
        for key in range(track * len(self.metrics), (track + 1) * len(self.metrics)):
            self._first[key] = _NO_VALUE
            self._before[key] = 0
            entry = _NO_ROW if self._rows is None else self._rows[key]
            if entry != _NO_ROW:
                self._pools[entry & 3].free.append(entry >> 2)
                self._rows[key] = _NO_ROW  # type: ignore[index]
            if self._missing is not None:
                self._missing.pop(key, None)

    def add(self, track: int, timestamp: float, values: Mapping[str, float | None]) -> None:
        """Fold one sample of ``track`` into its bucket; ``None`` (or NaN) is no value for that
        metric.

        A sample older than the rings reach is dropped; metrics they do not know are ignored.
        """
        bucket = self.bucket(timestamp)
        if self._newest != _EMPTY and bucket <= self._newest - self.size:
            return
        if bucket > self._newest:
            self._advance(bucket)
        slot = bucket % self.size
        samples = self._counts.count(bucket)
        firsts, befores = self._first, self._before
        key = track * len(self.metrics) - 1
        for metric in self.metrics:
            key += 1
            value = values.get(metric)
            first = firsts[key]
            if value is None or math.isnan(value) or math.isinf(value):
                if first != _NO_VALUE and bucket >= first:  # before it: none implied
                    missing = self._missing_of(key)
                    missing[slot] = missing.get(slot, 0) + 1
                continue
            if first == _NO_VALUE:
                # the metric's first value; the samples of any newer bucket (this one is
                # late) had none
                firsts[key], befores[key] = bucket, samples
                self._without(key, bucket + 1, self._newest)
            elif bucket < first:
                # a late value before the first one: the buckets since then had none
                before = befores[key]
                self._without(key, bucket + 1, first - 1)
                if before:
                    missing = self._missing_of(key)
                    missing[first % self.size] = missing.get(first % self.size, 0) + before
                firsts[key], befores[key] = bucket, samples
            count = self._count(key, slot, bucket)
            entry = _NO_ROW if self._rows is None else self._rows[key]
            if entry == _NO_ROW and value == 0:
                continue  # still all zeros: nothing to keep
            mean = 0.0
            if entry != _NO_ROW and count > 1:
                mean = float(self._pools[entry & 3].values[(entry >> 2) * self.size + slot])
            # A running mean: one slot per bucket whatever the number of samples in it.
            mean += (value - mean) / count
            kind = _kind(mean)
            if entry == _NO_ROW or kind > entry & 3:
                entry = self._move(key, entry, kind)
            at = (entry >> 2) * self.size + slot
            self._pools[entry & 3].values[at] = mean if entry & 3 == _FLOATS else int(mean)

    def _move(self, key: int, entry: int, kind: int) -> int:
        """Give ``key`` a row of ``kind`` (of zeros, or of its row's means until now): its
        entry in ``_rows``."""
        if self._rows is None:
            self._rows = array("i", (_NO_ROW,)) * (self.tracks * len(self.metrics))
        pool = self._pools[kind]
        row = pool.take()
        if entry != _NO_ROW:  # a wider row: the means so far, converted exactly
            was = self._pools[entry & 3]
            start = (entry >> 2) * self.size
            means = was.values[start : start + self.size]
            pool.values[row * self.size : (row + 1) * self.size] = array(_TYPECODES[kind], means)
            was.free.append(entry >> 2)
        self._rows[key] = row << 2 | kind
        return row << 2 | kind

    def _missing_of(self, key: int) -> dict[int, int]:
        """The samples without a value of ``key`` by slot, made at the first."""
        if self._missing is None:
            self._missing = {}
        return self._missing.setdefault(key, {})

    def _without(self, key: int, first: int, last: int) -> None:
        """Count every sample of the buckets ``first`` to ``last`` as without ``key``'s value."""
        for bucket in range(first, last + 1):
            slot = bucket % self.size
            if self._samples[slot]:
                missing = self._missing_of(key)
                missing[slot] = missing.get(slot, 0) + self._samples[slot]

    def _count(self, key: int, slot: int, bucket: int) -> int:
        """The samples of ``bucket`` (in ``slot``) with a value of ``key``."""
        first = self._first[key]
        if first == _NO_VALUE or bucket < first:
            return 0
        missing = self._missing.get(key) if self._missing is not None else None
        count = self._samples[slot] - (missing.get(slot, 0) if missing else 0)
        return count - self._before[key] if bucket == first else count

    def _advance(self, bucket: int) -> None:
        """Make ``bucket`` the newest: the slots of the buckets skipped on the way are gaps."""
        if self._missing:  # the counts' slots are cleared by ``Counts``
            first = bucket - self.size + 1 if self._newest == _EMPTY else self._newest + 1
            for cleared in range(max(first, bucket - self.size + 1), bucket + 1):
                slot = cleared % self.size
                for key, missing in list(self._missing.items()):
                    missing.pop(slot, None)
                    if not missing:
                        del self._missing[key]
        self._newest = bucket

    def points(self, track: int, until: float | None = None) -> Points:
        """Every bucket of ``track``'s window that ends with the bucket of ``until`` (default:
        the newest sample), oldest first; buckets without a sample are ``None``."""
        last = self.bucket(until) if until is not None else self._newest
        if last == _EMPTY:
            return Points(timestamps=(), values={m: () for m in self.metrics})
        buckets = range(last - self.size + 1, last + 1)
        slots = [self._slot(b) for b in buckets]
        key = track * len(self.metrics)
        return Points(
            timestamps=tuple(b * self.step for b in buckets),
            values={
                m: self._column(key + position, slots, buckets)
                for position, m in enumerate(self.metrics)
            },
        )

    def _slot(self, bucket: int) -> int | None:
        """The slot holding ``bucket``, None when no sample fell in it (or it is out of reach)."""
        if bucket > self._newest or bucket <= self._newest - self.size:
            return None
        slot = bucket % self.size
        return slot if self._samples[slot] else None

    def latest(self, track: int, metric: str) -> float | None:
        """The newest bucket's value of ``track``'s ``metric``."""
        position = self._positions.get(metric)
        if self._newest == _EMPTY or position is None:
            return None
        key = track * len(self.metrics) + position
        return self._value(key, self._newest % self.size, self._newest)

    def _column(
        self, key: int, slots: list[int | None], buckets: range
    ) -> tuple[float | None, ...]:
        return tuple(
            None if slot is None else self._value(key, slot, bucket)
            for slot, bucket in zip(slots, buckets, strict=True)
        )

    def _value(self, key: int, slot: int, bucket: int) -> float | None:
        if self._count(key, slot, bucket) <= 0:
            return None
        entry = _NO_ROW if self._rows is None else self._rows[key]
        if entry == _NO_ROW:
            return 0.0
        return float(self._pools[entry & 3].values[(entry >> 2) * self.size + slot])


def _kind(mean: float) -> int:
    """The narrowest pool that holds ``mean`` exactly (its value as a single-precision float,
    as the floats' pool keeps it)."""
    if mean.is_integer() and mean >= 0:
        if mean <= 0xFF:
            return _INTEGERS_8
        if mean <= 0xFFFF:
            return _INTEGERS_16
    return _FLOATS


class _Pool:
    """Rows of ``size`` means of one type; a row given back is taken again first."""

    __slots__ = ("free", "size", "values")

    def __init__(self, typecode: str, size: int) -> None:
        self.values: array[Any] = array(typecode)  # of ints or of floats, by ``typecode``
        self.size = size
        self.free: list[int] = []

    def take(self) -> int:
        """A row of zeros."""
        zeros = bytes(self.values.itemsize * self.size)
        if self.free:
            row = self.free.pop()
            self.values[row * self.size : (row + 1) * self.size] = array(
                self.values.typecode, zeros
            )
            return row
        self.values.frombytes(zeros)
        return len(self.values) // self.size - 1


class Ring:
    """One track's window of a ``Rings``, or, built with a shape, a ring of its own."""

    __slots__ = ("_rings", "_track")

    def __init__(
        self,
        *,
        step: float,
        size: int,
        metrics: Iterable[str],
        max_samples: int = _MAX_COUNT,
        counts: Counts | None = None,
    ) -> None:
        """A ring of its own: the arguments of ``Rings``."""
        self._rings = Rings(
            step=step, size=size, metrics=metrics, max_samples=max_samples, counts=counts
        )
        self._track = self._rings.new_track()

    @classmethod
    def of(cls, rings: Rings, track: int) -> Ring:
        """``track``'s view of ``rings``."""
        ring = cls.__new__(cls)
        ring._rings = rings
        ring._track = track
        return ring

    @property
    def step(self) -> float:
        return self._rings.step

    @property
    def size(self) -> int:
        return self._rings.size

    @property
    def metrics(self) -> tuple[str, ...]:
        return self._rings.metrics

    @property
    def newest(self) -> int | None:
        """The newest bucket that holds a sample, None while the ring is empty."""
        return self._rings.newest

    def bucket(self, timestamp: float) -> int:
        return self._rings.bucket(timestamp)

    def add(self, timestamp: float, values: Mapping[str, float | None]) -> None:
        """Fold one sample into its bucket (``Rings.add``)."""
        self._rings.add(self._track, timestamp, values)

    def points(self, until: float | None = None) -> Points:
        """Every bucket of the window that ends with the bucket of ``until`` (default: the
        newest sample), oldest first; buckets without a sample are ``None``."""
        return self._rings.points(self._track, until)

    def last(self, metric: str, count: int, until: float | None = None) -> list[float]:
        """The values of ``metric`` in the last ``count`` buckets that have one, oldest first."""
        column = self.points(until).values.get(metric, ())
        present = [v for v in column if v is not None]
        return present[-count:] if count > 0 else []

    def latest(self, metric: str) -> float | None:
        """The newest bucket's value of ``metric``."""
        return self._rings.latest(self._track, metric)
