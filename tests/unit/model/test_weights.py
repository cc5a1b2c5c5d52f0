"""scale_weights and engine_weights: LoadMaster's 1..65535 onto an engine's smaller range."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bascule.model import Scheduler
from bascule.model.weights import engine_weights, scale_weights


@pytest.mark.parametrize(
    ("weights", "ceiling", "expected"),
    [
        ([], 256, ()),
        ([1000], 256, (1,)),
        ([1000, 1000, 1000], 256, (1, 1, 1)),
        ([3000, 1000], 256, (3, 1)),
        ([1000, 3000], 256, (1, 3)),
        ([300, 200], 256, (3, 2)),
        ([2000, 3000, 5000], 256, (2, 3, 5)),
        ([256, 1], 256, (256, 1)),  # fits already
        ([512, 2], 256, (256, 1)),  # exact after the gcd
        ([65535, 1], 256, (256, 1)),
        ([1, 65535], 256, (1, 256)),
        ([65535, 100, 1], 256, (256, 1, 1)),  # never below 1: 0 would mean drain
        ([65535, 65534], 256, (256, 256)),
        ([1000, 1500], 2, (1, 2)),  # 2:3 scaled to 1.33:2, rounded
        ([7, 5], 1, (1, 1)),
    ],
)
def test_scale_weights(weights: list[int], ceiling: int, expected: tuple[int, ...]) -> None:
    assert scale_weights(weights, ceiling) == expected


@pytest.mark.parametrize(("weights", "ceiling"), [([0, 1], 256), ([-1], 256), ([1], 0)])
def test_scale_weights_refuses_what_is_not_positive(weights: list[int], ceiling: int) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        scale_weights(weights, ceiling)


@given(
    st.lists(st.integers(min_value=1, max_value=65535), min_size=1, max_size=20),
    st.sampled_from([1, 2, 100, 256]),
)
def test_scaled_weights_stay_in_range_and_keep_their_order(
    weights: list[int], ceiling: int
) -> None:
    scaled = scale_weights(weights, ceiling)
    assert len(scaled) == len(weights)
    assert all(1 <= w <= ceiling for w in scaled)
    pairs = [(i, j) for i in range(len(weights)) for j in range(len(weights))]
    assert all(scaled[i] <= scaled[j] for i, j in pairs if weights[i] <= weights[j])
    if max(weights) // math.gcd(*weights) <= ceiling:
        # nothing had to be scaled down: the ratios are exact
        assert all(scaled[i] * weights[j] == scaled[j] * weights[i] for i, j in pairs)


WEIGHTS = {"198.18.0.4:80": 3000, "198.18.0.5:80": 1000}


@pytest.mark.parametrize("scheduler", [s for s in Scheduler if s.weighted])
def test_weighted_schedulers_scale_the_weights(scheduler: Scheduler) -> None:
    assert engine_weights(WEIGHTS, 256, weighted=scheduler.weighted) == {
        "198.18.0.4:80": 3,
        "198.18.0.5:80": 1,
    }


def test_only_plain_round_robin_and_least_connection_ignore_weights() -> None:
    assert {s for s in Scheduler if not s.weighted} == {
        Scheduler.round_robin,
        Scheduler.least_connection,
    }
    assert engine_weights(WEIGHTS, 256, weighted=False) == {
        "198.18.0.4:80": 1,
        "198.18.0.5:80": 1,
    }


def test_engine_weights_keep_the_keys_and_their_order() -> None:
    weights = {"b:1": 65535, "a:1": 1, "c:1": 32768}
    result = engine_weights(weights, 256, weighted=True)
    assert list(result) == ["b:1", "a:1", "c:1"]
    assert result == {"b:1": 256, "a:1": 1, "c:1": 128}


def test_engine_weights_of_no_servers() -> None:
    assert engine_weights({}, 256, weighted=True) == {}
    assert engine_weights({}, 256, weighted=False) == {}


def test_one_weight_changes_the_engine_weight_of_the_others() -> None:
    # 3000:1000 is 3:1; 3000:1500 reduces to 2:1, so the unchanged first server goes 3 -> 2.
    before = engine_weights(WEIGHTS, 256, weighted=True)
    after = engine_weights({**WEIGHTS, "198.18.0.5:80": 1500}, 256, weighted=True)
    assert (before["198.18.0.4:80"], after["198.18.0.4:80"]) == (3, 2)
