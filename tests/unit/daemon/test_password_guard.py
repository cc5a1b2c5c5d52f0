"""The password guard (daemon/guard.py) through AccountService: one lock for every password
check (a login, a current password given to change it), per account and source, per source and
per account; with an injected clock, so no test waits.

Finding 1 of the management-plane review: a self password change checked the current password
with no lockout, no rate limit and no audit entry, so a read-only token made 30 guesses in 5 s
and then replaced the admin's password while the admin's login was locked. Finding 9: five
failures every 300 s from anyone kept ``admin`` locked out for everyone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fake_clock import Clock

from bascule.daemon.accounts import AccountService
from bascule.daemon.audit import AuditService
from bascule.errors import AuthenticationFailed, InvalidConfiguration, LockedOut
from bascule.model.access import Actor, Role
from bascule.store.accounts import AccountStore

ADMIN_PASSWORD = "admin-password"
HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
ROOT = Actor(name="root@local", role=Role.admin, via="local", remote="unix socket")
ATTACKER = "203.0.113.66"
OWNER = "192.0.2.1"


@pytest.fixture
async def accounts(
    tmp_path: Path, clock: Clock, audit: AuditService
) -> AsyncIterator[AccountService]:
    with AccountStore(tmp_path / "bascule.db") as store:
        accounts = AccountService(
            store,
            idle_timeout=900,
            lockout_attempts=5,
            lockout_source_attempts=20,
            lockout_account_attempts=50,
            lockout_seconds=300,
            clock=clock,
            audit=audit,
            hasher=HASHER,
        )
        await accounts.ensure_admin(ADMIN_PASSWORD)
        await accounts.create_user("viewer", Role.viewer, "viewer-password", by=ROOT)
        yield accounts


async def login(accounts: AccountService, password: str, remote: str, name: str = "admin") -> str:
    try:
        await accounts.login(name, password, remote=remote)
    except LockedOut:
        return "locked"
    except AuthenticationFailed:
        return "failed"
    return "ok"


async def change(accounts: AccountService, current: str, by: Actor) -> str:
    try:
        await accounts.set_password("admin", "a-new-password", by=by, current=current)
    except LockedOut:
        return "locked"
    except InvalidConfiguration:
        return "failed"
    return "ok"


def readonly_token_of_admin(remote: str) -> Actor:
    """The actor of a read-only API token that ``admin`` owns (the finding's attacker)."""
    return Actor(name="admin", role=Role.viewer, via="token", remote=remote)


def entries(audit: AuditService, action: str) -> list[tuple[str, str, str]]:
    found, _ = audit.page(0, 1000, action=action)
    return [(e.actor, e.remote, e.outcome.value) for e in reversed(found)]


async def test_guessing_the_current_password_locks_like_a_login(
    accounts: AccountService, audit: AuditService
) -> None:
    token = readonly_token_of_admin(ATTACKER)
    outcomes = [await change(accounts, f"guess-{i}", token) for i in range(30)]
    assert outcomes == ["failed"] * 4 + ["locked"] * 26
    # The right password now: still refused, the password unchanged.
    assert await change(accounts, ADMIN_PASSWORD, token) == "locked"
    assert await login(accounts, ADMIN_PASSWORD, OWNER) == "ok"
    # Every guess is in the audit log under the token's actor, the first refusal of the lock too.
    recorded = entries(audit, "user.password")
    assert recorded == [("admin", ATTACKER, "failed")] * 4 + [("admin", ATTACKER, "locked")] * 2
    found, _ = audit.page(0, 1, action="user.password")
    assert found[0].role == "viewer" and found[0].target == "admin"


async def test_a_login_lock_holds_for_a_password_change_and_back(
    accounts: AccountService,
) -> None:
    for _ in range(5):
        await login(accounts, "wrong-password", ATTACKER)
    token = readonly_token_of_admin(ATTACKER)
    assert await change(accounts, ADMIN_PASSWORD, token) == "locked"
    # and the other way: guesses through the change lock the login from there
    other = "203.0.113.67"
    for i in range(5):
        await change(accounts, f"guess-{i}", readonly_token_of_admin(other))
    assert await login(accounts, ADMIN_PASSWORD, other) == "locked"


async def test_parallel_guesses_at_the_current_password_add_up(accounts: AccountService) -> None:
    token = readonly_token_of_admin(ATTACKER)
    outcomes = await asyncio.gather(*(change(accounts, f"guess-{i}", token) for i in range(30)))
    assert outcomes.count("failed") == 4
    assert outcomes.count("locked") == 26


async def test_a_guesser_locks_only_themselves(accounts: AccountService, clock: Clock) -> None:
    # Finding 9: five requests every 300 s used to keep admin locked out for everyone.
    for _ in range(3):
        for _ in range(5):
            await login(accounts, "wrong-password", ATTACKER)
        assert await login(accounts, ADMIN_PASSWORD, ATTACKER) == "locked"
        assert await login(accounts, ADMIN_PASSWORD, OWNER) == "ok"
        clock.advance(301)


async def test_one_source_guessing_many_names_is_locked(accounts: AccountService) -> None:
    outcomes = [
        await login(accounts, "wrong-password", ATTACKER, name=f"user-{i}") for i in range(25)
    ]
    assert outcomes == ["failed"] * 19 + ["locked"] * 6
    assert await login(accounts, "viewer-password", ATTACKER, name="viewer") == "locked"
    assert await login(accounts, "viewer-password", OWNER, name="viewer") == "ok"


async def test_an_ipv6_64_is_one_source(accounts: AccountService) -> None:
    for i in range(5):
        await login(accounts, "wrong-password", f"2001:db8:1:2::{i + 1}")
    assert await login(accounts, ADMIN_PASSWORD, "2001:db8:1:2:ffff::9") == "locked"
    assert await login(accounts, ADMIN_PASSWORD, "2001:db8:1:3::1") == "ok"


async def test_many_sources_lock_the_account_but_not_where_its_owner_logs_in(
    accounts: AccountService, audit: AuditService
) -> None:
    assert await login(accounts, ADMIN_PASSWORD, OWNER) == "ok"  # a trusted source from now on
    outcomes = [
        await login(accounts, "wrong-password", f"198.51.100.{i // 4 + 1}") for i in range(60)
    ]
    assert outcomes.count("failed") == 49
    assert outcomes[49] == "locked"
    # A new source is refused while the account lock holds; the owner's source is not.
    assert await login(accounts, ADMIN_PASSWORD, "198.51.100.200") == "locked"
    assert await login(accounts, ADMIN_PASSWORD, OWNER) == "ok"
    locked = [e for e in audit.page(0, 1000, action="login")[0] if e.outcome == "locked"]
    assert any("this account" in e.detail for e in locked)


async def test_refusals_while_locked_are_recorded_once_per_lock(
    accounts: AccountService, audit: AuditService
) -> None:
    token = readonly_token_of_admin(ATTACKER)
    for i in range(5):
        await change(accounts, f"guess-{i}", token)
    before = audit.page(0, 1)[1]
    for _ in range(200):
        assert await change(accounts, "another-guess", token) == "locked"
    assert audit.page(0, 1)[1] == before + 1
