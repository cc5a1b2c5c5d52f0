"""The dynamic schedulers' loop and the reconcile loop converge instead of fighting.

The planner compares the desired runtime weights with what the engine reports; the adaptive
and response-time weights reach it as overrides, so a reconcile pass after the scheduler's
``set weight`` finds nothing to do, and never sets the document's weights back.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from change_requests import by

from bascule.daemon.dynamic import DynamicScheduler
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import EngineObservation, FakeEngine, Health, ServerObservation
from bascule.health.adaptive import AgentReading, parse_agent_answer
from bascule.model import Configuration, RealServerState, parse_document
from bascule.reconcile.actions import ReplaceConfig, SetState, SetWeight
from bascule.reconcile.planner import (
    Observed,
    ServerRuntime,
    WeightOverride,
    desired_runtime,
    plan_engine,
)
from bascule.reconcile.status import ServerStatus
from bascule.store.revisions import RevisionStore

KEYS = ("198.18.0.11:80", "198.18.0.12:80", "198.18.0.13:80")


def document(scheduler: str = "adaptive") -> dict[str, Any]:
    vs: dict[str, Any] = {
        "name": "web",
        "address": "198.18.0.100",
        "port": 80,
        "scheduler": scheduler,
        "real_servers": [{"address": k.split(":")[0], "port": 80} for k in KEYS],
    }
    if scheduler == "adaptive":
        vs["adaptive"] = {"port": 8080, "interval": 3, "min_percent": 5}
    return {"virtual_services": [vs]}


class Agents:
    """A fake poller: the loads the test sets, by real-server key."""

    def __init__(self, *loads: int) -> None:
        self.loads = dict(zip(KEYS, loads, strict=True))
        self.polls = 0

    async def __call__(
        self,
        urls: list[tuple[str, str]],
        *,
        wait: float,
    ) -> Mapping[str, AgentReading]:
        self.polls += 1
        assert all(url.startswith("http://198.18.0.1") and ":8080/load" in url for _, url in urls)
        return {key: parse_agent_answer(str(self.loads[key])) for key, _ in urls}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RevisionStore]:
    with RevisionStore(tmp_path / "bascule.db") as opened:
        yield opened


def test_the_planner_keeps_overrides_and_would_undo_them_without() -> None:
    config = parse_document(document())
    overrides = {("web", KEYS[0]): WeightOverride(weight=200, reason="agent load 20 %")}
    running = desired_runtime(config, max_weight=256, overrides=overrides)
    observed = Observed(applied=config, servers=running)
    assert plan_engine(config, observed, max_weight=256, overrides=overrides).empty
    assert plan_engine(config, observed, max_weight=256).actions == (
        SetWeight(vs="web", server=KEYS[0], weight=1),
    )


def test_an_override_out_disables_at_runtime_but_the_document_state_wins() -> None:
    config = parse_document(document())
    out = {("web", k): WeightOverride(weight=5, out=ServerStatus.down) for k in KEYS}
    runtime = desired_runtime(config, max_weight=256, overrides=out)
    assert runtime[("web", KEYS[0])] == ServerRuntime(weight=5, state=RealServerState.disabled)
    drained = document()
    drained["virtual_services"][0]["real_servers"][0]["state"] = "drain"
    runtime = desired_runtime(parse_document(drained), max_weight=256, overrides=out)
    assert runtime[("web", KEYS[0])] == ServerRuntime(weight=1, state=RealServerState.drain)


async def test_the_adaptive_loop_and_the_reconcile_loop_converge(store: RevisionStore) -> None:
    engine, agents, clock = FakeEngine(), Agents(10, 50, 90), Clock()
    dynamic = DynamicScheduler(ceiling=engine.max_weight, poll=agents, clock=clock)
    service = ConfigService(
        store=store, engines=[engine], vips=NullVipManager(), overrides=dynamic.overrides
    )
    await service.apply(document(), by("test"))
    assert engine.reloads == 1

    assert await dynamic.step(service)
    await service.reconcile(retry_failed=False)
    weights = {ref[1]: rt.weight for ref, rt in engine.servers.items()}
    assert weights == dict(zip(KEYS, (256, 142, 28), strict=True))

    # Reconcile passes (every few seconds in the daemon) and scheduler steps find nothing.
    executed = len(engine.executed)
    for _ in range(3):
        await service.reconcile(retry_failed=False)
        clock.now += 3
        assert not await dynamic.step(service)
    assert len(engine.executed) == executed
    assert agents.polls == 4

    # A new load moves the weights at runtime, no reload.
    agents.loads[KEYS[0]] = 90
    agents.loads[KEYS[2]] = 10
    clock.now += 3
    assert await dynamic.step(service)
    await service.reconcile(retry_failed=False)
    assert engine.executed[executed:] == [
        SetWeight(vs="web", server=KEYS[0], weight=28),
        SetWeight(vs="web", server=KEYS[2], weight=256),
    ]
    assert engine.reloads == 1

    # 101: out at runtime; back: in again; the document never changes.
    agents.loads[KEYS[1]] = 101
    clock.now += 3
    assert await dynamic.step(service)
    await service.reconcile(retry_failed=False)
    assert engine.executed[-1] == SetState(vs="web", server=KEYS[1], state=RealServerState.disabled)
    status = await service.status()
    server = status.virtual_services[0].real_servers[1]
    assert (server.status, server.state, server.weight_reason) == (
        "down",
        "enabled",
        "agent reports 101: down",
    )
    agents.loads[KEYS[1]] = 50
    clock.now += 3
    assert await dynamic.step(service)
    await service.reconcile(retry_failed=False)
    assert engine.executed[-1] == SetState(vs="web", server=KEYS[1], state=RealServerState.enabled)
    assert not any(isinstance(a, ReplaceConfig) for a in engine.executed[1:])
    assert store.head_number() == 1


async def test_status_shows_the_effective_weight_and_why(store: RevisionStore) -> None:
    engine, agents = FakeEngine(), Agents(10, 50, 90)
    dynamic = DynamicScheduler(ceiling=engine.max_weight, poll=agents, clock=Clock())
    service = ConfigService(
        store=store, engines=[engine], vips=NullVipManager(), overrides=dynamic.overrides
    )
    await service.apply(document(), by("test"))
    await dynamic.step(service)
    await service.reconcile()
    status = await service.status()
    rows = [
        (s.effective_weight, s.engine_weight, s.weight_reason)
        for s in status.virtual_services[0].real_servers
    ]
    assert rows == [
        (256, 256, "agent load 10 %"),
        (142, 142, "agent load 50 %"),
        (28, 28, "agent load 90 %"),
    ]


class CheckTimes:
    """A host for weighted_response_time: HAProxy's last check durations, set by the test."""

    def __init__(self, config: Configuration) -> None:
        self.config = config
        self.durations = dict.fromkeys(KEYS, 1)

    def desired(self) -> Configuration:
        return self.config

    async def observe(self) -> EngineObservation:
        return EngineObservation(
            running=True,
            servers={
                ("web", key): ServerObservation(
                    weight=1,
                    state=RealServerState.enabled,
                    health=Health.up,
                    check_duration_ms=ms,
                )
                for key, ms in self.durations.items()
            },
        )

    async def reconcile(self, *, retry_failed: bool = True) -> tuple[bool, str]:
        return True, ""


async def test_response_time_weights_follow_smoothed_check_times() -> None:
    host = CheckTimes(parse_document(document("weighted_response_time")))
    clock = Clock()
    dynamic = DynamicScheduler(ceiling=256, clock=clock)
    assert await dynamic.step(host)
    assert {o.weight for o in dynamic.overrides().values()} == {256}
    host.durations[KEYS[1]] = 30
    seen = []
    for _ in range(4):
        clock.now += 1  # check.interval defaults to 2 s: every other step samples
        await dynamic.step(host)
        seen.append(dynamic.overrides()[("web", KEYS[1])].weight)
    # not due yet, then smoothed: 1 ms -> 15.5 ms -> 22.75 ms (EWMA, alpha 0.5)
    assert seen == [256, 110, 110, 86]
    assert dynamic.overrides()[("web", KEYS[1])].reason == "check time 23 ms (EWMA)"
    assert dynamic.overrides()[("web", KEYS[0])].weight == 256
    host.durations[KEYS[1]] = 5000
    for _ in range(6):
        clock.now += 1
        await dynamic.step(host)
    assert dynamic.overrides()[("web", KEYS[1])].weight == round(256 * 0.1)  # never starved
