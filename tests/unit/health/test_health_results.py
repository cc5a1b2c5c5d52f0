"""The rise/fall table: every transition, the counts, and lookups that must miss."""

from __future__ import annotations

import pytest

from bascule.health.results import (
    DOWN,
    UP,
    CheckResult,
    CheckState,
    Event,
    IllegalTransition,
    Phase,
    advance,
    carry_over,
    initial_state,
    next_state,
    transition_table,
)
from bascule.model.check import HealthCheck

S, F = Event.SUCCESS, Event.FAILURE


def rising(n: int) -> CheckState:
    return CheckState(phase=Phase.RISING, count=n)


def failing(n: int) -> CheckState:
    return CheckState(phase=Phase.FAILING, count=n)


def result(ok: bool) -> CheckResult:
    return CheckResult(ok=ok, code=None, detail="", duration_ms=1.0, checked_at=0.0)


def test_the_whole_table_for_rise_2_fall_3() -> None:
    assert dict(transition_table(2, 3)) == {
        (DOWN, S): rising(1),
        (DOWN, F): DOWN,
        (rising(1), S): UP,
        (rising(1), F): DOWN,
        (UP, S): UP,
        (UP, F): failing(1),
        (failing(1), S): UP,
        (failing(1), F): failing(2),
        (failing(2), S): UP,
        (failing(2), F): DOWN,
    }


def test_rise_and_fall_of_one_flip_on_a_single_result() -> None:
    assert dict(transition_table(1, 1)) == {
        (DOWN, S): UP,
        (DOWN, F): DOWN,
        (UP, S): UP,
        (UP, F): DOWN,
    }


@pytest.mark.parametrize(("rise", "fall"), [(1, 1), (1, 5), (3, 1), (2, 3), (7, 4), (100, 100)])
def test_every_state_has_both_events_and_counts_stay_in_range(rise: int, fall: int) -> None:
    table = transition_table(rise, fall)
    states = {state for state, _ in table}
    assert len(table) == 2 * len(states) == 2 * (rise + fall)
    for state in states:
        assert (state, S) in table and (state, F) in table
        if state.phase is Phase.RISING:
            assert 1 <= state.count < rise
        elif state.phase is Phase.FAILING:
            assert 1 <= state.count < fall
        else:
            assert state.count == 0
    # closed: every next state is itself a state of the table
    assert set(table.values()) <= states


@pytest.mark.parametrize(("rise", "fall"), [(1, 1), (2, 3), (5, 2)])
def test_exactly_rise_successes_bring_a_down_server_up(rise: int, fall: int) -> None:
    state = DOWN
    for _ in range(rise - 1):
        state = next_state(state, S, rise=rise, fall=fall)
        assert not state.up
    assert next_state(state, S, rise=rise, fall=fall) == UP


@pytest.mark.parametrize(("rise", "fall"), [(1, 1), (2, 3), (5, 2)])
def test_exactly_fall_failures_take_an_up_server_down(rise: int, fall: int) -> None:
    state = UP
    for _ in range(fall - 1):
        state = next_state(state, F, rise=rise, fall=fall)
        assert state.up
    assert next_state(state, F, rise=rise, fall=fall) == DOWN


def test_a_result_that_agrees_with_the_verdict_resets_the_count() -> None:
    # up, two failures, a success, two failures: still up (fall is 3 in a row)
    state = UP
    for event in (F, F, S, F, F):
        state = next_state(state, event, rise=2, fall=3)
    assert state == failing(2) and state.up
    # down, a success, a failure, a success: still down (rise is 2 in a row)
    state = DOWN
    for event in (S, F, S):
        state = next_state(state, event, rise=2, fall=3)
    assert state == rising(1) and not state.up


@pytest.mark.parametrize(
    "state",
    [rising(2), rising(0), failing(3), failing(0), CheckState(phase=Phase.UP, count=1)],
)
def test_a_state_these_thresholds_lack_is_an_illegal_transition(state: CheckState) -> None:
    with pytest.raises(IllegalTransition, match="no transition from"):
        next_state(state, S, rise=2, fall=3)
    assert issubclass(IllegalTransition, LookupError)


def test_thresholds_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        transition_table(0, 3)


def test_the_table_is_read_only() -> None:
    table = transition_table(2, 3)
    with pytest.raises(TypeError):
        table[DOWN, S] = UP  # type: ignore[index]


def test_advance_uses_the_thresholds_of_the_check() -> None:
    check = HealthCheck(rise=1, fall=2)
    assert advance(DOWN, result(True), check) == UP
    assert advance(UP, result(False), check) == failing(1)
    assert advance(failing(1), result(False), check) == DOWN


def test_initial_and_carried_over_states() -> None:
    assert initial_state() == DOWN and not initial_state().up
    assert initial_state(up=True) == UP
    assert carry_over(failing(2)) == UP
    assert carry_over(rising(4)) == DOWN
    assert str(failing(2)) == "failing(2)" and str(DOWN) == "down"


def test_check_result_is_frozen_and_keyword_only() -> None:
    value = result(True)
    with pytest.raises(AttributeError):
        value.ok = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        CheckResult(True, None, "", 1.0, 0.0)  # type: ignore[call-arg]
