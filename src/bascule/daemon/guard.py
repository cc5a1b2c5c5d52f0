"""The password guard: one lockout for every place that checks a password.

Before the flow of a change, where a caller proves who they are. ``AccountService`` checks a
password in two places, and both go through ``PasswordGuard.verify``: a login (the API's
``POST /auth/login``, the WUI's login form), and a password change that gives the current
password (the API's ``PATCH /users/<self>`` with ``current_password``, the WUI's own-account
form). A guess at a password therefore costs the same wherever it is made, counts towards the
same lock, is refused while that lock holds, and leaves the same audit entries.

Failures are counted three ways, each in a window of ``seconds`` (a count older than the window
starts again), each locking for ``seconds`` once it reaches its limit:

- per **account and source** (``attempts``, 5 by default): a person mistyping from their own
  machine is locked there, and only there;
- per **source** (``source_attempts``, 20): one address guessing across many user names;
- per **account** (``account_attempts``, 50), from every source together: a distributed
  guesser. This lock does not apply to a *trusted source*, one from which the account logged
  in successfully within ``trusted_seconds`` (30 days).

A source is an IPv4 address or an IPv6 /64 (``net.addresses.client_source``).

Why three and not one. Locking per account only (what the daemon did before) hands anyone who
can reach the listener a denial of service: five wrong guesses every five minutes keep
``admin`` locked out for good. Locking per account *and source* takes that away (the guesser
locks only themselves), and the per-source count keeps one address from trying 5 passwords on
each of many names. What it gives away is the distributed guesser, who gets 5 guesses per
source; the account-wide count caps them at 50 per window whatever the number of sources, at
the price of locking the account for new sources while it holds — but never for the places
the account's owner logs in from, so the attack that locks ``admin`` for everyone needs a
source ``admin`` used, and root can always log in on the unix socket (``bascule user passwd``).

Refusals while locked cost no password check, and only the first of each lock is in the audit
log (else hammering a locked name would fill the disk).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bascule.daemon.audit import AuditOutcome, AuditService
from bascule.errors import LockedOut
from bascule.model.access import Actor
from bascule.net.addresses import client_source
from bascule.store.accounts import AccountStore, FailureScope, PasswordFailures

#: How long a source stays trusted for an account after a successful login from it.
TRUSTED_SECONDS = 30 * 24 * 3600.0


@dataclass(frozen=True, kw_only=True)
class GuardPolicy:
    """The limits of the guard (settings ``lockout_*``)."""

    attempts: int = 5  # per account and source
    source_attempts: int = 20  # per source, whatever the name
    account_attempts: int = 50  # per account, from untrusted sources together
    seconds: float = 300.0  # the counting window, and how long a lock holds
    trusted_seconds: float = TRUSTED_SECONDS

    def __post_init__(self) -> None:
        if min(self.attempts, self.source_attempts, self.account_attempts) < 1:
            raise ValueError("the lockout attempts must be at least 1")
        if self.seconds <= 0 or self.trusted_seconds < 0:
            raise ValueError("lockout_seconds must be > 0")

    def limit(self, scope: FailureScope) -> int:
        return {
            FailureScope.account_source: self.attempts,
            FailureScope.source: self.source_attempts,
            FailureScope.account: self.account_attempts,
        }[scope]


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One password check: whose password (``name``), from where, and how the audit log names
    it: ``action`` (``login``, ``user.password``) by ``actor`` (the caller when known, else the
    name tried)."""

    name: str
    remote: str
    action: str
    actor: Actor | str

    @property
    def source(self) -> str:
        return client_source(self.remote)

    def counters(self) -> tuple[tuple[FailureScope, str], ...]:
        """The (scope, key) of each count this attempt adds to."""
        source = self.source
        return (
            (FailureScope.account_source, f"{self.name}|{source}"),
            (FailureScope.source, source),
            (FailureScope.account, self.name),
        )


