"""A change plans the engines whose share it changes, once (issue 15): an engine whose share
of the new document is its share of the head, which the engines run, is neither observed nor
planned; the reconcile executes the change pipeline's preview as its first pass. The repair
loop still plans every engine, and a change on a head whose apply failed plans them all."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from change_requests import by

from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import EngineObservation, FakeEngine
from bascule.model import Mode, RealServerState, edits
from bascule.reconcile.actions import Action, ReplaceConfig, SetState, SetWeight
from bascule.reconcile.planner import ServerRuntime
from bascule.store.revisions import RevisionStore

WEB = ("web", "198.18.0.4:80")  # the l7 service's first server
FAST = ("fast", "198.18.0.14:80")  # the l4 service's first server


class CountingEngine(FakeEngine):
    """The FakeEngine, named, of a mode, counting what it is asked."""

    def __init__(self, name: str, mode: Mode) -> None:
        super().__init__()
        self.name = name
        self.mode = mode
        self.observed = 0
        self.plans: list[tuple[Action, ...]] = []

    async def observe(self, applied: Any, *, counters: bool = True) -> EngineObservation:
        self.observed += 1
        return await super().observe(applied, counters=counters)

    async def execute(self, actions: Sequence[Action], applied: Any) -> None:
        self.plans.append(tuple(actions))
        await super().execute(actions, applied)


def service_doc(name: str, mode: str, first: int, port: int) -> dict[str, Any]:
    return {
        "name": name,
        "address": "198.18.0.100",
        "port": port,
        "mode": mode,
        "scheduler": "weighted_round_robin",
        "check": {"type": "none"},
        "real_servers": [
            {"address": f"198.18.0.{first}", "port": 80},
            {"address": f"198.18.0.{first + 1}", "port": 80},
        ],
    }


DOCUMENT = {
    "virtual_services": [service_doc("web", "l7", 4, 80), service_doc("fast", "l4", 14, 81)]
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RevisionStore]:
    with RevisionStore(tmp_path / "bascule.db") as opened:
        yield opened


@pytest.fixture
def l7() -> CountingEngine:
    return CountingEngine("l7", Mode.l7)


@pytest.fixture
def l4() -> CountingEngine:
    return CountingEngine("l4", Mode.l4)


@pytest.fixture
async def service(store: RevisionStore, l7: CountingEngine, l4: CountingEngine) -> ConfigService:
    service = ConfigService(store=store, engines=[l7, l4], vips=NullVipManager())
    await service.apply(DOCUMENT, by("alice"))
    for engine in (l7, l4):
        engine.observed, engine.plans = 0, []
    return service


def add_to(name: str, address: str) -> Any:
    return lambda doc: edits.add_real_server(doc, name, {"address": address, "port": 80})


async def test_an_engine_whose_share_did_not_change_is_not_planned(
    service: ConfigService, l7: CountingEngine, l4: CountingEngine
) -> None:
    result = await service.edit(add_to("fast", "198.18.0.20"), by("alice"))
    assert result.applied
    assert l7.observed == 0  # neither in the preview nor in the reconcile's passes
    assert l7.plans == []
    assert [type(a) for a in l4.plans[0]] == [ReplaceConfig]
    assert all(line.startswith("l4: ") for line in result.actions)
    assert ("fast", "198.18.0.20:80") in l4.servers


async def test_an_engine_whose_share_changed_is_planned(
    service: ConfigService, l7: CountingEngine, l4: CountingEngine
) -> None:
    result = await service.edit(add_to("web", "198.18.0.30"), by("alice"))
    assert result.applied
    assert [type(a) for a in l7.plans[0]] == [ReplaceConfig]
    assert l4.plans == [] and l4.observed == 0
    assert ("web", "198.18.0.30:80") in l7.servers


async def test_a_change_plans_each_engine_once(
    service: ConfigService, l7: CountingEngine, l4: CountingEngine
) -> None:
    # A runtime-only change of the l4 share through the whole flow: the preview observes
    # the engine, the reconcile executes the preview (not observed again to plan it), and
    # its second pass observes it to verify.
    change = [(FAST[0], FAST[1], {"state": "drain"})]
    result = await service.edit(lambda doc: edits.update_real_servers(doc, change), by("alice"))
    assert result.applied
    assert l4.observed == 2
    assert l4.plans == [(SetState(vs=FAST[0], server=FAST[1], state=RealServerState.drain),)]
    assert l7.observed == 0


async def test_the_repair_loop_still_plans_every_engine(
    service: ConfigService, l7: CountingEngine, l4: CountingEngine
) -> None:
    await service.edit(add_to("fast", "198.18.0.20"), by("alice"))
    l7.servers[WEB] = ServerRuntime(weight=9, state=RealServerState.enabled)  # drift
    assert await service.reconcile(retry_failed=False) == (True, "")
    assert l7.plans[-1] == (SetWeight(vs=WEB[0], server=WEB[1], weight=1),)


async def test_a_change_on_a_failed_head_plans_every_engine(
    service: ConfigService, l7: CountingEngine, l4: CountingEngine, store: RevisionStore
) -> None:
    l4.fail_apply_with = "refused"
    failed = await service.edit(add_to("fast", "198.18.0.20"), by("alice"))
    assert not failed.applied
    l4.fail_apply_with = None
    l7.servers[WEB] = ServerRuntime(weight=9, state=RealServerState.enabled)  # drift
    l7.observed = 0
    result = await service.edit(add_to("fast", "198.18.0.21"), by("alice"))
    assert result.applied
    assert l7.observed >= 1  # the head did not run as committed: every engine is planned
    assert l7.servers[WEB].weight == 1
    applied = store.applied()
    assert applied is not None and applied.ok and applied.last_good == result.revision
