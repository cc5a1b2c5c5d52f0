"""stats/rates.py: rates from growing counters; a reset is never negative nor a spike."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bascule.stats import CounterRates, increase


def test_the_first_reading_has_no_rate_then_rates_follow() -> None:
    rates = CounterRates()
    assert rates.update("c", 0.0, 100) is None
    assert rates.update("c", 10.0, 150) == 5.0
    assert rates.update("c", 20.0, 150) == 0.0
    assert "c" in rates


def test_a_decrease_is_a_reset_counted_from_zero() -> None:
    rates = CounterRates()
    rates.update("c", 0.0, 1_000_000)
    # HAProxy reloaded: the counter restarted and counted 30 since.
    assert rates.update("c", 10.0, 30) == 3.0


def test_time_that_does_not_move_forward_gives_no_rate() -> None:
    rates = CounterRates()
    rates.update("c", 10.0, 1)
    assert rates.update("c", 10.0, 5) is None
    assert rates.update("c", 5.0, 9) is None  # the wall clock stepped back
    assert rates.update("c", 6.0, 10) == 1.0


def test_forget_restarts_a_counter() -> None:
    rates = CounterRates()
    rates.update("c", 0.0, 1)
    rates.forget("c")
    assert "c" not in rates
    assert rates.update("c", 1.0, 5) is None


@given(st.integers(0, 2**63), st.integers(0, 2**63))
def test_an_increase_is_never_negative_nor_more_than_the_new_total(a: int, b: int) -> None:
    counted = increase(a, b)
    assert counted >= 0
    assert counted <= b


@given(
    st.lists(st.integers(0, 10**12), min_size=2, max_size=50),
    st.floats(0.5, 60),
)
def test_rates_of_any_counter_history_are_finite_and_not_negative(
    totals: list[int], step: float
) -> None:
    rates = CounterRates()
    for index, total in enumerate(totals):
        rate = rates.update("c", index * step, total)
        if index == 0:
            assert rate is None
        else:
            assert rate is not None
            assert 0 <= rate <= total / step * (1 + 1e-9)
            if total >= totals[index - 1]:
                assert rate == pytest.approx((total - totals[index - 1]) / step)


def test_counters_of_different_readers_are_their_own() -> None:
    first, second = CounterRates(), CounterRates()
    first.update("rates-a", 0.0, 10)
    assert second.update("rates-b", 0.0, 7) is None
    assert "rates-a" not in second
    assert second.update("rates-a", 5.0, 20) is None  # its first reading of that counter
    assert first.update("rates-a", 5.0, 20) == 2.0
    assert second.update("rates-b", 7.0, 21) == 2.0
    assert "rates-b" not in first and 3 not in first
