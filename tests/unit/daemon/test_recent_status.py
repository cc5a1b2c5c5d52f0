"""ConfigService.recent_status: the engines' last reading serves while recent; the document's
side of the status is always the current revision's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from change_requests import by

from bascule.daemon import service as service_module
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import EngineObservation, FakeEngine
from bascule.model import Configuration, RealServerState
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


class CountingEngine(FakeEngine):
    def __init__(self) -> None:
        super().__init__()
        self.readings = 0

    async def observe(
        self, applied: Configuration | None, *, counters: bool = True
    ) -> EngineObservation:
        if counters:
            self.readings += 1
        return await super().observe(applied, counters=counters)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RevisionStore]:
    with RevisionStore(tmp_path / "bascule.db") as opened:
        yield opened


async def test_a_recent_reading_serves_and_the_document_side_is_current(
    store: RevisionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = CountingEngine()
    service = ConfigService(store=store, engines=[engine], vips=NullVipManager())
    await service.apply(DOCUMENT, by("alice"))
    monkeypatch.setattr(service_module, "READING_MIN_AGE", 3600.0)
    monkeypatch.setattr(service_module, "READING_MAX_AGE", 3600.0)
    first = await service.status()  # a fresh reading, as the sampler makes
    assert engine.readings == 1
    again = await service.recent_status()
    assert again is first and engine.readings == 1  # the same report, no engine read
    await service.set_real_server_state("web", "198.18.0.4:80", RealServerState.drain, by("bob"))
    drained = await service.recent_status()
    assert engine.readings == 1
    assert drained.revision == 2
    assert drained.virtual_services[0].real_servers[0].state is RealServerState.drain


async def test_an_old_reading_is_read_again(
    store: RevisionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = CountingEngine()
    service = ConfigService(store=store, engines=[engine], vips=NullVipManager())
    await service.apply(DOCUMENT, by("alice"))
    await service.status()
    monkeypatch.setattr(service_module, "READING_MIN_AGE", -1.0)
    monkeypatch.setattr(service_module, "READING_AGE_FACTOR", 0.0)
    report: Any = await service.recent_status()
    assert engine.readings == 2
    assert report.revision == 1


async def read_slowly_long_ago(
    store: RevisionStore, monkeypatch: pytest.MonkeyPatch
) -> tuple[CountingEngine, ConfigService, Any]:
    """A service with one reading made, every reading since past its bound and slow (one
    that took more than ``READING_WAIT_MAX``); and that reading's report."""
    engine = CountingEngine()
    service = ConfigService(store=store, engines=[engine], vips=NullVipManager())
    await service.apply(DOCUMENT, by("alice"))
    first = await service.status()
    monkeypatch.setattr(service_module, "READING_MIN_AGE", -1.0)
    monkeypatch.setattr(service_module, "READING_AGE_FACTOR", 0.0)
    monkeypatch.setattr(service_module, "READING_WAIT_MAX", -1.0)
    return engine, service, first


async def test_a_slow_reading_past_its_bound_is_made_again_off_the_request_path(
    store: RevisionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, service, first = await read_slowly_long_ago(store, monkeypatch)
    served = await service.recent_status()
    assert served is first  # answered from the last reading at once...
    flight = service._status_flight
    assert flight is not None and not flight.done()  # ...while the next one is made
    again = await service.recent_status()
    assert again is first and service._status_flight is flight  # one reading at a time
    newer = await flight
    assert engine.readings == 2 and newer is not first
    monkeypatch.setattr(service_module, "READING_AGE_FACTOR", 3600.0)
    assert await service.recent_status() is newer  # served once made


async def test_a_reading_too_old_to_serve_is_waited_for(
    store: RevisionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, service, first = await read_slowly_long_ago(store, monkeypatch)
    monkeypatch.setattr(service_module, "READING_STALE_MAX", -1.0)
    fresh = await service.recent_status()
    assert fresh is not first and engine.readings == 2
