"""Status reads that come together share one reading of the engines (finding 7): 200 status
or metrics requests side by side observe the engines once, not 200 times."""

from __future__ import annotations

import asyncio
from pathlib import Path

from change_requests import by

from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import EngineObservation, FakeEngine
from bascule.model import Configuration
from bascule.store.revisions import RevisionStore


class SlowEngine(FakeEngine):
    """Counts its observations; each takes a moment, like ``show stat`` of a large config."""

    def __init__(self) -> None:
        super().__init__()
        self.observed = 0

    async def observe(
        self, applied: Configuration | None, *, counters: bool = True
    ) -> EngineObservation:
        if counters:
            self.observed += 1
            await asyncio.sleep(0.05)
        return await super().observe(applied, counters=counters)


async def test_concurrent_status_reads_share_one_observation(tmp_path: Path) -> None:
    engine = SlowEngine()
    with RevisionStore(tmp_path / "bascule.db") as store:
        service = ConfigService(store=store, engines=[engine], vips=NullVipManager())
        document = {
            "virtual_services": [
                {
                    "name": "web",
                    "address": "198.18.0.100",
                    "port": 80,
                    "real_servers": [{"address": "198.18.0.4", "port": 80}],
                }
            ]
        }
        await service.apply(document, by("test"))
        engine.observed = 0
        reports = await asyncio.gather(*(service.status() for _ in range(200)))
        assert engine.observed == 1
        assert {report.revision for report in reports} == {1}
        # a caller that gives up does not cancel the others' report
        first = asyncio.ensure_future(service.status())
        second = asyncio.ensure_future(service.status())
        await asyncio.sleep(0)
        first.cancel()
        assert (await second).revision == 1
        # and the next read is a new one
        await service.status()
        assert engine.observed == 3
