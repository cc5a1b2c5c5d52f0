"""The drain clock: deadlines of drained servers (pure)."""

from __future__ import annotations

from bascule.engines.haproxy.drains import DrainClock

A = ("web", "rs1")
B = ("web", "rs2")


def test_a_drain_runs_out_once_after_its_drain_time() -> None:
    clock = DrainClock()
    clock.drained(A, 30, now=100.0)
    assert clock.next_deadline() == 130.0
    assert clock.due(129.9) == []
    assert clock.due(130.0) == [A]
    assert clock.due(200.0) == []  # once
    assert clock.next_deadline() is None


def test_undrained_or_zero_stops_the_clock() -> None:
    clock = DrainClock()
    clock.drained(A, 30, now=0.0)
    clock.undrained(A)
    clock.drained(B, 0, now=0.0)  # 0: connections run on until they end
    assert clock.next_deadline() is None
    assert clock.due(1000.0) == []


def test_what_the_engine_reports_starts_and_stops_clocks() -> None:
    clock = DrainClock()
    clock.drained(A, 30, now=0.0)
    clock.seen({A: 30, B: 10}, now=5.0)  # A keeps its deadline, B starts now
    assert clock.due(15.0) == [B]
    clock.seen({A: 30, B: 10}, now=16.0)  # B's ran out: not started again while drained
    assert clock.due(30.0) == [A]
    clock.seen({A: 30}, now=31.0)  # B is back
    clock.seen({A: 30, B: 10}, now=40.0)  # and drained afresh
    assert clock.due(50.0) == [B]


def test_drained_again_after_running_out_starts_afresh() -> None:
    clock = DrainClock()
    clock.drained(A, 5, now=0.0)
    assert clock.due(5.0) == [A]
    clock.drained(A, 5, now=10.0)
    assert clock.due(15.0) == [A]
