"""Accounts: users and their passwords, API tokens, WUI sessions, failed-login lockout.

Sits before the service layer in the flow of a change: every door turns its caller into an
``Actor`` here (a login opens a ``WebSession``; a bearer token is checked by
``authenticate_token``) and then asks ``actor.may(permission)``. Logins, user and token changes
are recorded in the audit log from here.

Secrets are never stored in clear:

- passwords: argon2id (argon2-cffi), hashed in a worker thread so the event loop keeps going;
- API tokens ``bsc_<id>_<secret>``: 32 random bytes of secret, stored as its SHA-256 (a
  high-entropy secret needs no slow hash: nobody can guess 256 bits, slow or fast), compared
  with ``hmac.compare_digest``;
- session ids: 32 random bytes, stored as their SHA-256; the session's CSRF token is an HMAC of
  the session id, so it is never stored and only the cookie's holder can compute it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bascule.daemon.audit import AuditService
from bascule.daemon.guard import Attempt, GuardPolicy, PasswordGuard
from bascule.errors import (
    AuthenticationFailed,
    FieldError,
    Forbidden,
    InvalidConfiguration,
    NotApplicable,
    NotFound,
)
from bascule.model.access import Actor, Permission, Role, role_covers
from bascule.model.types import single_line
from bascule.store.accounts import AccountStore, TokenInfo, User

__all__ = ["AccountService", "TokenInfo", "User", "WebSession"]

ADMIN = "admin"
TOKEN_PREFIX = "bsc_"  # noqa: S105 (a prefix, not a secret)
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
#: A login's user name beyond this is refused at once (user names have at most 64 characters).
MAX_LOGIN_NAME = 128
#: argon2 hashes or checks at once (each takes 64 MiB): a flood of logins waits its turn
#: instead of taking the appliance's memory.
MAX_PARALLEL_HASHES = 4
#: Writes of ``last_seen`` / ``last_used_at`` at most this often (seconds) per session/token.
TOUCH_INTERVAL = 10.0

_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_TOKEN_ID = re.compile(r"^[0-9a-f]{16}$")
_CSRF_CONTEXT = b"bascule csrf token v1"


@dataclass(frozen=True)
class WebSession:
    """A logged-in WUI session. ``id`` is the secret cookie value; ``expires_at`` (epoch
    seconds) moves forward with every use (idle timeout)."""

    id: str
    csrf_token: str
    actor: Actor
    expires_at: float

    def csrf_ok(self, token: str | None) -> bool:
        """Whether ``token`` (a form field or the ``X-CSRF-Token`` header) is this session's."""
        return token is not None and hmac.compare_digest(
            token.encode("utf-8", "replace"), self.csrf_token.encode()
        )


