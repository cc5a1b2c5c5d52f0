"""adoption.adopt_engines: at start, every engine that a previous daemon left running is adopted
with its share of the last good revision; adopted L4 servers start up in the checker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bascule.daemon.adoption import adopt_engines
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import FakeEngine
from bascule.model import Configuration, Mode, parse_document
from bascule.model.document import for_mode
from bascule.store.revisions import RevisionStore

LAST_GOOD = parse_document(
    {
        "virtual_services": [
            {"name": "web", "address": "198.18.0.100", "port": 80},
            {"name": "dns", "address": "198.18.0.100", "port": 53, "protocol": "udp"},
        ]
    }
)


def engine(name: str, mode: Mode, *, left_running: bool) -> FakeEngine:
    fake = FakeEngine()
    fake.name, fake.mode, fake.left_running = name, mode, left_running
    return fake


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RevisionStore]:
    with RevisionStore(tmp_path / "bascule.db") as opened:
        yield opened


@pytest.mark.parametrize(
    ("l7_running", "l4_running"), [(True, True), (True, False), (False, True), (False, False)]
)
async def test_each_engine_left_running_is_adopted_with_its_share(
    store: RevisionStore, l7_running: bool, l4_running: bool
) -> None:
    engines = [
        engine("haproxy", Mode.l7, left_running=l7_running),
        engine("nftables", Mode.l4, left_running=l4_running),
    ]
    service = ConfigService(store=store, engines=engines, vips=NullVipManager())
    checked: list[Configuration] = []

    async def l4_adopted(config: Configuration) -> None:
        checked.append(config)

    adopted = await adopt_engines(service, LAST_GOOD, l4_adopted=l4_adopted)
    running = {"haproxy": l7_running, "nftables": l4_running}
    assert adopted == [name for name, up in running.items() if up]
    for fake in engines:
        expected = for_mode(LAST_GOOD, fake.mode) if running[fake.name] else None
        assert service.reconciler.running(fake.name) == expected
    assert checked == ([for_mode(LAST_GOOD, Mode.l4)] if l4_running else [])


async def test_without_a_last_good_revision_nothing_is_known_to_run(
    store: RevisionStore,
) -> None:
    engines = [engine("nftables", Mode.l4, left_running=True)]
    service = ConfigService(store=store, engines=engines, vips=NullVipManager())

    async def l4_adopted(config: Configuration) -> None:
        raise AssertionError("no document to check")

    assert await adopt_engines(service, None, l4_adopted=l4_adopted) == ["nftables"]
    assert service.reconciler.running("nftables") is None
