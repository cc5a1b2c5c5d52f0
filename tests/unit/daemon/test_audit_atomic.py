"""A committed revision and its audit entry are written in one transaction (both or neither),
and the entry carries the role of whoever made the change."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from change_requests import by

from bascule.daemon.audit import AuditEntry, AuditService
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import FakeEngine
from bascule.errors import StoreError
from bascule.model import RealServerState, edits
from bascule.model.access import Role
from bascule.store import revisions
from bascule.store.audit import AuditRecord, AuditStore
from bascule.store.revisions import RevisionStore

Document = dict[str, Any]
KEY = "198.18.0.4:80"


def document(weight: int = 1000) -> Document:
    return {
        "virtual_services": [
            {
                "name": "web",
                "address": "198.18.0.100",
                "port": 80,
                "scheduler": "weighted_round_robin",
                "real_servers": [{"address": "198.18.0.4", "port": 80, "weight": weight}],
            }
        ]
    }


def record(**changes: Any) -> AuditRecord:
    fields: dict[str, Any] = {
        "at": datetime(2027, 1, 15, tzinfo=UTC),
        "actor": "alice",
        "role": "operator",
        "remote": "192.0.2.7",
        "action": "config.apply",
        "target": "",
        "revision": None,
        "diff": (),
        "outcome": "ok",
        "detail": "first",
    }
    return AuditRecord(**(fields | changes))


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditService]:
    with AuditStore(tmp_path / "bascule.db") as store:
        yield AuditService(store, clock=lambda: 1_800_000_000.0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RevisionStore]:
    with RevisionStore(tmp_path / "bascule.db") as opened:
        yield opened


@pytest.fixture
def service(store: RevisionStore, audit: AuditService) -> ConfigService:
    return ConfigService(store=store, engines=[FakeEngine()], vips=NullVipManager(), audit=audit)


@pytest.fixture
def failing_audit_insert(monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit insert fails after the revision's INSERT, inside the same transaction (as a
    full disk or a crash between the two would)."""

    def fail(db: sqlite3.Connection, entry: AuditRecord) -> int:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(revisions, "insert_entry", fail)


def entries(audit: AuditService) -> list[AuditEntry]:
    found, _ = audit.page(0, 100)
    return list(reversed(found))


def test_commit_writes_the_entry_with_the_revision(
    store: RevisionStore, audit: AuditService
) -> None:
    revision = store.commit(document(), base=None, author="alice", message="m", audit=record())
    [entry] = entries(audit)
    assert (entry.revision, entry.actor, entry.role, entry.remote) == (
        revision.number,
        "alice",
        "operator",
        "192.0.2.7",
    )


def test_a_commit_of_no_change_writes_no_entry(store: RevisionStore, audit: AuditService) -> None:
    store.commit(document(), base=None, author="alice", message="m", audit=record())
    head = store.commit(document(), base=1, author="bob", message="m", audit=record(actor="bob"))
    assert head.number == 1
    assert [e.actor for e in entries(audit)] == ["alice"]


@pytest.mark.usefixtures("failing_audit_insert")
def test_a_failed_audit_insert_commits_no_revision(
    store: RevisionStore, audit: AuditService
) -> None:
    with pytest.raises(StoreError, match="disk is full"):
        store.commit(document(), base=None, author="alice", message="m", audit=record())
    assert store.head() is None
    assert entries(audit) == []
    # the store is usable afterwards (the transaction was rolled back, not left open)
    assert store.commit(document(), base=None, author="alice", message="m").number == 1


@pytest.mark.usefixtures("failing_audit_insert")
async def test_the_service_refuses_a_change_it_cannot_audit(
    service: ConfigService, store: RevisionStore, audit: AuditService
) -> None:
    with pytest.raises(StoreError):
        await service.apply(document(), by("alice", role=Role.admin, remote="192.0.2.7"))
    assert store.head() is None
    # neither the revision nor its entry; the refusal is recorded as any refused change
    [entry] = entries(audit)
    assert (entry.outcome, entry.revision, entry.role) == ("refused", None, "admin")
    assert "disk is full" in entry.detail


async def test_every_write_records_the_role(service: ConfigService, audit: AuditService) -> None:
    await service.apply(document(), by("alice", role=Role.admin))
    await service.edit(
        lambda doc: edits.update_real_server(doc, "web", KEY, {"weight": 5}),
        by("bob", role=Role.admin, message="lighter"),
    )
    await service.set_real_server_state(
        "web", KEY, RealServerState.drain, by("olivia", role=Role.operator)
    )
    await service.rollback(1, by("root@local", role=Role.admin, remote="unix socket"))
    recorded = [(e.action, e.actor, e.role, e.revision) for e in entries(audit)]
    assert recorded == [
        ("config.apply", "alice", "admin", 1),
        ("config.edit", "bob", "admin", 2),
        ("real_server.state", "olivia", "operator", 3),
        ("config.rollback", "root@local", "admin", 4),
    ]


async def test_a_failed_apply_settles_the_committed_entry(
    service: ConfigService, audit: AuditService
) -> None:
    engine = service.engines[0]
    assert isinstance(engine, FakeEngine)
    engine.fail_apply_with = "haproxy died"
    await service.apply(document(), by("alice", role=Role.operator, message="first"))
    [entry] = entries(audit)
    assert (entry.outcome, entry.revision, entry.role) == ("apply_failed", 1, "operator")
    assert entry.detail.startswith("first; ") and "haproxy died" in entry.detail
