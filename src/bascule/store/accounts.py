"""Users, API tokens, WUI sessions and failed password checks, in ``bascule.db`` beside the
revisions.

Sits under the daemon's ``AccountService``, which decides (hashes passwords, checks roles,
counts failures); this module only keeps rows. Nothing secret is stored in clear: a password
is an argon2 hash, a token a SHA-256 of its secret, a session a SHA-256 of its id. The CSRF
token of a session is derived from the session id (see daemon/accounts.py), so it is not
stored at all.

Times are passed in by the caller (the service owns the clock) and stored as ISO 8601 text in
UTC, as the revisions are.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bascule.errors import NotFound, StoreError
from bascule.model.access import Role
from bascule.store.database import Database, transaction


@dataclass(frozen=True, kw_only=True)
class User:
    """A person who logs in to the WUI (or owns API tokens); the hash stays in the store."""

    name: str
    role: Role
    created_at: datetime
    password_changed_at: datetime


@dataclass(frozen=True, kw_only=True)
class TokenInfo:
    """An API token without its secret: the secret is shown once, at creation."""

    id: str
    name: str
    role: Role
    owner: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, kw_only=True)
class StoredSession:
    """A WUI session as stored: the hash of its id, its user and role, when last seen."""

    id_hash: str
    user: str
    role: Role
    created_at: datetime
    last_seen: datetime
    remote: str


class FailureScope(enum.StrEnum):
    """What a count of failed password checks is kept for (see daemon/guard.py)."""

    account = "account"  # one user name, from every source
    source = "source"  # one source address (an IPv6 /64), whatever the name
    account_source = "account_source"  # one user name from one source


@dataclass(frozen=True, kw_only=True)
class PasswordFailures:
    """Failed password checks of one ``scope`` and ``key`` since ``first_at``;
    ``locked_until`` once locked."""

    scope: FailureScope
    key: str
    count: int
    first_at: datetime
    locked_until: datetime | None


_TOKEN_COLUMNS = "id, name, role, owner, created_at, last_used_at, revoked_at"  # noqa: S105


class AccountStore(Database):
    """The account tables of ``bascule.db``; one connection, serialized by a lock."""

    # -- users ------------------------------------------------------------------------------

    def users(self) -> list[User]:
        with self._use("list the users") as db:
            rows = db.execute(
                "SELECT name, role, created_at, password_changed_at FROM users ORDER BY name"
            ).fetchall()
        return [_user(row) for row in rows]

    def user(self, name: str) -> User | None:
        with self._use(f"read the user {name}") as db:
            row = db.execute(
                "SELECT name, role, created_at, password_changed_at FROM users WHERE name = ?",
                (name,),
            ).fetchone()
        return None if row is None else _user(row)

    def password_hash(self, name: str) -> str | None:
        with self._use(f"read the user {name}") as db:
            row = db.execute("SELECT password_hash FROM users WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def count_admins(self) -> int:
        with self._use("count the administrators") as db:
            row = db.execute("SELECT COUNT(*) FROM users WHERE role = ?", (Role.admin,)).fetchone()
        return int(row[0])

    def add_user(self, name: str, role: Role, password_hash: str, *, at: datetime) -> User | None:
        """Add a user; ``None`` if the name is taken."""
        with self._use(f"add the user {name}") as db, transaction(db):
            if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                return None
            db.execute(
                "INSERT INTO users (name, role, password_hash, created_at, password_changed_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, role.value, password_hash, _text(at), _text(at)),
            )
        return User(name=name, role=role, created_at=at, password_changed_at=at)

    def set_password_hash(self, name: str, password_hash: str, *, at: datetime) -> int:
        """Change a password; the user's sessions end and the API tokens they own are revoked
        with it (daemon/accounts.py says why). How many tokens were revoked."""
        with self._use(f"change the password of {name}") as db, transaction(db):
            cursor = db.execute(
                "UPDATE users SET password_hash = ?, password_changed_at = ? WHERE name = ?",
                (password_hash, _text(at), name),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"there is no user named {name}")
            db.execute("DELETE FROM sessions WHERE user = ?", (name,))
            revoked = db.execute(
                "UPDATE api_tokens SET revoked_at = ? WHERE owner = ? AND revoked_at IS NULL",
                (_text(at), name),
            ).rowcount
        return int(revoked)

    def set_role(self, name: str, role: Role) -> None:
        with self._use(f"change the role of {name}") as db, transaction(db):
            cursor = db.execute("UPDATE users SET role = ? WHERE name = ?", (role.value, name))
            if cursor.rowcount == 0:
                raise NotFound(f"there is no user named {name}")

    def delete_user(self, name: str, *, at: datetime) -> None:
        """Delete a user, their sessions and login sources, and revoke the tokens they own."""
        with self._use(f"delete the user {name}") as db, transaction(db):
            cursor = db.execute("DELETE FROM users WHERE name = ?", (name,))
            if cursor.rowcount == 0:
                raise NotFound(f"there is no user named {name}")
            db.execute(
                "UPDATE api_tokens SET revoked_at = ? WHERE owner = ? AND revoked_at IS NULL",
                (_text(at), name),
            )
            # a user made again under the same name does not inherit where this one logged in
            db.execute("DELETE FROM login_sources WHERE name = ?", (name,))

    # -- API tokens -------------------------------------------------------------------------

    def tokens(self, *, owner: str | None = None) -> list[TokenInfo]:
        query = f"SELECT {_TOKEN_COLUMNS} FROM api_tokens"  # noqa: S608 (a constant)
        parameters: tuple[str, ...] = ()
        if owner is not None:
            query += " WHERE owner = ?"
            parameters = (owner,)
        with self._use("list the API tokens") as db:
            rows = db.execute(query + " ORDER BY created_at, id", parameters).fetchall()
        return [_token(row) for row in rows]

    def token(self, token_id: str) -> TokenInfo | None:
        with self._use(f"read the API token {token_id}") as db:
            row = db.execute(
                f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE id = ?",  # noqa: S608
                (token_id,),
            ).fetchone()
        return None if row is None else _token(row)

    def token_secret_hash(self, token_id: str) -> str | None:
        """The SHA-256 of an active token's secret; ``None`` if unknown or revoked."""
        with self._use("read an API token") as db:
            row = db.execute(
                "SELECT secret_sha256 FROM api_tokens WHERE id = ? AND revoked_at IS NULL",
                (token_id,),
            ).fetchone()
        return None if row is None else str(row[0])

    def add_token(
        self, token_id: str, name: str, role: Role, owner: str, secret_hash: str, *, at: datetime
    ) -> TokenInfo:
        with self._use("create an API token") as db, transaction(db):
            db.execute(
                "INSERT INTO api_tokens (id, name, role, owner, secret_sha256, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (token_id, name, role.value, owner, secret_hash, _text(at)),
            )
        return TokenInfo(
            id=token_id,
            name=name,
            role=role,
            owner=owner,
            created_at=at,
            last_used_at=None,
            revoked_at=None,
        )

    def touch_token(self, token_id: str, *, at: datetime) -> None:
        with self._use("record the use of an API token") as db, transaction(db):
            db.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (_text(at), token_id))

    def revoke_token(self, token_id: str, *, at: datetime) -> None:
        """Revoke a token (revoking a revoked one keeps the first time)."""
        with self._use(f"revoke the API token {token_id}") as db, transaction(db):
            cursor = db.execute(
                "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
                (_text(at), token_id),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"there is no API token {token_id}")

    # -- sessions ---------------------------------------------------------------------------

    def add_session(self, id_hash: str, user: str, *, at: datetime, remote: str) -> None:
        with self._use("open a session") as db, transaction(db):
            db.execute(
                "INSERT INTO sessions (id_sha256, user, created_at, last_seen, remote)"
                " VALUES (?, ?, ?, ?, ?)",
                (id_hash, user, _text(at), _text(at), remote),
            )

    def session(self, id_hash: str) -> StoredSession | None:
        """A session and its user's current role (a role change applies at once)."""
        with self._use("read a session") as db:
            row = db.execute(
                "SELECT s.id_sha256, s.user, u.role, s.created_at, s.last_seen, s.remote"
                " FROM sessions s JOIN users u ON u.name = s.user WHERE s.id_sha256 = ?",
                (id_hash,),
            ).fetchone()
        if row is None:
            return None
        id_hash, user, role, created_at, last_seen, remote = row
        return StoredSession(
            id_hash=id_hash,
            user=user,
            role=Role(role),
            created_at=_time(created_at),
            last_seen=_time(last_seen),
            remote=remote,
        )

    def touch_session(self, id_hash: str, *, at: datetime, remote: str) -> None:
        with self._use("record the use of a session") as db, transaction(db):
            db.execute(
                "UPDATE sessions SET last_seen = ?, remote = ? WHERE id_sha256 = ?",
                (_text(at), remote, id_hash),
            )

    def delete_session(self, id_hash: str) -> None:
        with self._use("close a session") as db, transaction(db):
            db.execute("DELETE FROM sessions WHERE id_sha256 = ?", (id_hash,))

    def delete_sessions_seen_before(self, before: datetime) -> int:
        with self._use("close idle sessions") as db, transaction(db):
            cursor = db.execute("DELETE FROM sessions WHERE last_seen < ?", (_text(before),))
        return cursor.rowcount

    # -- failed password checks and trusted sources ---------------------------------------------

    def failures(self, scope: FailureScope, key: str) -> PasswordFailures | None:
        with self._use("read failed password checks") as db:
            row = db.execute(
                "SELECT count, first_at, locked_until FROM password_failures"
                " WHERE scope = ? AND key = ?",
                (scope.value, key),
            ).fetchone()
        if row is None:
            return None
        count, first_at, locked_until = row
        return PasswordFailures(
            scope=scope,
            key=key,
            count=count,
            first_at=_time(first_at),
            locked_until=None if locked_until is None else _time(locked_until),
        )

    def save_failures(self, failures: PasswordFailures) -> None:
        locked_until = failures.locked_until
        with self._use("record a failed password check") as db, transaction(db):
            db.execute(
                "INSERT OR REPLACE INTO password_failures"
                " (scope, key, count, first_at, locked_until) VALUES (?, ?, ?, ?, ?)",
                (
                    failures.scope.value,
                    failures.key,
                    failures.count,
                    _text(failures.first_at),
                    None if locked_until is None else _text(locked_until),
                ),
            )

    def clear_failures(self, scope: FailureScope, key: str) -> None:
        with self._use("clear failed password checks") as db, transaction(db):
            db.execute(
                "DELETE FROM password_failures WHERE scope = ? AND key = ?", (scope.value, key)
            )

    def forget_failures_before(self, before: datetime) -> None:
        """Drop the counts that no longer matter (so unknown names do not pile up)."""
        with self._use("forget old failed password checks") as db, transaction(db):
            db.execute(
                "DELETE FROM password_failures WHERE first_at < ?"
                " AND (locked_until IS NULL OR locked_until < ?)",
                (_text(before), _text(before)),
            )

    def trust_source(self, name: str, source: str, *, at: datetime) -> None:
        """``name`` logged in from ``source`` at ``at``."""
        with self._use("record where a user logged in from") as db, transaction(db):
            db.execute(
                "INSERT OR REPLACE INTO login_sources (name, source, last_ok_at) VALUES (?, ?, ?)",
                (name, source, _text(at)),
            )

    def trusted_source(self, name: str, source: str, *, since: datetime) -> bool:
        """Whether ``name`` logged in from ``source`` after ``since``."""
        with self._use("read where a user logged in from") as db:
            row = db.execute(
                "SELECT 1 FROM login_sources WHERE name = ? AND source = ? AND last_ok_at >= ?",
                (name, source, _text(since)),
            ).fetchone()
        return row is not None

    def forget_sources_before(self, before: datetime) -> None:
        with self._use("forget old login sources") as db, transaction(db):
            db.execute("DELETE FROM login_sources WHERE last_ok_at < ?", (_text(before),))

    # -- inside -----------------------------------------------------------------------------


def _user(row: tuple[Any, ...]) -> User:
    name, role, created_at, password_changed_at = row
    return User(
        name=name,
        role=Role(role),
        created_at=_time(created_at),
        password_changed_at=_time(password_changed_at),
    )


def _token(row: tuple[Any, ...]) -> TokenInfo:
    token_id, name, role, owner, created_at, last_used_at, revoked_at = row
    return TokenInfo(
        id=token_id,
        name=name,
        role=Role(role),
        owner=owner,
        created_at=_time(created_at),
        last_used_at=None if last_used_at is None else _time(last_used_at),
        revoked_at=None if revoked_at is None else _time(revoked_at),
    )


def _text(at: datetime) -> str:
    if at.tzinfo is None:
        raise StoreError("a time without a time zone cannot be stored")
    return at.astimezone(UTC).isoformat(timespec="microseconds")  # sorts as text


def _time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise StoreError(f"a stored time is unreadable: {text!r}") from exc
