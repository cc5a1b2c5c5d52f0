"""Deferred reloads through the service layer: an engine that adds real servers at runtime and
makes them permanent with a reload later (``DefersReloads``, HAProxy's engine), faked here.

The change's answer says when it reloads (``now``, ``later``, ``none``), honestly: a runtime
change the engine had to apply by a reload says ``now``; the reconciler runs the deferred
reload under its lock, so a change that arrives meanwhile waits for it and then applies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from change_requests import by

from bascule.daemon.changes import Change
from bascule.daemon.results import Reload
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import ChangesServers, DefersReloads, FakeEngine
from bascule.model import Configuration, edits
from bascule.reconcile.actions import Action, ChangeServers
from bascule.reconcile.planner import desired_runtime
from bascule.store.revisions import RevisionStore

DOCUMENT = {
    "virtual_services": [
        {
            "name": "web",
            "address": "198.18.0.100",
            "port": 80,
            "real_servers": [{"address": "198.18.0.4", "port": 80}],
        }
    ]
}


class DeferringEngine(FakeEngine):
    """Adds real servers at runtime and reloads ``delay`` seconds later, when asked."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.due: float | None = None  # loop time of the pending reload
        self.refuse_runtime = False  # the engine falls back to a reload, as HAProxy's does
        self.hold: asyncio.Event | None = None  # a deferred reload waits for it
        self.deferred: list[Configuration | None] = []  # what each deferred reload ran
        self.follows = True  # a deferred reload makes runtime servers ordinary ones

    def server_changes(self, running: Configuration, desired: Configuration) -> ChangeServers:
        before = {(p.name, rs.key) for p in running.pools() for rs in p.real_servers}
        after = [(p.name, rs.key) for p in desired.pools() for rs in p.real_servers]
        added = tuple(r for r in after if r not in before)
        return ChangeServers(config=desired, added=added, reload_follows=self.follows)

    async def execute(self, actions: Sequence[Action], applied: Configuration | None) -> None:
        for action in actions:
            if isinstance(action, ChangeServers):
                self.running = action.config
                self.servers = desired_runtime(action.config, max_weight=self.max_weight)
                if self.refuse_runtime:
                    self.reloads += 1
                    self.due = None
                else:
                    self.due = asyncio.get_running_loop().time() + self.delay
                self.executed.append(action)
        await super().execute(actions, applied)

    def reload_in(self) -> float | None:
        return None if self.due is None else self.due - asyncio.get_running_loop().time()

    async def prepare_reload(self) -> None:
        return None

    async def reload_deferred(self, running: Configuration | None) -> bool:
        if self.hold is not None:
            await self.hold.wait()
        self.deferred.append(running)
        self.reloads += 1
        self.due = None
        return True


class RuntimeEngine(DeferringEngine):
    """Changes real servers at runtime for good, no reload to follow (the nftables engine's
    NAT servers): not a ``DefersReloads``."""

    reload_in = None  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.follows = False


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RevisionStore]:
    with RevisionStore(tmp_path / "bascule.db") as opened:
        yield opened


@pytest.fixture
def engine() -> DeferringEngine:
    return DeferringEngine()


@pytest.fixture
async def service(store: RevisionStore, engine: DeferringEngine) -> ConfigService:
    service = ConfigService(store=store, engines=[engine], vips=NullVipManager())
    assert (await service.apply(DOCUMENT, by("alice"))).reload is Reload.now
    return service


def add(last: int) -> Change:
    server = {"address": f"198.18.0.{last}", "port": 80}
    return lambda doc: edits.add_real_server(doc, "web", server)


def test_the_fake_is_what_the_reconciler_drives() -> None:
    assert isinstance(DeferringEngine(), DefersReloads)
    assert isinstance(DeferringEngine(), ChangesServers)


async def test_a_server_added_at_runtime_says_its_reload_comes_later(
    service: ConfigService, engine: DeferringEngine
) -> None:
    preview = await service.edit(add(5), by("bob", dry_run=True))
    assert (preview.reload, preview.reloads) == (Reload.later, False)
    result = await service.edit(add(5), by("bob"))
    assert (result.applied, result.reload, result.reloads) == (True, Reload.later, False)
    assert result.actions == (
        "fake: add web/198.18.0.5:80 (real servers at runtime, a reload follows)",
    )
    assert engine.reloads == 1  # the first apply's only
    assert service.reconciler.reload_pending()

    await service.reconciler.reload_deferred()
    assert engine.reloads == 2
    assert engine.deferred == [service.reconciler.running(engine.name)]
    assert not service.reconciler.reload_pending()


async def test_a_runtime_change_the_engine_applied_by_a_reload_says_so(
    service: ConfigService, engine: DeferringEngine
) -> None:
    engine.refuse_runtime = True
    result = await service.edit(add(5), by("bob"))
    assert (result.applied, result.reload, result.reloads) == (True, Reload.now, True)
    assert not service.reconciler.reload_pending()


async def test_a_reload_not_due_yet_waits(service: ConfigService, engine: DeferringEngine) -> None:
    engine.delay = 60.0
    await service.edit(add(5), by("bob"))
    await service.reconciler.reload_deferred()
    assert engine.deferred == []
    assert service.reconciler.reload_pending()


async def test_a_change_during_the_deferred_reload_waits_for_it_then_applies(
    service: ConfigService, engine: DeferringEngine
) -> None:
    await service.edit(add(5), by("bob"))
    engine.hold = asyncio.Event()
    reloading = asyncio.create_task(service.reconciler.reload_deferred())
    await asyncio.sleep(0)
    assert service.reconciler.lock.locked()  # the deferred reload holds the change lock
    change = asyncio.create_task(service.edit(add(6), by("carol")))
    await asyncio.sleep(0.05)
    assert not change.done()
    engine.hold.set()
    await reloading
    result = await asyncio.wait_for(change, 5)
    assert (result.applied, result.reload) == (True, Reload.later)
    assert len(engine.deferred) == 1
    assert [rs.key for rs in service.desired().virtual_services[0].real_servers] == [
        "198.18.0.4:80",
        "198.18.0.5:80",
        "198.18.0.6:80",
    ]
    assert service.reconciler.reload_pending()  # the second addition's own


async def test_the_loop_runs_the_reload_when_it_is_due(
    service: ConfigService, engine: DeferringEngine
) -> None:
    engine.delay = 0.1
    await service.edit(add(5), by("bob"))
    loop = asyncio.create_task(service.reconciler.run_deferred_reloads())
    try:
        deadline = asyncio.get_running_loop().time() + 5
        while service.reconciler.reload_pending():
            assert asyncio.get_running_loop().time() < deadline, "no deferred reload in 5 s"
            await asyncio.sleep(0.02)
        assert len(engine.deferred) == 1
    finally:
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop


async def test_servers_changed_at_runtime_for_good_say_no_reload(store: RevisionStore) -> None:
    engine = RuntimeEngine()
    assert isinstance(engine, ChangesServers) and not isinstance(engine, DefersReloads)
    service = ConfigService(store=store, engines=[engine], vips=NullVipManager())
    assert (await service.apply(DOCUMENT, by("alice"))).reload is Reload.now
    preview = await service.edit(add(5), by("bob", dry_run=True))
    assert (preview.reload, preview.reloads) == (Reload.none, False)
    result = await service.edit(add(5), by("bob"))
    assert (result.applied, result.reload, result.reloads) == (True, Reload.none, False)
    assert engine.reloads == 1  # the first apply's only
