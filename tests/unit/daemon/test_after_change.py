"""``ChangePipeline.after_change``: told at the end of every change that ran, through the whole
flow or the operate path, and not for a refused one (the daemon trims its heap then:
daemon/heap.py, ``Trimmer``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from change_requests import by

from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import FakeEngine
from bascule.errors import InvalidConfiguration
from bascule.reconcile.operations import ServerOperation
from bascule.store.revisions import RevisionStore

SERVER = {"address": "198.18.0.4", "port": 80}
DOCUMENT = {
    "virtual_services": [
        {"name": "web", "address": "198.18.0.100", "port": 80, "real_servers": [SERVER]}
    ]
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RevisionStore]:
    with RevisionStore(tmp_path / "bascule.db") as opened:
        yield opened


async def test_every_change_that_ran_is_told_and_a_refused_one_is_not(
    store: RevisionStore,
) -> None:
    service = ConfigService(store=store, engines=[FakeEngine()], vips=NullVipManager())
    told: list[int | None] = []
    service.changes.after_change = lambda: told.append(store.head_number())
    await service.apply(DOCUMENT, by("alice"))  # the whole flow
    weight = ServerOperation(pool="web", key="198.18.0.4:80", changes={"weight": 5})
    await service.operate([weight], by("bob"))  # the operate path
    assert told == [1, 2]
    with pytest.raises(InvalidConfiguration):
        await service.apply({"virtual_services": [{"name": "web"}]}, by("alice"))
    assert told == [1, 2]
