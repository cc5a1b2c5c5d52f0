"""stats/ring.py: buckets of fixed width, each the mean of its samples; gaps read as None."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bascule.stats import Ring


def test_an_empty_ring_has_no_points() -> None:
    ring = Ring(step=10, size=4, metrics=["a"])
    assert ring.newest is None
    assert ring.points().timestamps == ()
    assert ring.points().values == {"a": ()}
    assert ring.latest("a") is None


def test_samples_in_one_bucket_are_averaged() -> None:
    ring = Ring(step=10, size=4, metrics=["a"])
    ring.add(100, {"a": 1.0})
    ring.add(103, {"a": 2.0})
    ring.add(109.9, {"a": 6.0})
    points = ring.points()
    assert points.timestamps == (70.0, 80.0, 90.0, 100.0)
    assert points.values["a"] == (None, None, None, pytest.approx(3.0))


def test_missing_buckets_are_gaps_and_until_moves_the_window() -> None:
    ring = Ring(step=10, size=4, metrics=["a", "b"])
    ring.add(100, {"a": 1.0, "b": None})
    ring.add(120, {"a": 3.0, "b": 5.0})
    assert ring.points().values == {"a": (None, 1.0, None, 3.0), "b": (None, None, None, 5.0)}
    # Read a minute later: the sampler stopped, so the newest buckets are empty.
    assert ring.points(until=150).timestamps == (120.0, 130.0, 140.0, 150.0)
    assert ring.points(until=150).values["a"] == (3.0, None, None, None)


def test_a_slot_is_reused_when_time_comes_round() -> None:
    ring = Ring(step=10, size=3, metrics=["a"])
    for second, value in [(0, 1.0), (10, 2.0), (20, 3.0), (30, 4.0)]:
        ring.add(second, {"a": value})
    assert ring.points().timestamps == (10.0, 20.0, 30.0)
    assert ring.points().values["a"] == (2.0, 3.0, 4.0)
    assert ring.latest("a") == 4.0


def test_a_sample_older_than_the_window_is_dropped() -> None:
    ring = Ring(step=10, size=3, metrics=["a"])
    ring.add(100, {"a": 1.0})
    ring.add(50, {"a": 99.0})  # five buckets back: outside the window
    assert ring.points().values["a"] == (None, None, 1.0)
    ring.add(90, {"a": 3.0})  # late but inside: folded in
    assert ring.points().values["a"] == (None, 3.0, 1.0)


def test_nan_infinity_and_unknown_metrics_are_ignored() -> None:
    ring = Ring(step=1, size=2, metrics=["a"])
    ring.add(0, {"a": math.nan, "other": 1.0})
    ring.add(0.5, {"a": math.inf})
    assert ring.points().values == {"a": (None, None)}


def test_last_gives_the_newest_present_values() -> None:
    ring = Ring(step=1, size=10, metrics=["a"])
    for second in (1, 2, 4, 5):
        ring.add(second, {"a": float(second)})
    assert ring.last("a", 3) == [2.0, 4.0, 5.0]
    assert ring.last("a", 0) == []
    assert ring.last("missing", 3) == []


def test_a_ring_needs_a_positive_shape() -> None:
    with pytest.raises(ValueError, match="positive"):
        Ring(step=0, size=3, metrics=["a"])


@given(
    st.lists(
        st.tuples(st.floats(0, 10_000), st.floats(0, 1e9, allow_nan=False)),
        min_size=1,
        max_size=60,
    )
)
def test_every_bucket_is_the_mean_of_the_samples_still_in_the_window(
    samples: list[tuple[float, float]],
) -> None:
    step, size = 10.0, 36
    ring = Ring(step=step, size=size, metrics=["a"])
    for timestamp, value in samples:
        ring.add(timestamp, {"a": value})
    points = ring.points()
    assert len(points.timestamps) == size
    assert_replayed(ring, samples)


def assert_replayed(ring: Ring, samples: list[tuple[float, float | None]]) -> None:
    """The ring's column "a" is what a replay with a dict gives: samples not older than the
    window when they arrived, each bucket the mean of its values, a gap where none had one."""
    step, size = ring.step, ring.size
    newest = -1
    buckets: dict[int, list[float]] = {}
    for timestamp, value in samples:
        bucket = math.floor(timestamp / step)
        if newest >= 0 and bucket <= newest - size:
            continue
        newest = max(newest, bucket)
        buckets.setdefault(bucket, [])
        if value is not None:
            buckets[bucket].append(value)
    points = ring.points()
    for stamp, got in zip(points.timestamps, points.values["a"], strict=True):
        values = buckets.get(round(stamp / step))
        if not values:
            assert got is None
        else:
            assert got == pytest.approx(sum(values) / len(values), rel=1e-5, abs=1e-6)


@given(
    st.lists(
        st.tuples(st.floats(0, 2_000), st.one_of(st.none(), st.just(0.0), st.floats(0, 1e6))),
        min_size=1,
        max_size=60,
    )
)
def test_values_missing_zero_or_late_are_averaged_over_the_samples_that_had_one(
    samples: list[tuple[float, float | None]],
) -> None:
    """The compact columns (no means while all zeros, no per-slot counts before the first
    value) give what a replay with a dict gives: a bucket's mean over its samples with a
    value, a gap where none had one."""
    step, size = 10.0, 36
    ring = Ring(step=step, size=size, metrics=["a"])
    for timestamp, value in samples:
        ring.add(timestamp, {"a": value})
    assert_replayed(ring, samples)


def test_a_bucket_past_its_sample_count_keeps_weighing_new_samples_in() -> None:
    ring = Ring(step=1000, size=2, metrics=["a"], max_samples=3)
    for value in (3.0, 3.0, 3.0, 9.0):
        ring.add(1, {"a": value})
    # the fourth sample weighs 1/3, as a 4th would once 3 is the most a slot counts
    assert ring.points().values["a"][-1] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="1 to 65535"):
        Ring(step=1, size=2, metrics=["a"], max_samples=0x10000)


def test_the_tracks_of_rings_read_as_their_own_and_a_forgotten_row_is_reused_from_zeros() -> None:
    from bascule.stats.ring import Rings

    rings = Rings(step=10, size=4, metrics=["a", "b"])
    busy, quiet = rings.new_track(), rings.new_track()
    rings.add(busy, 0, {"a": 5.0, "b": None})
    rings.add(quiet, 0, {"a": 0.0, "b": None})
    rings.add(busy, 10, {"a": 3.0, "b": 1.0})
    rings.add(quiet, 10, {"a": 0.0, "b": None})
    assert rings.points(busy).values == {"a": (None, None, 5.0, 3.0), "b": (None, None, None, 1.0)}
    assert rings.points(quiet).values == {"a": (None, None, 0.0, 0.0), "b": (None,) * 4}
    rows = len(rings._pools[0].values)  # whole numbers: a row of bytes
    rings.forget(busy)
    rings.add(quiet, 20, {"a": 2.0, "b": None})
    assert len(rings._pools[0].values) == rows  # the quiet track took a row the busy one gave back
    assert rings.points(quiet).values["a"] == (None, 0.0, 0.0, 2.0)
    assert rings.latest(quiet, "a") == 2.0
    assert rings.latest(quiet, "b") is None


@given(
    st.lists(
        st.tuples(st.floats(0, 2_000), st.one_of(st.none(), st.integers(0, 70_000))),
        min_size=1,
        max_size=60,
    )
)
def test_whole_numbers_in_narrow_rows_read_as_the_floats_they_are(
    samples: list[tuple[float, int | None]],
) -> None:
    """Means kept in rows of bytes or 16-bit integers while they are whole numbers, widened
    when one is not: the same readings as a replay."""
    ring = Ring(step=10.0, size=36, metrics=["a"])
    for timestamp, value in samples:
        ring.add(timestamp, {"a": None if value is None else float(value)})
    assert_replayed(ring, [(t, None if v is None else float(v)) for t, v in samples])
    assert all(isinstance(v, float) for v in ring.points().values["a"] if v is not None)


def test_a_row_widens_exactly_when_a_mean_is_not_a_small_whole_number() -> None:
    from bascule.stats.ring import Rings

    rings = Rings(step=10, size=4, metrics=["a"])
    track = rings.new_track()
    rings.add(track, 0, {"a": 3.0})  # a byte
    rings.add(track, 10, {"a": 300.0})  # 16 bits: the row is copied
    assert rings._rows is not None and rings._rows[0] & 3 == 1
    rings.add(track, 20, {"a": 4.0})
    rings.add(track, 21, {"a": 5.0})  # 4.5: floats
    rings.add(track, 30, {"a": 70_000.0})
    assert rings._rows[0] & 3 == 2
    assert rings.points(track).values["a"] == (3.0, 300.0, 4.5, 70_000.0)
    assert [len(pool.values) for pool in rings._pools] == [4, 4, 4]  # the rows left are free
