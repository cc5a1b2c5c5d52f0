"""The checker with fake probes and a fake clock: schedules, flips, updates, isolation."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable

import pytest

from bascule.health.checker import HealthChecker, Target, TargetRef, targets_for
from bascule.health.probes import Endpoint
from bascule.health.results import CheckResult, CheckState, Phase
from bascule.model.check import HealthCheck
from bascule.model.document import Configuration


class FakeClock:
    """Monotonic time that moves only when a test says so; sleepers wake in time order."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + delay, next(self._order), future))
        await future

    async def run_until(self, when: float) -> None:
        """Advance to ``when``, waking every sleeper due on the way and letting it run."""
        await settle()
        while self._sleepers and self._sleepers[0][0] <= when:
            due, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, due)
            if not future.done():
                future.set_result(None)
                await settle()
        self.now = when
        await settle()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def ref(n: int) -> TargetRef:
    return TargetRef(vs="svc", server=f"198.18.0.{n}:53")


def target(n: int, check: HealthCheck | None = None, *, initial_up: bool = False) -> Target:
    return Target(
        ref=ref(n),
        check=check or HealthCheck(interval=2, timeout=1, rise=2, fall=3),
        endpoint=Endpoint(address=f"198.18.0.{n}", port=53, host="198.18.0.100"),
        initial_up=initial_up,
    )


