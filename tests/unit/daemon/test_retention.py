"""The daemon's retention pass (finding 4): the audit log by age and size, the history by
count and size, run in a worker thread every interval; what it removed is logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bascule.daemon.retention import Retention, RetentionPolicy
from bascule.store.audit import AuditOutcome, AuditRecord, AuditStore
from bascule.store.revisions import RevisionStore

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[RevisionStore, AuditStore]]:
    with (
        RevisionStore(tmp_path / "bascule.db") as revisions,
        AuditStore(tmp_path / "bascule.db") as audit,
    ):
        yield revisions, audit


def fill(revisions: RevisionStore, audit: AuditStore) -> None:
    for port in range(1, 31):
        revisions.commit(
            {"virtual_services": [{"name": "web", "port": port}]},
            base=revisions.head_number(),
            author="test",
            message="",
        )
    for age in range(40):
        audit.append(
            AuditRecord(
                at=NOW - timedelta(days=age * 10),
                actor="admin",
                role="admin",
                remote="192.0.2.1",
                action="login",
                target="admin",
                revision=None,
                diff=(),
                outcome=AuditOutcome.ok,
                detail="",
            )
        )


def test_a_pass_prunes_by_the_policy(stores: tuple[RevisionStore, AuditStore]) -> None:
    revisions, audit = stores
    fill(revisions, audit)
    retention = Retention(
        revisions=revisions,
        audit=audit,
        policy=RetentionPolicy(audit_days=100, revisions_keep=10),
        clock=NOW.timestamp,
    )
    pruned = retention.prune()
    assert pruned.audit_entries == 29  # older than 100 days: 110 to 390 days old
    assert pruned.revisions == tuple(range(1, 21))
    assert audit.size()[0] == 11
    assert revisions.history(limit=100)[-1].number == 21


async def test_the_loop_prunes_and_says_so(
    stores: tuple[RevisionStore, AuditStore], caplog: pytest.LogCaptureFixture
) -> None:
    revisions, audit = stores
    fill(revisions, audit)
    retention = Retention(
        revisions=revisions,
        audit=audit,
        policy=RetentionPolicy(revisions_keep=5),
        interval=0.01,
        clock=NOW.timestamp,
    )
    with caplog.at_level(logging.INFO, logger="bascule.retention"):
        task = asyncio.create_task(retention.run())
        async with asyncio.timeout(10):
            # a pass prunes in a worker thread and says so after: wait for its words
            while not said(caplog, "pruned by the retention policy"):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(revisions.history(limit=100)) == 5


def said(caplog: pytest.LogCaptureFixture, message: str) -> bool:
    return any(r.message == message for r in caplog.records)
