"""The pure cores of the dynamic schedulers: agent answers and check times -> weights."""

from __future__ import annotations

import pytest

from bascule.health.adaptive import (
    AgentReading,
    AgentVerdict,
    adaptive_weights,
    load_factor,
    parse_agent_answer,
)
from bascule.health.response_time import ewma, response_time_weights
from bascule.reconcile.planner import WeightOverride


def load(value: int) -> AgentReading:
    return parse_agent_answer(f"{value}\n")


@pytest.mark.parametrize(
    ("body", "verdict", "value"),
    [
        ("0\n", AgentVerdict.load, 0),
        ("80\nextra lines\n", AgentVerdict.load, 80),
        (" 100 \r\n", AgentVerdict.load, 100),
        ("101\n", AgentVerdict.down, 101),
        ("102", AgentVerdict.disabled, 102),
        ("103\n", AgentVerdict.no_answer, None),
        ("-1\n", AgentVerdict.no_answer, None),
        ("busy\n", AgentVerdict.no_answer, None),
        ("", AgentVerdict.no_answer, None),
    ],
)
def test_the_first_line_of_an_agent_answer(body: str, verdict: AgentVerdict, value: int) -> None:
    reading = parse_agent_answer(body)
    assert (reading.verdict, reading.load) == (verdict, value)


def test_a_loaded_server_gets_much_less_than_an_idle_one() -> None:
    assert load_factor(20) == pytest.approx(4 * load_factor(80))
    weights = adaptive_weights(
        {"a": 1000, "b": 1000, "c": 1000},
        {"a": load(10), "b": load(50), "c": load(90)},
        min_percent=5,
        ceiling=256,
    )
    assert weights == {
        "a": WeightOverride(weight=256, reason="agent load 10 %"),
        "b": WeightOverride(weight=142, reason="agent load 50 %"),
        "c": WeightOverride(weight=28, reason="agent load 90 %"),
    }


def test_configured_weights_multiply_the_load_factor() -> None:
    weights = adaptive_weights(
        {"a": 2000, "b": 1000}, {"a": load(50), "b": load(50)}, min_percent=5, ceiling=256
    )
    assert (weights["a"].weight, weights["b"].weight) == (256, 128)


def test_a_fully_loaded_server_keeps_a_trickle() -> None:
    weights = adaptive_weights(
        {"a": 1, "b": 1}, {"a": load(0), "b": load(100)}, min_percent=0, ceiling=256
    )
    assert weights["b"].weight == 5 and weights["b"].out is None


def test_below_min_percent_the_document_weights_rule() -> None:
    weights = adaptive_weights(
        {"a": 3000, "b": 1000}, {"a": load(1), "b": load(6)}, min_percent=5, ceiling=256
    )
    assert [w.weight for w in weights.values()] == [3, 1]
    assert weights["b"].reason == (
        "agent load 6 % (average 4 % below min_percent 5 %: configured weight)"
    )


def test_an_agent_that_does_not_answer_keeps_the_static_weight() -> None:
    silent = AgentReading(verdict=AgentVerdict.no_answer, detail="timed out")
    weights = adaptive_weights(
        {"a": 1000, "b": 1000, "c": 1000},
        {"a": load(50), "b": silent, "c": None},
        min_percent=5,
        ceiling=256,
    )
    assert weights["a"].weight == 128
    assert weights["b"] == WeightOverride(
        weight=256, reason="agent not answering (timed out): static weight"
    )
    assert weights["c"].reason == "agent not answering (no answer yet): static weight"


def test_101_takes_the_server_out_as_down_and_102_as_disabled() -> None:
    weights = adaptive_weights(
        {"a": 1000, "b": 1000, "c": 1000},
        {"a": load(20), "b": load(101), "c": load(102)},
        min_percent=5,
        ceiling=256,
    )
    assert weights["a"].out is None
    assert (weights["b"].out, weights["b"].reason) == ("down", "agent reports 101: down")
    assert weights["c"].out == "disabled"
    assert weights["c"].reason == "agent reports 102: administratively disabled"


def test_ewma_starts_on_the_first_sample_and_smooths() -> None:
    assert ewma(None, 12) == 12
    assert ewma(10.0, 30, alpha=0.5) == 20


def test_the_fastest_server_gets_the_most_and_the_slow_one_is_bounded() -> None:
    weights = response_time_weights(
        {"a": 1000, "b": 1000, "c": 1000}, {"a": 1.0, "b": 5.0, "c": 2000.0}, ceiling=256
    )
    assert weights["a"].weight == 256
    assert 256 > weights["b"].weight > weights["c"].weight
    # never starved: a tenth of the fastest at least
    assert weights["c"].weight == round(256 * 0.1)
    assert weights["a"].reason == "check time 1 ms (EWMA)"


def test_sub_millisecond_jitter_does_not_move_weights_much() -> None:
    weights = response_time_weights({"a": 1, "b": 1}, {"a": 0.0, "b": 2.0}, ceiling=256)
    assert weights["b"].weight > 0.8 * weights["a"].weight


def test_a_server_without_a_check_time_keeps_its_configured_weight() -> None:
    weights = response_time_weights({"a": 1000, "b": 1000}, {"a": 100.0, "b": None}, ceiling=256)
    assert weights["b"] == WeightOverride(weight=256, reason="no check time yet: configured weight")