class FakeProbes:
    """Answers per address: ok or not, after a (fake) delay; records when each probe began."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.ok: dict[str, bool] = {}
        self.delay: dict[str, float] = {}
        self.started: list[tuple[float, str]] = []

    async def __call__(self, check: HealthCheck, endpoint: Endpoint) -> CheckResult:
        address = endpoint.address
        began = self.clock.now
        self.started.append((began, address))
        if self.delay.get(address):
            await self.clock.sleep(self.delay[address])
        ok = self.ok.get(address, True)
        return CheckResult(
            ok=ok,
            code=None,
            detail="fine" if ok else "broken",
            duration_ms=(self.clock.now - began) * 1000,
            checked_at=began,
        )

    def times(self, address: str) -> list[float]:
        return [when for when, seen in self.started if seen == address]


Changes = list[tuple[TargetRef, bool, float]]


def recorder(clock: FakeClock) -> tuple[Changes, Callable[..., Awaitable[None]]]:
    changes: Changes = []

    async def on_change(which: TargetRef, up: bool, result: CheckResult) -> None:
        changes.append((which, up, clock.now))

    return changes, on_change


def make_checker(
    jitter: float = 0.0,
) -> tuple[HealthChecker, FakeClock, FakeProbes, Changes]:
    clock = FakeClock()
    probes = FakeProbes(clock)
    changes, on_change = recorder(clock)
    checker = HealthChecker(
        on_change, probe=probes, clock=clock, sleep=clock.sleep, jitter=lambda: jitter
    )
    return checker, clock, probes, changes


async def test_a_new_server_starts_down_and_comes_up_after_rise_successes() -> None:
    checker, clock, _, changes = make_checker()
    await checker.update([target(11)])
    assert not checker.is_up(ref(11))
    await clock.run_until(0.0)
    assert changes == [] and not checker.is_up(ref(11))
    await clock.run_until(2.0)
    assert changes == [(ref(11), True, 2.0)]
    status = checker.status(ref(11))
    assert status is not None and status.up and status.checks == 2
    assert status.last is not None and status.last.detail == "fine"
    await checker.stop()


async def test_on_change_is_called_exactly_on_flips() -> None:
    checker, clock, probes, changes = make_checker()
    await checker.update([target(11)])
    await clock.run_until(10.0)  # checks at 0, 2 (up), 4, 6, 8, 10
    assert changes == [(ref(11), True, 2.0)]
    probes.ok["198.18.0.11"] = False
    await clock.run_until(14.0)  # failures at 12, 14: still up (fall is 3)
    assert changes == [(ref(11), True, 2.0)] and checker.is_up(ref(11))
    await clock.run_until(16.0)  # the third failure in a row
    assert changes == [(ref(11), True, 2.0), (ref(11), False, 16.0)]
    await clock.run_until(30.0)  # still failing: no more calls
    assert len(changes) == 2
    state = checker.status(ref(11))
    assert state is not None and state.state == CheckState(phase=Phase.DOWN)
    probes.ok["198.18.0.11"] = True
    await clock.run_until(34.0)
    assert changes[-1] == (ref(11), True, 34.0) and len(changes) == 3
    await checker.stop()


async def test_a_flapping_server_that_never_fails_fall_times_in_a_row_stays_up() -> None:
    checker, clock, probes, changes = make_checker()
    await checker.update([target(11, initial_up=True)])
    for step in range(20):
        probes.ok["198.18.0.11"] = step % 3 != 2  # fail every third check
        await clock.run_until(step * 2.0)
    assert changes == [] and checker.is_up(ref(11))
    await checker.stop()


async def test_a_slow_probe_delays_no_other_target() -> None:
    checker, clock, probes, changes = make_checker()
    probes.delay["198.18.0.11"] = 1.9  # nearly the whole interval, every time
    probes.delay["198.18.0.12"] = 1000.0  # a probe that hangs (a bug: probes time out)
    await checker.update([target(11), target(12), target(13)])
    await clock.run_until(8.0)
    assert probes.times("198.18.0.13") == [0.0, 2.0, 4.0, 6.0, 8.0]
    # the next check starts an interval after the previous one started, not after it ended
    assert probes.times("198.18.0.11") == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert probes.times("198.18.0.12") == [0.0]
    assert [(c[0], c[1]) for c in changes] == [(ref(13), True), (ref(11), True)]
    assert [c[2] for c in changes] == [2.0, pytest.approx(3.9)]
    await checker.stop()


async def test_a_probe_that_overruns_its_interval_is_followed_at_once() -> None:
    checker, clock, probes, _ = make_checker()
    probes.delay["198.18.0.11"] = 3.0
    await checker.update([target(11)])
    await clock.run_until(9.0)
    assert probes.times("198.18.0.11") == [0.0, 3.0, 6.0, 9.0]
    await checker.stop()


async def test_the_first_check_is_jittered_within_one_interval() -> None:
    checker, clock, probes, _ = make_checker(jitter=0.75)
    await checker.update([target(11, HealthCheck(interval=4, timeout=1))])
    await clock.run_until(2.9)
    assert probes.started == []
    await clock.run_until(7.0)
    assert probes.times("198.18.0.11") == [3.0, 7.0]
    await checker.stop()


async def test_update_keeps_unchanged_targets_and_replaces_the_others() -> None:
    checker, clock, probes, changes = make_checker()
    await checker.update([target(11), target(12), target(13)])
    await clock.run_until(2.0)  # all three up
    assert {c[0] for c in changes} == {ref(11), ref(12), ref(13)}
    before = checker.status(ref(11))

    changed_check = HealthCheck(interval=5, timeout=1, rise=2, fall=3)
    await checker.update([target(11), target(12, changed_check), target(14)])
    # 11 unchanged: same state, same count, same schedule
    assert checker.status(ref(11)) == before
    # 12 changed: keeps its verdict, counting anew, checked on its new interval from now
    status = checker.status(ref(12))
    assert status is not None and status.up and status.state == CheckState(phase=Phase.UP)
    # 13 removed: forgotten and no longer probed; 14 new: starts down
    assert checker.status(ref(13)) is None and not checker.is_up(ref(13))
    assert not checker.is_up(ref(14))
    probes.started.clear()
    await clock.run_until(6.0)
    assert probes.times("198.18.0.11") == [4.0, 6.0]
    assert probes.times("198.18.0.12") == [2.0]
    assert probes.times("198.18.0.13") == []
    assert probes.times("198.18.0.14") == [2.0, 4.0, 6.0]
    assert list(checker.statuses()) == [ref(11), ref(12), ref(14)]
    await checker.stop()


async def test_two_updates_at_once_remove_a_target_once() -> None:
    # an apply's update and the once-a-second one overlapped while the first awaited the
    # cancelled checks: both removed the same target, and the second raised KeyError (the
    # chaos bench's "internal error: KeyError: TargetRef(...)" on a real server's deletion)
    checker, clock, _, _ = make_checker()
    await checker.update([target(11), target(12)])
    await clock.run_until(2.0)
    await asyncio.gather(checker.update([target(11)]), checker.update([target(11)]))
    assert list(checker.statuses()) == [ref(11)]
    await asyncio.gather(checker.update([target(13)]), checker.stop())
    await checker.stop()
    assert checker.statuses() == {}


async def test_an_initially_up_target_needs_fall_failures_to_go_down() -> None:
    checker, clock, probes, changes = make_checker()
    probes.ok["198.18.0.11"] = False
    await checker.update([target(11, initial_up=True)])
    assert checker.is_up(ref(11))
    await clock.run_until(2.0)
    assert changes == []
    await clock.run_until(4.0)
    assert changes == [(ref(11), False, 4.0)]
    await checker.stop()


async def test_stop_ends_every_check() -> None:
    checker, clock, probes, _ = make_checker()
    probes.delay["198.18.0.12"] = 1.0
    await checker.update([target(11), target(12)])
    await clock.run_until(0.5)  # 12 is inside its probe
    await checker.stop()
    assert checker.statuses() == {}
    count = len(probes.started)
    await clock.run_until(20.0)
    assert len(probes.started) == count


async def test_a_failing_callback_or_probe_does_not_stop_the_checks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    calls: list[bool] = []

    async def on_change(which: TargetRef, up: bool, result: CheckResult) -> None:
        calls.append(up)
        raise RuntimeError("the engine is on fire")

    attempts = 0

    async def probe(check: HealthCheck, endpoint: Endpoint) -> CheckResult:
        nonlocal attempts
        attempts += 1
        if attempts in (3, 4, 5):
            raise RuntimeError("probe bug")
        return CheckResult(ok=True, code=None, detail="", duration_ms=0.0, checked_at=0.0)

    checker = HealthChecker(
        on_change, probe=probe, clock=clock, sleep=clock.sleep, jitter=lambda: 0.0
    )
    with caplog.at_level(logging.INFO, logger="bascule.health.checker"):
        await checker.update([target(11)])
        await clock.run_until(12.0)
    await checker.stop()
    # up at 2, down after the three probe errors (4, 6, 8), up again at 12
    assert calls == [True, False, True]
    status_messages = [r.getMessage() for r in caplog.records]
    assert any("on_change for svc/198.18.0.11:53 failed" in m for m in status_messages)
    assert any("health probe of svc/198.18.0.11:53 failed" in m for m in status_messages)


async def test_real_time_checks_run_concurrently() -> None:
    # With the real clock: ten probes of 0.2 s each finish in about 0.2 s, not 2 s.
    changes: list[TargetRef] = []
    started: list[float] = []
    all_up = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def on_change(which: TargetRef, up: bool, result: CheckResult) -> None:
        changes.append(which)
        if len(changes) == 10:
            all_up.set()

    async def probe(check: HealthCheck, endpoint: Endpoint) -> CheckResult:
        started.append(loop.time())
        await asyncio.sleep(0.2)
        return CheckResult(ok=True, code=None, detail="", duration_ms=200.0, checked_at=0.0)

    checker = HealthChecker(on_change, probe=probe, jitter=lambda: 0.0)
    check = HealthCheck(interval=60, timeout=1, rise=1)
    begin = loop.time()
    await checker.update([target(n, check) for n in range(20, 30)])
    try:
        async with asyncio.timeout(5):
            await all_up.wait()
    finally:
        await checker.stop()
    # every probe started before the first one could have finished
    assert max(started) - begin < 0.2


def test_targets_for_lists_the_checked_l4_servers() -> None:
    config = Configuration.model_validate(
        {
            "virtual_services": [
                {
                    "name": "dns",
                    "address": "198.18.0.100",
                    "port": 53,
                    "protocol": "udp",
                    "check": {"type": "dns", "host": "example.com"},
                    "real_servers": [
                        {"address": "198.18.0.12", "port": 53},
                        {"address": "198.18.0.11", "port": 53},
                        {"address": "198.18.0.13", "port": 53, "state": "disabled"},
                        {"address": "198.18.0.14", "port": 53, "state": "drain"},
                    ],
                },
                {
                    "name": "web",
                    "address": "198.18.0.100",
                    "port": 8080,
                    "mode": "l4",
                    "check": {"type": "http", "port": 8081},
                    "real_servers": [{"address": "198.18.0.11", "port": 80}],
                },
                {
                    "name": "off",
                    "address": "198.18.0.100",
                    "port": 81,
                    "mode": "l4",
                    "enabled": False,
                    "real_servers": [{"address": "198.18.0.11", "port": 80}],
                },
                {
                    "name": "unchecked",
                    "address": "198.18.0.100",
                    "port": 82,
                    "mode": "l4",
                    "check": {"type": "none"},
                    "real_servers": [{"address": "198.18.0.11", "port": 80}],
                },
                {
                    "name": "proxy",
                    "address": "198.18.0.100",
                    "port": 80,
                    "real_servers": [{"address": "198.18.0.11", "port": 80}],
                },
            ]
        }
    )
    targets = targets_for(config)
    assert [str(t.ref) for t in targets] == [
        "dns/198.18.0.11:53",
        "dns/198.18.0.12:53",
        "dns/198.18.0.14:53",
        "web/198.18.0.11:80",
    ]
    web = targets[-1]
    assert web.endpoint == Endpoint(address="198.18.0.11", port=8081, host="198.18.0.100:8080")
    assert targets[0].endpoint == Endpoint(address="198.18.0.11", port=53, host="example.com")
