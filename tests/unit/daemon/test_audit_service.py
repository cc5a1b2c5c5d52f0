"""The audit log of configuration changes, recorded by ConfigService in one place: who, from
where, the message, the revision and its diff; refused changes too, dry runs not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from change_requests import by

from bascule.daemon.audit import AuditEntry, AuditService
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import FakeEngine
from bascule.errors import Conflict, InvalidConfiguration, NotFound, StoreError
from bascule.model import RealServerState, edits
from bascule.model.access import Actor, Role
from bascule.store.audit import AuditStore
from bascule.store.revisions import RevisionStore

Document = dict[str, Any]


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


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditService]:
    with AuditStore(tmp_path / "bascule.db") as store:
        yield AuditService(store, clock=lambda: 1_800_000_000.0)


@pytest.fixture
def service(tmp_path: Path, audit: AuditService) -> Iterator[ConfigService]:
    with RevisionStore(tmp_path / "bascule.db") as store:
        yield ConfigService(store=store, engines=[FakeEngine()], vips=NullVipManager(), audit=audit)


def entries(audit: AuditService) -> list[AuditEntry]:
    found, total = audit.page(0, 100)
    assert total == len(found)
    return list(reversed(found))


async def test_a_committed_change_is_recorded_with_its_diff(
    service: ConfigService, audit: AuditService
) -> None:
    await service.apply(document(), by("alice", remote="192.0.2.7", message="first"))
    [entry] = entries(audit)
    assert (entry.actor, entry.remote, entry.action, entry.outcome, entry.detail) == (
        "alice",
        "192.0.2.7",
        "config.apply",
        "ok",
        "first",
    )
    assert entry.revision == 1
    assert entry.at.timestamp() == 1_800_000_000.0
    assert (entry.diff[0]["op"], entry.diff[0]["path"]) == ("add", "virtual_services")


async def test_edits_state_changes_and_rollbacks(
    service: ConfigService, audit: AuditService
) -> None:
    await service.apply(document(), by("alice"))
    await service.edit(
        lambda doc: edits.update_real_server(doc, "web", "198.18.0.4:80", {"weight": 5}),
        by("bob", remote="192.0.2.8", message="lighter"),
    )
    await service.set_real_server_state("web", "198.18.0.4:80", RealServerState.drain, by("carol"))
    await service.rollback(1, by("dave", remote="192.0.2.9"))
    recorded = [(e.action, e.target, e.actor, e.revision) for e in entries(audit)]
    assert recorded == [
        ("config.apply", "", "alice", 1),
        ("config.edit", "", "bob", 2),
        ("real_server.state", "web/198.18.0.4:80", "carol", 3),
        ("config.rollback", "1", "dave", 4),
    ]
    assert entries(audit)[1].diff == (
        {
            "op": "change",
            "path": "virtual_services[web].real_servers[198.18.0.4:80].weight",
            "old": 1000,
            "new": 5,
        },
    )


async def test_refused_changes_are_recorded(service: ConfigService, audit: AuditService) -> None:
    await service.apply(document(), by("alice"))
    with pytest.raises(InvalidConfiguration):
        await service.apply(document(weight=-1), by("bob", remote="192.0.2.8"))
    with pytest.raises(Conflict):
        await service.apply(document(weight=3), by("carol", base=7))
    with pytest.raises(NotFound):
        await service.rollback(42, by("dave"))
    refused = [(e.actor, e.action, e.outcome, e.revision) for e in entries(audit)[1:]]
    assert refused == [
        ("bob", "config.apply", "refused", None),
        ("carol", "config.apply", "refused", None),
        ("dave", "config.rollback", "refused", None),
    ]
    assert "weight" in entries(audit)[1].detail
    assert entries(audit)[1].remote == "192.0.2.8"


async def test_dry_runs_and_no_ops_are_not_recorded(
    service: ConfigService, audit: AuditService
) -> None:
    await service.apply(document(), by("alice", dry_run=True))
    await service.apply(document(), by("alice"))
    await service.apply(document(), by("alice"))  # no change
    with pytest.raises(InvalidConfiguration):
        await service.apply(document(weight=-1), by("bob", dry_run=True))
    assert [e.revision for e in entries(audit)] == [1]


async def test_a_failed_apply_is_recorded_as_such(
    service: ConfigService, audit: AuditService
) -> None:
    engine = service.engines[0]
    assert isinstance(engine, FakeEngine)
    engine.fail_apply_with = "haproxy died"
    await service.apply(document(), by("alice"))
    [entry] = entries(audit)
    assert (entry.outcome, entry.revision) == ("apply_failed", 1)
    assert "haproxy died" in entry.detail


def test_an_actor_is_recorded_with_its_role(audit: AuditService) -> None:
    actor = Actor(name="alice", role=Role.operator, via="token", remote="192.0.2.1")
    audit.record(actor, "persistence.clear", "web", detail="3 entries")
    audit.record(None, "user.create", "admin")
    first, second = entries(audit)
    assert (first.actor, first.role, first.remote) == ("alice", "operator", "192.0.2.1")
    assert (second.actor, second.role) == ("system", "")


def test_pages_and_filters(audit: AuditService) -> None:
    for number in range(7):
        audit.record(f"user{number % 2}", "login" if number < 5 else "logout", f"t{number}")
    page, total = audit.page(0, 3)
    assert total == 7 and [e.target for e in page] == ["t6", "t5", "t4"]
    page, _ = audit.page(6, 3)
    assert [e.target for e in page] == ["t0"]
    page, total = audit.page(0, 10, actor="user1", action="login")
    assert total == 2 and [e.target for e in page] == ["t3", "t1"]


def test_recording_never_fails_the_change(tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "audit.db")
    audit = AuditService(store)
    store.close()
    audit.record("alice", "config.apply")  # logged, not raised
    with pytest.raises(StoreError):
        audit.page(0, 1)
