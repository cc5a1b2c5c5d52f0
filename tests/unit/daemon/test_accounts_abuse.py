"""AccountService against abuse: parallel logins cannot skip the lockout, a current
password given is always checked, oversized names stay out of the store, a deleted user's
sessions and tokens do not come back with a new user of the same name."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Literal

import pytest
from argon2 import PasswordHasher

from bascule.daemon.accounts import (
    MAX_LOGIN_NAME,
    MAX_PARALLEL_HASHES,
    MAX_PASSWORD,
    AccountService,
)
from bascule.daemon.audit import AuditService
from bascule.errors import AuthenticationFailed, InvalidConfiguration, LockedOut
from bascule.model.access import Actor, Role
from bascule.store.accounts import AccountStore, FailureScope
from bascule.store.audit import AuditStore

ROOT = Actor(name="root@local", role=Role.admin, via="local", remote="unix socket")
ADMIN_PASSWORD = "admin-password"


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditService]:
    with AuditStore(tmp_path / "bascule.db") as store:
        yield AuditService(store)


@pytest.fixture
async def accounts(tmp_path: Path, audit: AuditService) -> AsyncIterator[AccountService]:
    with AccountStore(tmp_path / "bascule.db") as store:
        accounts = AccountService(
            store,
            idle_timeout=900,
            lockout_attempts=3,
            lockout_seconds=300,
            audit=audit,
            hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
        )
        await accounts.ensure_admin(ADMIN_PASSWORD)
        yield accounts


async def attempt(accounts: AccountService, password: str) -> str:
    try:
        await accounts.login("admin", password, remote="192.0.2.66")
    except LockedOut:
        return "locked"
    except AuthenticationFailed:
        return "failed"
    return "ok"


async def test_parallel_guesses_do_not_skip_the_lockout(accounts: AccountService) -> None:
    # Each login checks the password in a thread: before the fix every guess read the count
    # before any had failed, so 30 guesses sent at once were 30 "failed" and never a lock.
    guesses = [f"wrong-password-{i}" for i in range(30)]
    outcomes = await asyncio.gather(*(attempt(accounts, guess) for guess in guesses))
    assert outcomes.count("failed") == 2
    assert outcomes.count("locked") == 28
    failures = accounts.store.failures(FailureScope.account_source, "admin|192.0.2.66")
    assert failures is not None and failures.locked_until is not None


class GatedHasher(PasswordHasher):
    """Checks the right password only once the gate opens (the others at once)."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.gate = threading.Event()

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        if password == ADMIN_PASSWORD:
            self.gate.wait(10)
        return super().verify(hash, password)


async def test_the_right_password_is_refused_if_the_name_locked_meanwhile(
    accounts: AccountService,
) -> None:
    hasher = GatedHasher()
    gated = AccountService(
        accounts.store, idle_timeout=900, lockout_attempts=3, lockout_seconds=300, hasher=hasher
    )
    right = asyncio.create_task(attempt(gated, ADMIN_PASSWORD))
    await asyncio.sleep(0)  # past the lockout check, its password being checked
    assert [await attempt(gated, f"wrong-password-{i}") for i in range(3)] == [
        "failed",
        "failed",
        "locked",
    ]
    hasher.gate.set()
    assert await right == "locked"


async def test_a_given_current_password_is_checked_for_administrators_too(
    accounts: AccountService,
) -> None:
    admin = Actor(name="admin", role=Role.admin, via="session", remote="192.0.2.1")
    with pytest.raises(InvalidConfiguration, match="current_password"):
        await accounts.set_password("admin", "new-admin-password", by=admin, current="guess")
    with pytest.raises(InvalidConfiguration, match="current_password"):
        await accounts.set_password("admin", "new-admin-password", by=admin, current="")
    await accounts.login("admin", ADMIN_PASSWORD, remote="192.0.2.1")  # unchanged
    await accounts.set_password("admin", "new-admin-password", by=admin, current=ADMIN_PASSWORD)
    await accounts.login("admin", "new-admin-password", remote="192.0.2.1")


async def test_an_oversized_user_name_is_refused_without_storing_it(
    accounts: AccountService, audit: AuditService
) -> None:
    name = "x" * 100_000
    with pytest.raises(AuthenticationFailed):
        await accounts.login(name, "whatever-password", remote="192.0.2.66")
    assert accounts.store.failures(FailureScope.account, name) is None
    assert accounts.store.failures(FailureScope.account, name[:MAX_LOGIN_NAME]) is not None
    entries, _ = audit.page(0, 1)
    assert entries[0].action == "login" and entries[0].outcome == "failed"
    assert len(entries[0].actor) == MAX_LOGIN_NAME


async def test_a_deleted_user_does_not_come_back_with_the_same_name(
    accounts: AccountService,
) -> None:
    await accounts.create_user("bob", Role.admin, "bob-password", by=ROOT)
    session = await accounts.login("bob", "bob-password", remote="192.0.2.1")
    bob = Actor(name="bob", role=Role.admin, via="session", remote="192.0.2.1")
    _, secret = accounts.create_token("ci", Role.admin, by=bob)
    accounts.delete_user("bob", by=ROOT)
    await accounts.create_user("bob", Role.viewer, "other-password", by=ROOT)
    assert accounts.resume(session.id, remote="192.0.2.1") is None
    assert accounts.authenticate_token(secret, remote="192.0.2.1") is None


class CountingHasher(PasswordHasher):
    """Records how many checks run at once and how long the passwords checked are."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.lengths: list[int] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.lengths.append(len(password))
        try:
            time.sleep(0.01)
            return super().verify(hash, password)
        finally:
            with self.lock:
                self.running -= 1


async def test_a_flood_of_logins_checks_a_few_passwords_at_a_time(
    accounts: AccountService,
) -> None:
    hasher = CountingHasher()
    counted = AccountService(
        accounts.store, idle_timeout=900, lockout_attempts=1000, lockout_seconds=300, hasher=hasher
    )
    names = [f"user-{i}" for i in range(40)]
    outcomes = await asyncio.gather(
        *(counted.login(name, "wrong-password", remote="x") for name in names),
        return_exceptions=True,
    )
    assert all(isinstance(outcome, AuthenticationFailed) for outcome in outcomes)
    assert 1 <= hasher.most <= MAX_PARALLEL_HASHES


async def test_an_oversized_password_is_checked_on_its_first_characters_only(
    accounts: AccountService,
) -> None:
    hasher = CountingHasher()
    counted = AccountService(
        accounts.store, idle_timeout=900, lockout_attempts=3, lockout_seconds=300, hasher=hasher
    )
    with pytest.raises(AuthenticationFailed):
        await counted.login("admin", ADMIN_PASSWORD + "x" * 10_000_000, remote="x")
    assert hasher.lengths == [MAX_PASSWORD + 1]


async def test_hammering_a_locked_name_does_not_fill_the_audit_log(
    accounts: AccountService, audit: AuditService
) -> None:
    for _ in range(3):
        await attempt(accounts, "wrong-password")
    before = audit.page(0, 1)[1]
    for _ in range(200):
        assert await attempt(accounts, "wrong-password") == "locked"
    entries, total = audit.page(0, 10)
    assert total == before + 1  # the first refusal of this lock, not all 200
    assert (entries[0].action, entries[0].outcome) == ("login", "locked")
