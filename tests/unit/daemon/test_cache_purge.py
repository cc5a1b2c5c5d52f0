"""purge_cache (daemon/caches.py) over a FakeEngine that keeps caches: the engine is asked
with the document it runs, under the lock; unknown services and services without a cache are
refused; the purge is audited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from change_requests import by

from bascule.daemon.audit import AuditService
from bascule.daemon.caches import purge_cache
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import FakeEngine
from bascule.errors import NotApplicable, NotFound
from bascule.model import Configuration
from bascule.store.audit import AuditStore
from bascule.store.revisions import RevisionStore

ADMIN = by("alice").actor


class CachingEngine(FakeEngine):
    def __init__(self) -> None:
        super().__init__()
        self.purged: list[tuple[str, bool]] = []  # (service, whether the engine ran it)

    async def purge_cache(self, applied: Configuration | None, name: str) -> bool:
        running = applied is not None and applied.pool(name) is not None
        self.purged.append((name, running))
        return running


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[ConfigService, CachingEngine, AuditStore]]:
    path = tmp_path / "bascule.db"
    with RevisionStore(path) as revisions, AuditStore(path) as audits:
        engine = CachingEngine()
        config = ConfigService(
            store=revisions, engines=[engine], vips=NullVipManager(), audit=AuditService(audits)
        )
        yield config, engine, audits


def document() -> dict[str, Any]:
    service = {"address": "198.18.0.100", "real_servers": [{"address": "198.18.0.4", "port": 80}]}
    return {
        "virtual_services": [
            {
                **service,
                "name": "site",
                "port": 80,
                "cache": {},
                "sub_services": [
                    {"name": "static", "cache": {"size_mb": 8}},
                    {"name": "api"},
                ],
            },
            {**service, "name": "bare", "port": 81},
        ]
    }


async def test_the_engine_purges_the_running_cache_and_it_is_audited(
    parts: tuple[ConfigService, CachingEngine, AuditStore],
) -> None:
    config, engine, audits = parts
    await config.apply(document(), by("alice"))
    purged = await purge_cache(config, "site", actor=ADMIN)
    assert (purged.service, purged.running) == ("site", True)
    assert engine.purged == [("site", True)]
    entries, _ = audits.page(0, 10)
    assert ("cache.purge", "site") in [(e.action, e.target) for e in entries]


async def test_an_unknown_service_or_one_without_a_cache_is_refused(
    parts: tuple[ConfigService, CachingEngine, AuditStore],
) -> None:
    config, engine, _ = parts
    await config.apply(document(), by("alice"))
    with pytest.raises(NotFound):
        await purge_cache(config, "nowhere", actor=ADMIN)
    with pytest.raises(NotApplicable, match="has no cache"):
        await purge_cache(config, "bare", actor=ADMIN)
    assert engine.purged == []


async def test_a_sub_services_own_cache_is_purged_by_its_pool_name(
    parts: tuple[ConfigService, CachingEngine, AuditStore],
) -> None:
    config, engine, audits = parts
    await config.apply(document(), by("alice"))
    purged = await purge_cache(config, "site/static", actor=ADMIN)
    assert (purged.service, purged.running) == ("site/static", True)
    with pytest.raises(NotApplicable, match="has no cache"):
        await purge_cache(config, "site/api", actor=ADMIN)
    with pytest.raises(NotFound):
        await purge_cache(config, "site/nowhere", actor=ADMIN)
    assert engine.purged == [("site/static", True)]
    entries, _ = audits.page(0, 10)
    assert ("cache.purge", "site/static") in [(e.action, e.target) for e in entries]
