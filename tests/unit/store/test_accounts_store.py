"""The account tables: rows as the service writes them, and no secret in clear on disk."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from bascule.daemon.accounts import AccountService
from bascule.errors import NotFound, StoreError
from bascule.model.access import Actor, Role
from bascule.store.accounts import AccountStore, FailureScope, PasswordFailures
from bascule.store.audit import AuditStore
from bascule.store.database import MIGRATIONS, open_database, schema_version
from bascule.store.revisions import RevisionStore

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ADMIN = Actor(name="root@local", role=Role.admin, via="local", remote="unix socket")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AccountStore]:
    with AccountStore(tmp_path / "bascule.db") as opened:
        yield opened


def test_the_accounts_share_the_revisions_file(tmp_path: Path) -> None:
    path = tmp_path / "bascule.db"
    with RevisionStore(path), AccountStore(path), AuditStore(path):
        connection = open_database(path)
        tables = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        assert schema_version(connection) == len(MIGRATIONS)
        connection.close()
    assert {
        "revisions",
        "users",
        "api_tokens",
        "sessions",
        "password_failures",
        "login_sources",
        "audit_log",
    } <= tables


def test_users(store: AccountStore) -> None:
    assert store.add_user("alice", Role.operator, "$argon2id$hash", at=T0) is not None
    assert store.add_user("alice", Role.viewer, "$argon2id$other", at=T0) is None
    assert store.password_hash("alice") == "$argon2id$hash"
    store.set_role("alice", Role.admin)
    store.set_password_hash("alice", "$argon2id$new", at=T0 + timedelta(hours=1))
    user = store.user("alice")
    assert user is not None
    assert (user.role, user.created_at, user.password_changed_at) == (
        Role.admin,
        T0,
        T0 + timedelta(hours=1),
    )
    assert store.count_admins() == 1
    with pytest.raises(NotFound):
        store.set_role("bob", Role.viewer)
    with pytest.raises(NotFound):
        store.delete_user("bob", at=T0)


def test_deleting_a_user_ends_sessions_and_revokes_tokens(store: AccountStore) -> None:
    store.add_user("alice", Role.operator, "h", at=T0)
    store.add_session("s1", "alice", at=T0, remote="192.0.2.1")
    store.add_token("0123456789abcdef", "ci", Role.viewer, "alice", "sha", at=T0)
    store.delete_user("alice", at=T0 + timedelta(minutes=1))
    assert store.session("s1") is None
    token = store.token("0123456789abcdef")
    assert token is not None and token.revoked_at == T0 + timedelta(minutes=1)
    assert store.token_secret_hash("0123456789abcdef") is None


def test_a_new_password_ends_the_sessions(store: AccountStore) -> None:
    store.add_user("alice", Role.operator, "h", at=T0)
    store.add_session("s1", "alice", at=T0, remote="192.0.2.1")
    store.set_password_hash("alice", "h2", at=T0)
    assert store.session("s1") is None


def test_sessions_carry_the_current_role(store: AccountStore) -> None:
    store.add_user("alice", Role.operator, "h", at=T0)
    store.add_session("s1", "alice", at=T0, remote="192.0.2.1")
    store.set_role("alice", Role.viewer)
    session = store.session("s1")
    assert session is not None and session.role == Role.viewer
    store.touch_session("s1", at=T0 + timedelta(seconds=30), remote="192.0.2.2")
    session = store.session("s1")
    assert session is not None
    assert (session.last_seen, session.remote) == (T0 + timedelta(seconds=30), "192.0.2.2")
    assert store.delete_sessions_seen_before(T0 + timedelta(minutes=1)) == 1


def test_tokens(store: AccountStore) -> None:
    store.add_token("0123456789abcdef", "ci", Role.operator, "alice", "sha", at=T0)
    assert store.token_secret_hash("0123456789abcdef") == "sha"
    store.touch_token("0123456789abcdef", at=T0 + timedelta(seconds=5))
    store.revoke_token("0123456789abcdef", at=T0 + timedelta(seconds=9))
    store.revoke_token("0123456789abcdef", at=T0 + timedelta(seconds=99))  # keeps the first
    [token] = store.tokens(owner="alice")
    assert (token.last_used_at, token.revoked_at, token.active) == (
        T0 + timedelta(seconds=5),
        T0 + timedelta(seconds=9),
        False,
    )
    assert store.tokens(owner="bob") == []
    with pytest.raises(NotFound):
        store.revoke_token("ffffffffffffffff", at=T0)


def test_password_failures(store: AccountStore) -> None:
    failures = PasswordFailures(
        scope=FailureScope.account, key="alice", count=2, first_at=T0, locked_until=None
    )
    store.save_failures(failures)
    assert store.failures(FailureScope.account, "alice") == failures
    assert store.failures(FailureScope.source, "alice") is None
    store.forget_failures_before(T0 + timedelta(seconds=1))
    assert store.failures(FailureScope.account, "alice") is None
    store.save_failures(failures)
    store.clear_failures(FailureScope.account, "alice")
    assert store.failures(FailureScope.account, "alice") is None


def test_login_sources(store: AccountStore) -> None:
    store.trust_source("alice", "192.0.2.1", at=T0)
    assert store.trusted_source("alice", "192.0.2.1", since=T0)
    assert not store.trusted_source("alice", "192.0.2.1", since=T0 + timedelta(seconds=1))
    assert not store.trusted_source("bob", "192.0.2.1", since=T0)
    store.forget_sources_before(T0 + timedelta(seconds=1))
    assert not store.trusted_source("alice", "192.0.2.1", since=T0)


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = AccountStore(tmp_path / "bascule.db")
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.users()


def store_bytes(directory: Path) -> bytes:
    files = [p for p in directory.iterdir() if p.name.startswith("bascule.db")]
    assert files, "the store wrote no file"
    return b"".join(p.read_bytes() for p in files)


async def test_no_secret_is_stored_in_clear(tmp_path: Path) -> None:
    """Passwords, token secrets, session ids and CSRF tokens appear nowhere in the files."""
    path = tmp_path / "bascule.db"
    password = "correct-horse-battery-staple"
    with AccountStore(path) as store:
        accounts = AccountService(
            store,
            idle_timeout=900,
            lockout_attempts=5,
            lockout_seconds=300,
            hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
        )
        admin_password = await accounts.ensure_admin(None)
        assert admin_password is not None
        await accounts.create_user("alice", Role.operator, password, by=ADMIN)
        _, token = accounts.create_token("ci", Role.viewer, by=ADMIN)
        session = await accounts.login("alice", password, remote="192.0.2.1")
        await accounts.set_password("alice", password + "-2", by=ADMIN)
        secrets = [
            password,
            password + "-2",
            admin_password,
            token,
            token.split("_", 2)[2],
            session.id,
            session.csrf_token,
        ]
        content = store_bytes(tmp_path)  # the database, its WAL and shared memory, open
    content += store_bytes(tmp_path)  # and closed (checkpointed)
    for secret in secrets:
        assert secret.encode() not in content, f"{secret!r} is stored in clear"
    assert b"$argon2id$" in content
