"""The HTTP user store as the doors see it: the users of services' basic authentication.

Where it sits: beside ``ConfigService`` (daemon/service.py), under the doors (the API's
``/http-users`` routes, the CLI's ``bascule http-user`` through the API). It hashes a new
password (store/http_users.py: yescrypt, never the plain password kept, logged or returned),
keeps the rows, hands every hash to the HAProxy engine (``HttpUserEngine.set_http_users``:
HAProxy reads its userlists when it loads, from the configuration file, 0600) and reloads
HAProxy when a user a service names changed (a new password is checked from the reload on;
a user no service names changes nothing running).

It also answers, for the change pipeline, whether a document's ``authentication.users`` exist
(``document_problems``: field errors like ``virtual_services[0].authentication.users[0]``)
and refuses deleting a user a service names. Changes take the reconciler's lock (a document
naming a user and the user's deletion never cross), are refused on an HA pair's standby (its
stores follow the active's), handed to the standby before they return (``after_change``: the
pair's push, daemon/pair.py; the standby runs ``replicate``), and are recorded in the audit log
without any password. A sealed backup carries the users (``export``: the hashes sealed with
the backup's passphrase, store/http_users.py) and a restore puts them back (``restore``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from bascule.daemon.audit import AuditOutcome, AuditService
from bascule.daemon.service import ConfigService
from bascule.errors import BasculeError, FieldError, Forbidden, NotFound
from bascule.model import Configuration
from bascule.model.access import Actor, Permission
from bascule.model.authentication import authentication_users
from bascule.store.http_users import (
    HttpUser,
    HttpUserStore,
    InvalidHttpUser,
    check_name,
    hash_password,
    open_rows,
    seal_rows,
)

log = logging.getLogger("bascule.http_users")

Clock = Callable[[], datetime]


class HttpUserEngine(Protocol):
    """The engine that checks the passwords (the HAProxy engine)."""

    name: str

    def set_http_users(self, hashes: Mapping[str, str]) -> bool: ...


@dataclass(frozen=True, kw_only=True)
class HttpUserDetails:
    name: str
    created_at: datetime
    password_changed_at: datetime
    used_by: tuple[str, ...]  # the virtual services whose authentication names the user


@dataclass(frozen=True, kw_only=True)
class HttpUserChange:
    details: HttpUserDetails
    # empty when the engines serve the change; else why not yet (the reload failed)
    message: str = ""


class HttpUserService:
    """The HTTP user store, the engine's copy of its hashes, and the checks of a document."""

    def __init__(
        self,
        store: HttpUserStore,
        *,
        config: ConfigService,
        audit: AuditService | None,
        engine: HttpUserEngine | None = None,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.config = config
        self.audit = audit
        self.engine = engine
        self.clock = clock
        # an HA pair (daemon/pair.py): after a change, hands the store to the standby before
        # the change returns (the pair's loop retries while the peer is down)
        self.after_change: Callable[[], Awaitable[None]] | None = None
        self._restoring: frozenset[str] = frozenset()

    # -- reading ------------------------------------------------------------------------------

    def entries(self) -> list[HttpUserDetails]:
        usage = _usage(self.config.desired())
        return [_details(user, usage) for user in self.store.entries()]

    def show(self, name: str) -> HttpUserDetails:
        user = self.store.entry(name)
        if user is None:
            raise NotFound(f"there is no HTTP user named {name!r}")
        return _details(user, _usage(self.config.desired()))

    # -- changing -----------------------------------------------------------------------------

    async def add(self, name: str, password: str, *, actor: Actor) -> HttpUserChange:
        async def change() -> None:
            check_name(name)
            hashed = await asyncio.to_thread(hash_password, password)
            self.store.add(name, hashed, at=self.clock())

        message = await self._change("http_user.add", name, change, actor=actor)
        return HttpUserChange(details=self.show(name), message=message)

    async def set_password(self, name: str, password: str, *, actor: Actor) -> HttpUserChange:
        async def change() -> None:
            if self.store.entry(name) is None:
                raise NotFound(f"there is no HTTP user named {name!r}")
            hashed = await asyncio.to_thread(hash_password, password)
            self.store.set_password_hash(name, hashed, at=self.clock())

        message = await self._change("http_user.passwd", name, change, actor=actor)
        return HttpUserChange(details=self.show(name), message=message)

    async def delete(self, name: str, *, actor: Actor) -> None:
        """Remove a user; refused while a service names it."""

        async def change() -> None:
            check_name(name)
            if self.store.entry(name) is None:
                raise NotFound(f"there is no HTTP user named {name!r}")
            users = _usage(self.config.desired()).get(name, ())
            if users:
                plural = len(users) > 1
                raise InvalidHttpUser(
                    "name",
                    f"{name} is named by the authentication of virtual service"
                    f"{'s' if plural else ''} {', '.join(users)}: change "
                    f"{'them' if plural else 'it'} first",
                )
            self.store.delete(name)

        await self._change("http_user.delete", name, change, actor=actor)

    async def _change(
        self, action: str, name: str, change: Callable[[], Awaitable[None]], *, actor: Actor
    ) -> str:
        """Run ``change`` under the lock, hand the hashes on, audit; what went wrong, or ""."""
        message = ""
        try:
            guard = self.config.changes.guard
            if guard is not None:
                guard()  # an HA pair's standby: its stores follow the active's
            async with self.config.reconciler.lock:
                await change()
                message = await self._publish(changed=name)
                if self.after_change is not None:
                    await self.after_change()
        except BasculeError as exc:
            self._record(actor, action, name, outcome=AuditOutcome.refused, detail=str(exc))
            raise
        self._record(actor, action, name, detail=message or "done")
        return message

    async def _publish(self, *, changed: str | None) -> str:
        """Hand the store's hashes to the engine; reload it when a user that ``changed`` is
        one a service names. Called with the reconciler's lock held. What went wrong, or ""."""
        if self.engine is None:
            return ""
        hashes = await asyncio.to_thread(self.store.hashes)
        if not self.engine.set_http_users(hashes):
            return ""
        if changed is not None and changed not in _usage(self.config.desired()):
            return ""  # no running userlist holds it: the next reload reads the new hashes
        reconciler = self.config.reconciler
        # a configuration HAProxy is not known to run: the next pass writes and reloads
        reconciler.adopt(self.engine.name, None)
        ok, error = await reconciler.reconcile_locked()
        if ok:
            return ""
        log.error("could not reload HAProxy for an HTTP user", extra={"error": error})
        return f"stored, but HAProxy could not reload: {error}"

    async def prepare(self) -> None:
        """At the daemon's start: the engine knows every hash before it first renders."""
        if self.engine is not None:
            self.engine.set_http_users(await asyncio.to_thread(self.store.hashes))

    async def replicate(self, rows: Sequence[Mapping[str, object]]) -> tuple[str, ...]:
        """Hold exactly the HA pair's active's users (``HttpUserStore.export`` there); HAProxy
        reloaded when one a service names changed. The names that changed."""
        async with self.config.reconciler.lock:
            changed = await asyncio.to_thread(self.store.replicate, rows)
            if changed:
                await self._publish(changed=self._named(changed))
        return changed

    def _named(self, names: Sequence[str]) -> str | None:
        """One of ``names`` a service's authentication names, if any (it makes a reload)."""
        usage = _usage(self.config.desired())
        return next((name for name in names if name in usage), None)

    # -- backups ------------------------------------------------------------------------------

    def export(self, passphrase: str | None) -> dict[str, object] | None:
        """A backup's ``http_user_store`` section: only in a sealed backup (a passphrase),
        the hashes sealed with it; None without a passphrase or without users."""
        if passphrase is None:
            return None
        rows = self.store.export()
        return seal_rows(rows, passphrase) if rows else None

    @staticmethod
    def check_backup(section: object, passphrase: str | None) -> frozenset[str]:
        """The names a backup's section would restore (its hashes opened with
        ``passphrase``, every row checked), or its refusal; nothing is written."""
        return frozenset(row["name"] for row in open_rows(section, passphrase))

    @contextlib.contextmanager
    def restoring(self, names: frozenset[str]) -> Iterator[None]:
        """While a restore is planned (a dry run): the backup's users count as stored."""
        self._restoring = names
        try:
            yield
        finally:
            self._restoring = frozenset()

    async def restore(self, section: object, passphrase: str | None, *, actor: Actor) -> str:
        """Put a backup's users back (a user of the same name takes the backup's hash, the
        others are kept), HAProxy reloaded when a service names one that changed; says what
        it did."""
        action = "http_user.restore"
        names = ""
        try:
            if not actor.may(Permission.administer):  # the doors ask for configure only
                raise Forbidden("only an administrator may restore HTTP users")
            guard = self.config.changes.guard
            if guard is not None:
                guard()
            # scrypt opens the hashes: 128 MiB and half a second, not on the loop
            rows = await asyncio.to_thread(open_rows, section, passphrase)
            names = ", ".join(row["name"] for row in rows)
            async with self.config.reconciler.lock:
                changed = await asyncio.to_thread(self.store.restore, rows)
                problem = await self._publish(changed=self._named(changed)) if changed else ""
                if self.after_change is not None:
                    await self.after_change()
        except BasculeError as exc:
            self._record(actor, action, names, outcome=AuditOutcome.refused, detail=str(exc))
            raise
        said = f"{len(rows)} HTTP user{'' if len(rows) == 1 else 's'} restored"
        if problem:
            said = f"{said} ({problem})"
        self._record(actor, action, names or "-", detail=said)
        return said

    def _record(
        self,
        actor: Actor,
        action: str,
        target: str,
        *,
        outcome: AuditOutcome = AuditOutcome.ok,
        detail: str = "",
    ) -> None:
        if self.audit is not None:
            self.audit.record(actor, action, target, outcome=outcome, detail=detail)

    # -- the document -------------------------------------------------------------------------

    def document_problems(self, config: Configuration) -> list[FieldError]:
        """Every ``authentication.users`` entry of ``config`` the store does not hold."""
        named = list(authentication_users(config))
        if not named:
            return []
        stored = {user.name for user in self.store.entries()} | self._restoring
        return [
            FieldError(
                path=f"virtual_services[{index}].authentication.users[{user_index}]",
                message=f"there is no HTTP user {user} in the store: add it first "
                f"(bascule http-user add {user})",
            )
            for index, user_index, _, user in named
            if user not in stored
        ]


def _usage(config: Configuration) -> dict[str, tuple[str, ...]]:
    usage: dict[str, list[str]] = {}
    for _, _, service, user in authentication_users(config):
        usage.setdefault(user, []).append(service)
    return {user: tuple(services) for user, services in usage.items()}


def _details(user: HttpUser, usage: dict[str, tuple[str, ...]]) -> HttpUserDetails:
    return HttpUserDetails(
        name=user.name,
        created_at=user.created_at,
        password_changed_at=user.password_changed_at,
        used_by=usage.get(user.name, ()),
    )
