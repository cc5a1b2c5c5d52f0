"""AccountService: first admin, logins and lockout, idle sessions, tokens, the last admin;
with an injected clock, so no test waits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fake_clock import Clock

from bascule.daemon.accounts import AccountService
from bascule.daemon.audit import AuditService
from bascule.errors import (
    AuthenticationFailed,
    Forbidden,
    InvalidConfiguration,
    LockedOut,
    NotApplicable,
    NotFound,
)
from bascule.model.access import Actor, Role
from bascule.store.accounts import AccountStore

ROOT = Actor(name="root@local", role=Role.admin, via="local", remote="unix socket")
IDLE = 900.0


@pytest.fixture
def accounts(tmp_path: Path, clock: Clock, audit: AuditService) -> Iterator[AccountService]:
    with AccountStore(tmp_path / "bascule.db") as store:
        yield AccountService(
            store,
            idle_timeout=IDLE,
            lockout_attempts=3,
            lockout_seconds=300,
            clock=clock,
            audit=audit,
            hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
        )


@pytest.fixture
async def alice(accounts: AccountService) -> Actor:
    await accounts.ensure_admin("admin-password")
    await accounts.create_user("alice", Role.operator, "alice-password", by=ROOT)
    return Actor(name="alice", role=Role.operator, via="session", remote="192.0.2.1")


def actions(audit: AuditService) -> list[tuple[str, str, str]]:
    entries, _ = audit.page(0, 100)
    return [(e.action, e.actor, e.outcome) for e in reversed(entries)]


# -- first start -------------------------------------------------------------------------------


async def test_the_first_start_makes_admin_once(accounts: AccountService) -> None:
    password = await accounts.ensure_admin(None)
    assert password is not None and len(password) >= 20
    assert await accounts.ensure_admin(None) is None
    assert [(u.name, u.role) for u in accounts.users()] == [("admin", Role.admin)]
    session = await accounts.login("admin", password, remote="127.0.0.1")
    assert session.actor.role == Role.admin


async def test_the_first_admin_password_can_be_given(accounts: AccountService) -> None:
    assert await accounts.ensure_admin("from-the-environment") == "from-the-environment"
    await accounts.login("admin", "from-the-environment", remote="127.0.0.1")


async def test_a_given_admin_password_must_be_long_enough(accounts: AccountService) -> None:
    with pytest.raises(InvalidConfiguration, match="at least 8"):
        await accounts.ensure_admin("short")
    assert accounts.users() == []


# -- logins ------------------------------------------------------------------------------------


async def test_login_and_resume(accounts: AccountService, alice: Actor, clock: Clock) -> None:
    session = await accounts.login("alice", "alice-password", remote="192.0.2.1")
    assert session.actor == alice
    assert session.expires_at == clock.now + IDLE
    assert len(session.id) >= 43 and session.csrf_token != session.id
    resumed = accounts.resume(session.id, remote="192.0.2.9")
    assert resumed is not None
    assert (resumed.csrf_token, resumed.actor.remote) == (session.csrf_token, "192.0.2.9")
    assert resumed.csrf_ok(session.csrf_token)
    assert not resumed.csrf_ok(None)
    assert not resumed.csrf_ok(session.csrf_token + "x")
    assert accounts.resume("not-a-session", remote="x") is None
    assert accounts.resume("", remote="x") is None


async def test_a_wrong_name_or_password_fails_alike(accounts: AccountService, alice: Actor) -> None:
    with pytest.raises(AuthenticationFailed) as wrong_password:
        await accounts.login("alice", "nope-nope", remote="192.0.2.1")
    with pytest.raises(AuthenticationFailed) as unknown_user:
        await accounts.login("mallory", "nope-nope", remote="192.0.2.1")
    assert str(wrong_password.value) == str(unknown_user.value) == "wrong user name or password"


async def test_lockout_after_repeated_failures(
    accounts: AccountService, alice: Actor, clock: Clock, audit: AuditService
) -> None:
    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            await accounts.login("alice", "wrong-password", remote="192.0.2.66")
        clock.advance(10)
    with pytest.raises(LockedOut) as locked:
        await accounts.login("alice", "wrong-password", remote="192.0.2.66")
    assert locked.value.retry_after == 300
    clock.advance(299)
    with pytest.raises(LockedOut, match="try again in 1 seconds"):
        await accounts.login("alice", "alice-password", remote="192.0.2.66")
    # Another name is not locked, nor is another source (daemon/guard.py: a guesser locks
    # only themselves); the lock ends after lockout_seconds.
    await accounts.login("admin", "admin-password", remote="192.0.2.1")
    await accounts.login("alice", "alice-password", remote="192.0.2.1")
    clock.advance(2)
    await accounts.login("alice", "alice-password", remote="192.0.2.66")
    logins = [entry for entry in actions(audit) if entry[0] == "login"]
    assert [outcome for _, _, outcome in logins] == [
        "failed",
        "failed",
        "locked",
        "locked",
        "ok",
        "ok",
        "ok",
    ]


async def test_failures_spread_beyond_the_window_do_not_lock(
    accounts: AccountService, alice: Actor, clock: Clock
) -> None:
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            await accounts.login("alice", "wrong-password", remote="192.0.2.66")
        clock.advance(200)  # two failures per 300 s window at most


async def test_a_success_clears_the_count(
    accounts: AccountService, alice: Actor, clock: Clock
) -> None:
    for _ in range(3):
        for _ in range(2):
            with pytest.raises(AuthenticationFailed):
                await accounts.login("alice", "wrong-password", remote="192.0.2.66")
        await accounts.login("alice", "alice-password", remote="192.0.2.66")


# -- idle timeout ------------------------------------------------------------------------------


async def test_a_session_ends_when_idle(
    accounts: AccountService, alice: Actor, clock: Clock
) -> None:
    session = await accounts.login("alice", "alice-password", remote="192.0.2.1")
    for _ in range(3):  # activity keeps it alive well past one idle timeout
        clock.advance(IDLE - 1)
        resumed = accounts.resume(session.id, remote="192.0.2.1")
        assert resumed is not None
        assert resumed.expires_at == clock.now + IDLE
    clock.advance(IDLE + 1)
    assert accounts.resume(session.id, remote="192.0.2.1") is None
    clock.advance(-IDLE)  # gone for good, not merely expired
    assert accounts.resume(session.id, remote="192.0.2.1") is None


async def test_polling_does_not_keep_a_session_alive(
    accounts: AccountService, alice: Actor, clock: Clock
) -> None:
    session = await accounts.login("alice", "alice-password", remote="192.0.2.1")
    for _ in range(4):
        clock.advance(IDLE / 4 - 1)
        assert accounts.resume(session.id, remote="192.0.2.1", touch=False) is not None
    clock.advance(10)
    assert accounts.resume(session.id, remote="192.0.2.1", touch=False) is None


async def test_logout(accounts: AccountService, alice: Actor) -> None:
    session = await accounts.login("alice", "alice-password", remote="192.0.2.1")
    accounts.logout(session.id)
    accounts.logout(session.id)
    assert accounts.resume(session.id, remote="192.0.2.1") is None


async def test_a_role_change_applies_to_open_sessions(
    accounts: AccountService, alice: Actor
) -> None:
    session = await accounts.login("alice", "alice-password", remote="192.0.2.1")
    accounts.set_role("alice", Role.viewer, by=ROOT)
    resumed = accounts.resume(session.id, remote="192.0.2.1")
    assert resumed is not None and resumed.actor.role == Role.viewer


# -- users -------------------------------------------------------------------------------------


async def test_the_last_admin_is_protected(accounts: AccountService, alice: Actor) -> None:
    with pytest.raises(NotApplicable, match="last administrator"):
        accounts.delete_user("admin", by=ROOT)
    with pytest.raises(NotApplicable, match="last administrator"):
        accounts.set_role("admin", Role.operator, by=ROOT)
    accounts.set_role("alice", Role.admin, by=ROOT)
    accounts.delete_user("admin", by=ROOT)
    with pytest.raises(NotApplicable):
        accounts.delete_user("alice", by=ROOT)


async def test_only_administrators_manage_users(accounts: AccountService, alice: Actor) -> None:
    with pytest.raises(Forbidden):
        await accounts.create_user("bob", Role.viewer, "bob-password", by=alice)
    with pytest.raises(Forbidden):
        accounts.set_role("alice", Role.admin, by=alice)
    with pytest.raises(Forbidden):
        accounts.delete_user("admin", by=alice)
    with pytest.raises(Forbidden):
        await accounts.set_password("admin", "new-password", by=alice)
    with pytest.raises(NotFound):
        accounts.delete_user("bob", by=ROOT)


async def test_changing_ones_own_password(accounts: AccountService, alice: Actor) -> None:
    session = await accounts.login("alice", "alice-password", remote="192.0.2.1")
    with pytest.raises(InvalidConfiguration, match="current_password"):
        await accounts.set_password("alice", "new-alice-password", by=alice, current="bad")
    await accounts.set_password("alice", "new-alice-password", by=alice, current="alice-password")
    assert accounts.resume(session.id, remote="192.0.2.1") is None  # sessions end
    with pytest.raises(AuthenticationFailed):
        await accounts.login("alice", "alice-password", remote="192.0.2.1")
    await accounts.login("alice", "new-alice-password", remote="192.0.2.1")


# -- tokens ------------------------------------------------------------------------------------


async def test_tokens(accounts: AccountService, alice: Actor, clock: Clock) -> None:
    info, secret = accounts.create_token("deploy", Role.viewer, by=alice)
    assert secret.startswith(f"bsc_{info.id}_") and len(secret) > 60
    actor = accounts.authenticate_token(secret, remote="192.0.2.5")
    assert actor == Actor(name="alice", role=Role.viewer, via="token", remote="192.0.2.5")
    [listed] = accounts.tokens(owner="alice")
    assert listed.last_used_at is not None
    for bad in ("", "bsc_", secret + "x", secret.replace("bsc_", "bsx_"), f"bsc_{info.id}_"):
        assert accounts.authenticate_token(bad, remote="x") is None
    accounts.revoke_token(info.id, by=alice)
    assert accounts.authenticate_token(secret, remote="x") is None


async def test_token_rules(accounts: AccountService, alice: Actor) -> None:
    with pytest.raises(Forbidden):
        accounts.create_token("x", Role.admin, by=alice)
    with pytest.raises(Forbidden):
        accounts.create_token("x", Role.viewer, by=alice, owner="admin")
    info, _ = accounts.create_token("x", Role.viewer, by=ROOT, owner="admin")
    with pytest.raises(Forbidden):
        accounts.revoke_token(info.id, by=alice)
    with pytest.raises(InvalidConfiguration, match="name"):
        accounts.create_token("  ", Role.viewer, by=alice)


async def test_a_token_is_capped_by_its_owner(accounts: AccountService, alice: Actor) -> None:
    _, secret = accounts.create_token("ops", Role.operator, by=alice)
    accounts.set_role("alice", Role.viewer, by=ROOT)
    actor = accounts.authenticate_token(secret, remote="x")
    assert actor is not None and actor.role == Role.viewer
    accounts.delete_user("alice", by=ROOT)
    assert accounts.authenticate_token(secret, remote="x") is None


async def test_account_changes_are_audited(
    accounts: AccountService, alice: Actor, audit: AuditService
) -> None:
    info, _ = accounts.create_token("t", Role.viewer, by=alice)
    accounts.revoke_token(info.id, by=alice)
    accounts.set_role("alice", Role.viewer, by=ROOT)
    accounts.delete_user("alice", by=ROOT)
    assert actions(audit) == [
        ("user.create", "system", "ok"),
        ("user.create", "root@local", "ok"),
        ("token.create", "alice", "ok"),
        ("token.revoke", "alice", "ok"),
        ("user.role", "root@local", "ok"),
        ("user.delete", "root@local", "ok"),
    ]