class PasswordGuard:
    """Counts failed password checks, locks, and records them (see the module's doc)."""

    def __init__(
        self,
        store: AccountStore,
        policy: GuardPolicy,
        *,
        clock: Callable[[], float] = time.time,
        audit: AuditService | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self._clock = clock
        self._audit = audit
        self._noted: dict[tuple[FailureScope, str], datetime] = {}  # refusals recorded

    async def verify(self, attempt: Attempt, check: Callable[[], Awaitable[bool]]) -> bool:
        """Run ``check`` (a password check) unless a lock holds; whether it passed.

        ``LockedOut`` if a lock holds before the check, or after it: the count is read again
        once the (slow, threaded) check is done, so checks running side by side add up, and one
        that finishes after a lock was set is refused even with the right password (else
        parallel guesses would skip the lockout). A failure is counted and recorded, and raises
        ``LockedOut`` if it set a lock."""
        self._refuse_if_locked(attempt, self._now())
        ok = await check()
        now = self._now()
        self._refuse_if_locked(attempt, now)
        if not ok:
            self._fail(attempt, now)
            return False
        self.store.clear_failures(FailureScope.account_source, attempt.counters()[0][1])
        return True

    def trust(self, name: str, remote: str) -> None:
        """``name`` logged in from ``remote``: its account-wide lock spares that source."""
        now = self._now()
        self.store.trust_source(name, client_source(remote), at=now)
        self.store.forget_sources_before(now - timedelta(seconds=self.policy.trusted_seconds))

    # -- inside ---------------------------------------------------------------------------------

    def _locks(self, attempt: Attempt, now: datetime) -> list[PasswordFailures]:
        locked = []
        for scope, key in attempt.counters():
            failures = self.store.failures(scope, key)
            if failures and failures.locked_until and failures.locked_until > now:
                locked.append(failures)
        if any(f.scope is FailureScope.account for f in locked) and self.store.trusted_source(
            attempt.name,
            attempt.source,
            since=now - timedelta(seconds=self.policy.trusted_seconds),
        ):
            locked = [f for f in locked if f.scope is not FailureScope.account]
        return locked

    def _refuse_if_locked(self, attempt: Attempt, now: datetime) -> None:
        locked = self._locks(attempt, now)
        if not locked:
            return
        until = max(f.locked_until for f in locked if f.locked_until is not None)
        fresh = [f for f in locked if self._noted.get((f.scope, f.key)) != f.locked_until]
        if fresh:
            # Once per lock: a refusal costs no password check, so recording each one would
            # let anyone fill the disk with audit entries by hammering a locked name.
            self._noted = {key: lock for key, lock in self._noted.items() if lock > now}
            for failures in fresh:
                if failures.locked_until is not None:
                    self._noted[(failures.scope, failures.key)] = failures.locked_until
            scopes = ", ".join(_SCOPE_WORDS[f.scope] for f in locked)
            self._record(
                attempt, AuditOutcome.locked, f"refused while locked out ({scopes}; once per lock)"
            )
        raise LockedOut((until - now).total_seconds())

    def _fail(self, attempt: Attempt, now: datetime) -> None:
        window = timedelta(seconds=self.policy.seconds)
        self.store.forget_failures_before(now - window)
        locked: list[FailureScope] = []
        for scope, key in attempt.counters():
            failures = self.store.failures(scope, key)
            if failures and failures.locked_until and failures.locked_until > now:
                continue  # locked already (an account lock a trusted source got past)
            if failures is None or failures.locked_until or failures.first_at < now - window:
                count, first_at = 1, now  # a fresh window
            else:
                count, first_at = failures.count + 1, failures.first_at
            lock = count >= self.policy.limit(scope)
            self.store.save_failures(
                PasswordFailures(
                    scope=scope,
                    key=key,
                    count=count,
                    first_at=first_at,
                    locked_until=now + window if lock else None,
                )
            )
            if lock:
                locked.append(scope)
        if locked:
            scopes = ", ".join(_SCOPE_WORDS[scope] for scope in locked)
            self._record(attempt, AuditOutcome.locked, f"wrong password: locked ({scopes})")
            raise LockedOut(self.policy.seconds)
        self._record(attempt, AuditOutcome.failed, "wrong user name or password")

    def _record(self, attempt: Attempt, outcome: AuditOutcome, detail: str) -> None:
        if self._audit is not None:
            self._audit.record(
                attempt.actor,
                attempt.action,
                attempt.name,
                remote=attempt.remote,
                outcome=outcome,
                detail=detail,
            )

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)


_SCOPE_WORDS = {
    FailureScope.account_source: "this account from this source",
    FailureScope.source: "this source",
    FailureScope.account: "this account",
}
