"""A password change revokes the API tokens its user owns (finding 9, decided): a token made
with the old password by whoever held it must not outlive the change meant to end that access.
Other users' tokens stay; the audit entry says how many went."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from bascule.daemon.accounts import AccountService
from bascule.daemon.audit import AuditService
from bascule.model.access import Actor, Role
from bascule.store.accounts import AccountStore
from bascule.store.audit import AuditStore

ROOT = Actor(name="root@local", role=Role.admin, via="local", remote="unix socket")


@pytest.fixture
async def accounts(tmp_path: Path) -> AsyncIterator[tuple[AccountService, AuditService]]:
    with (
        AccountStore(tmp_path / "bascule.db") as store,
        AuditStore(tmp_path / "bascule.db") as audit_store,
    ):
        audit = AuditService(audit_store)
        accounts = AccountService(
            store,
            idle_timeout=900,
            lockout_attempts=5,
            lockout_seconds=300,
            audit=audit,
            hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
        )
        await accounts.ensure_admin("admin-password")
        await accounts.create_user("alice", Role.operator, "alice-password", by=ROOT)
        yield accounts, audit


async def test_a_new_password_revokes_its_owners_tokens(
    accounts: tuple[AccountService, AuditService],
) -> None:
    service, audit = accounts
    alice = Actor(name="alice", role=Role.operator, via="session", remote="192.0.2.1")
    _, hers = service.create_token("ci", Role.operator, by=alice)
    _, also_hers = service.create_token("made for her", Role.viewer, by=ROOT, owner="alice")
    _, admins = service.create_token("admin's", Role.admin, by=ROOT, owner="admin")
    session = await service.login("alice", "alice-password", remote="192.0.2.1")
    revoked = await service.set_password(
        "alice", "new-alice-password", by=alice, current="alice-password"
    )
    assert revoked == 2
    assert service.authenticate_token(hers, remote="x") is None
    assert service.authenticate_token(also_hers, remote="x") is None
    assert service.authenticate_token(admins, remote="x") is not None
    assert service.resume(session.id, remote="x") is None
    entries, _ = audit.page(0, 1, action="user.password")
    assert entries[0].detail == "sessions ended, 2 API tokens revoked"
    # an administrator's reset (a compromise response, say) does the same
    _, fresh = service.create_token("ci again", Role.operator, by=alice)
    admin = Actor(name="admin", role=Role.admin, via="session", remote="192.0.2.9")
    assert await service.set_password("alice", "third-alice-password", by=admin) == 1
    assert service.authenticate_token(fresh, remote="x") is None
