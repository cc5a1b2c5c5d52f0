"""Pruning the audit log and the history (finding 4): by age and by size for the audit log,
by count and by size for the revisions, never what the daemon runs on nor a rollback's origin."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bascule.store.audit import AuditOutcome, AuditRecord, AuditStore
from bascule.store.revisions import RevisionStore

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditStore]:
    with AuditStore(tmp_path / "bascule.db") as store:
        yield store


@pytest.fixture
def revisions(tmp_path: Path) -> Iterator[RevisionStore]:
    with RevisionStore(tmp_path / "bascule.db") as store:
        yield store


def append(store: AuditStore, at: datetime, detail: str = "") -> int:
    return store.append(
        AuditRecord(
            at=at,
            actor="viewer",
            role="viewer",
            remote="203.0.113.9",
            action="access.denied",
            target="GET /",
            revision=None,
            diff=(),
            outcome=AuditOutcome.refused,
            detail=detail,
        )
    )


def test_the_audit_log_loses_its_old_entries(audit: AuditStore) -> None:
    for day in range(10):
        append(audit, T0 + timedelta(days=day))
    assert audit.prune(before=T0 + timedelta(days=7), max_bytes=10**9) == 7
    assert [e.at for e in audit.page(0, 10)[0]] == [T0 + timedelta(days=d) for d in (9, 8, 7)]


def test_the_audit_log_keeps_its_newest_within_the_size(audit: AuditStore) -> None:
    ids = [append(audit, T0, detail="x" * 10_000) for _ in range(100)]
    count, size = audit.size()
    assert count == 100 and size > 1_000_000
    removed = audit.prune(before=T0 - timedelta(days=1), max_bytes=100_000)
    count, size = audit.size()
    assert removed == 100 - count and size <= 100_000 and count >= 9
    assert [e.id for e in audit.page(0, 100)[0]] == sorted(ids[-count:], reverse=True)


def commit(store: RevisionStore, port: int, *, size: int = 0) -> int:
    head = store.head_number()
    document = {
        "virtual_services": [{"name": "web", "address": "198.18.0.1", "port": port}],
        "padding": "p" * size,
    }
    return store.commit(document, base=head, author="test", message=f"port {port}").number


def test_the_history_keeps_its_newest_and_what_runs(revisions: RevisionStore) -> None:
    for port in range(1, 21):
        commit(revisions, port)
    revisions.record_applied(3, ok=True, message="")  # the last good, long ago
    revisions.record_applied(4, ok=False, message="refused")  # the last attempt
    pruned = revisions.prune(keep=5, max_bytes=10**9)
    assert pruned == [1, 2, *range(5, 16)]
    assert [r.number for r in revisions.history(limit=100)] == [20, 19, 18, 17, 16, 4, 3]
    revisions.get(3)  # still readable


def test_a_rollbacks_origin_is_kept_with_it(revisions: RevisionStore) -> None:
    for port in range(1, 11):
        commit(revisions, port)
    rolled = revisions.rollback(2, base=10, author="test")  # revision 11 restores revision 2
    pruned = revisions.prune(keep=3, max_bytes=10**9)
    assert 2 not in pruned and 1 in pruned
    assert revisions.get(rolled.number).rolled_back_from == 2
    revisions.get(2)


def test_the_history_keeps_within_its_size(revisions: RevisionStore) -> None:
    for port in range(1, 11):
        commit(revisions, port, size=100_000)
    pruned = revisions.prune(keep=1000, max_bytes=450_000)
    assert pruned == [1, 2, 3, 4, 5, 6]
    assert revisions.head_number() == 10
    # the head stays, however large
    assert revisions.prune(keep=1, max_bytes=1) == [7, 8, 9]
    assert [r.number for r in revisions.history()] == [10]