class AccountService:
    """Users, tokens and sessions over an ``AccountStore``; the clock is injectable."""

    def __init__(
        self,
        store: AccountStore,
        *,
        idle_timeout: float,
        lockout_attempts: int,
        lockout_seconds: float,
        lockout_source_attempts: int | None = None,
        lockout_account_attempts: int | None = None,
        clock: Callable[[], float] = time.time,
        audit: AuditService | None = None,
        hasher: PasswordHasher | None = None,
    ) -> None:
        """``lockout_attempts`` failures of one account from one source within
        ``lockout_seconds`` lock it there; ``lockout_source_attempts`` (default 4 times as
        many) lock the source, ``lockout_account_attempts`` (default 10 times as many) the
        account for sources it never logged in from (daemon/guard.py)."""
        if idle_timeout <= 0:
            raise ValueError("idle_timeout must be > 0")
        self.store = store
        self.idle_timeout = idle_timeout
        self.guard = PasswordGuard(
            store,
            GuardPolicy(
                attempts=lockout_attempts,
                source_attempts=lockout_source_attempts or 4 * lockout_attempts,
                account_attempts=lockout_account_attempts or 10 * lockout_attempts,
                seconds=lockout_seconds,
            ),
            clock=clock,
            audit=audit,
        )
        self._clock = clock
        self._audit = audit
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None
        self._hashing = asyncio.Semaphore(MAX_PARALLEL_HASHES)

    # -- first start ------------------------------------------------------------------------

    async def ensure_admin(self, password: str | None) -> str | None:
        """Create the ``admin`` user if there is no user at all; return its password then
        (``password``, or a random one to print once), else ``None``."""
        if self.store.users():
            return None
        password = password or secrets.token_urlsafe(18)
        _check_password(password)
        user = self.store.add_user(ADMIN, Role.admin, await self._hash(password), at=self._now())
        if user is None:  # pragma: no cover (another process created it meanwhile)
            return None
        self._record(None, "user.create", ADMIN, detail="first start: role admin")
        return password

    # -- sessions ---------------------------------------------------------------------------

    async def login(self, name: str, password: str, *, remote: str) -> WebSession:
        """Check a user name and password and open a session.

        ``AuthenticationFailed`` says the same for a wrong name and a wrong password (and takes
        as long: an unknown name is checked against a dummy hash). ``LockedOut`` while the
        password guard holds a lock for that name or that source (daemon/guard.py)."""
        # No user has a longer name: it is wrong without a check, and kept short in the store.
        too_long = len(name) > MAX_LOGIN_NAME
        name = name[:MAX_LOGIN_NAME]
        attempt = Attempt(name=name, remote=remote, action="login", actor=name)
        stored = None if too_long else self.store.password_hash(name)

        async def check() -> bool:
            if too_long:
                return False
            return await self._verify(stored, password) and stored is not None

        if not await self.guard.verify(attempt, check):
            raise AuthenticationFailed()
        user = self.store.user(name)
        if user is None:  # deleted while we verified
            raise AuthenticationFailed()
        self.guard.trust(name, remote)
        now = self._now()
        self.store.delete_sessions_seen_before(now - timedelta(seconds=self.idle_timeout))
        session_id = secrets.token_urlsafe(32)
        self.store.add_session(_sha256(session_id), name, at=now, remote=remote)
        actor = Actor(name=name, role=user.role, via="session", remote=remote)
        self._record(actor, "login", name)
        return WebSession(
            id=session_id,
            csrf_token=_csrf_token(session_id),
            actor=actor,
            expires_at=now.timestamp() + self.idle_timeout,
        )

    def resume(self, session_id: str, *, remote: str, touch: bool = True) -> WebSession | None:
        """The session of a cookie, or ``None`` if unknown or idle for too long. ``touch``
        (the default) counts this request as activity; background polling may pass False."""
        if not session_id:
            return None
        id_hash = _sha256(session_id)
        stored = self.store.session(id_hash)
        if stored is None:
            return None
        now = self._now()
        if (now - stored.last_seen).total_seconds() > self.idle_timeout:
            self.store.delete_session(id_hash)
            return None
        last_seen = stored.last_seen
        if touch and (now - last_seen).total_seconds() >= TOUCH_INTERVAL:
            self.store.touch_session(id_hash, at=now, remote=remote)
            last_seen = now
        elif touch:
            last_seen = now  # recorded within TOUCH_INTERVAL: near enough
        return WebSession(
            id=session_id,
            csrf_token=_csrf_token(session_id),
            actor=Actor(name=stored.user, role=stored.role, via="session", remote=remote),
            expires_at=last_seen.timestamp() + self.idle_timeout,
        )

    def logout(self, session_id: str, *, remote: str = "") -> None:
        """End a session (``remote``: where the logout came from, for the audit log)."""
        stored = self.store.session(_sha256(session_id)) if session_id else None
        if stored is None:
            return
        self.store.delete_session(stored.id_hash)
        actor = Actor(name=stored.user, role=stored.role, via="session", remote=remote)
        self._record(actor, "logout", stored.user)

    # -- tokens -----------------------------------------------------------------------------

    def authenticate_token(self, token: str, *, remote: str) -> Actor | None:
        """The actor of a bearer token, or ``None`` if malformed, unknown or revoked. Its role
        is the token's, capped by its owner's current role when the owner is a user."""
        parsed = _parse_token(token)
        if parsed is None:
            return None
        token_id, secret = parsed
        stored = self.store.token_secret_hash(token_id)
        if stored is None or not hmac.compare_digest(_sha256(secret), stored):
            return None
        info = self.store.token(token_id)
        if info is None:  # pragma: no cover (revoked and deleted meanwhile: cannot happen)
            return None
        role = info.role
        owner = self.store.user(info.owner)
        if owner is not None and not role_covers(owner.role, role):
            role = owner.role
        now = self._now()
        if info.last_used_at is None or (now - info.last_used_at).total_seconds() >= TOUCH_INTERVAL:
            self.store.touch_token(token_id, at=now)
        return Actor(name=info.owner, role=role, via="token", remote=remote)

    def tokens(self, *, owner: str | None = None) -> list[TokenInfo]:
        """Every token (revoked ones too), or only ``owner``'s."""
        return self.store.tokens(owner=owner)

    def create_token(
        self, name: str, role: Role, *, by: Actor, owner: str | None = None
    ) -> tuple[TokenInfo, str]:
        """A new token and its secret (shown once). Without ``administer`` one may create
        tokens only for oneself and only at or below one's own role."""
        name = name.strip()
        try:
            single_line(name, max_length=64)
        except ValueError as exc:
            raise _invalid("name", str(exc)) from None
        if not name:
            raise _invalid("name", "must not be empty")
        owner = owner or by.name
        if not by.may(Permission.administer):
            if owner != by.name:
                raise Forbidden("only an administrator may create tokens for someone else")
            if not role_covers(by.role, role):
                raise Forbidden(f"a {by.role} may not create a token with the role {role}")
        elif owner != by.name and self.store.user(owner) is None:
            raise _invalid("owner", f"there is no user named {owner}")
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        info = self.store.add_token(token_id, name, role, owner, _sha256(secret), at=self._now())
        self._record(by, "token.create", token_id, detail=f"{name!r} role {role} for {owner}")
        return info, f"{TOKEN_PREFIX}{token_id}_{secret}"

    def revoke_token(self, token_id: str, *, by: Actor) -> None:
        info = self.store.token(token_id)
        if info is None:
            raise NotFound(f"there is no API token {token_id}")
        if not by.may(Permission.administer) and info.owner != by.name:
            raise Forbidden("only an administrator may revoke someone else's token")
        self.store.revoke_token(token_id, at=self._now())
        self._record(by, "token.revoke", token_id, detail=f"{info.name!r} of {info.owner}")

    # -- users ------------------------------------------------------------------------------

    def users(self) -> list[User]:
        return self.store.users()

    def user(self, name: str) -> User:
        user = self.store.user(name)
        if user is None:
            raise NotFound(f"there is no user named {name}")
        return user

    async def create_user(self, name: str, role: Role, password: str, *, by: Actor) -> User:
        _require(by, Permission.administer, "create users")
        if not _USER_NAME.match(name):
            raise _invalid(
                "name",
                "must be 1 to 64 letters, digits or . _ @ -, starting with a letter or digit",
            )
        _check_password(password)
        user = self.store.add_user(name, role, await self._hash(password), at=self._now())
        if user is None:
            raise _invalid("name", f"a user named {name} already exists")
        self._record(by, "user.create", name, detail=f"role {role}")
        return user

    async def set_password(
        self, name: str, password: str, *, by: Actor, current: str | None = None
    ) -> int:
        """Change a password, ending the user's sessions and revoking the API tokens they own;
        how many tokens were revoked. An administrator may set anyone's; anyone else only
        their own, giving the current one. ``current``, whenever given (the WUI's own-account
        form gives it, administrators too), must be the current password, checked by the
        password guard like a login.

        Why the tokens go too: a new password is how a person takes their account back, and a
        token made with the old one (by whoever held it) would outlive the change and keep the
        access it was meant to end. Automation gets a new token after a rotation; it is told so
        (the audit entry, the WUI's message, ``bascule user passwd``)."""
        if not by.may(Permission.administer):
            if by.name != name:
                raise Forbidden("only an administrator may change someone else's password")
            if current is None:
                raise _invalid("current_password", "is not your current password")
        if current is not None:
            # A guess at the current password is a guess at a login: the same guard, lock and
            # audit entries (a read-only token must not be a way round the lockout).
            stored = self.store.password_hash(name)
            attempt = Attempt(name=name, remote=by.remote, action="user.password", actor=by)

            async def check() -> bool:
                return await self._verify(stored, current) and stored is not None

            if not await self.guard.verify(attempt, check):
                raise _invalid("current_password", "is not your current password")
        self.user(name)
        _check_password(password)
        revoked = self.store.set_password_hash(name, await self._hash(password), at=self._now())
        self._record(
            by, "user.password", name, detail=f"sessions ended, {revoked} API tokens revoked"
        )
        return revoked

    def set_role(self, name: str, role: Role, *, by: Actor) -> User:
        _require(by, Permission.administer, "change roles")
        user = self.user(name)
        if user.role == Role.admin and role != Role.admin and self.store.count_admins() <= 1:
            raise NotApplicable(f"{name} is the last administrator: make another one first")
        self.store.set_role(name, role)
        self._record(by, "user.role", name, detail=f"{user.role} -> {role}")
        return self.user(name)

    def delete_user(self, name: str, *, by: Actor) -> None:
        """Delete a user, ending their sessions and revoking their tokens; never the last
        administrator."""
        _require(by, Permission.administer, "delete users")
        user = self.user(name)
        if user.role == Role.admin and self.store.count_admins() <= 1:
            raise NotApplicable(f"{name} is the last administrator and cannot be deleted")
        self.store.delete_user(name, at=self._now())
        self._record(by, "user.delete", name)

    # -- inside -----------------------------------------------------------------------------

    async def _hash(self, password: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def _verify(self, stored: str | None, password: str) -> bool:
        if stored is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self._hash(secrets.token_urlsafe(16))
            stored = self._dummy_hash
        # No stored password is longer than MAX_PASSWORD: a longer one is wrong, and is checked
        # (as long as any other) on its first MAX_PASSWORD + 1 characters only.
        password = password[: MAX_PASSWORD + 1]
        try:
            async with self._hashing:
                return await asyncio.to_thread(self._hasher.verify, stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _record(
        self, actor: Actor | str | None, action: str, target: str, *, detail: str = ""
    ) -> None:
        if self._audit is not None:
            self._audit.record(actor, action, target, detail=detail)


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


def _csrf_token(session_id: str) -> str:
    digest = hmac.new(session_id.encode(), _CSRF_CONTEXT, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _parse_token(token: str) -> tuple[str, str] | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    token_id, _, secret = token.removeprefix(TOKEN_PREFIX).partition("_")
    if not _TOKEN_ID.match(token_id) or not secret:
        return None
    return token_id, secret


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise _invalid("password", f"must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise _invalid("password", f"must be at most {MAX_PASSWORD} characters")


def _invalid(path: str, message: str) -> InvalidConfiguration:
    return InvalidConfiguration([FieldError(path=path, message=message)])


def _require(by: Actor, permission: Permission, what: str) -> None:
    if not by.may(permission):
        raise Forbidden(f"a {by.role} may not {what}")
