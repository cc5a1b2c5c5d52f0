"""The audit log as the daemon keeps it: every change, login and account change, in one place.

``ConfigService`` records each configuration change (committed or refused) with its author,
address, message, revision and diff; ``AccountService`` records logins (ok, failed, locked),
user and token changes. The API and the WUI read it back a page at a time, newest first.

Recording never fails the change it describes: the change has already happened (or already
been refused), so a store error here is logged and swallowed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bascule.errors import StoreError
from bascule.model.access import Actor
from bascule.store.audit import AuditEntry, AuditStore

log = logging.getLogger("bascule.audit")

__all__ = ["AuditEntry", "AuditService"]

#: The actor name of what the daemon does by itself (no request behind it).
SYSTEM = "system"


class AuditService:
    """Appends to and pages through the audit log."""

    def __init__(self, store: AuditStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock

    def record(
        self,
        actor: Actor | str | None,
        action: str,
        target: str = "",
        *,
        remote: str = "",
        revision: int | None = None,
        diff: Sequence[Mapping[str, Any]] = (),
        outcome: str = "ok",
        detail: str = "",
    ) -> None:
        """Record one entry. ``actor`` is who (an ``Actor``, or only a name as the history
        knows it, e.g. the author of a configuration change); ``remote`` defaults to the
        actor's address."""
        match actor:
            case Actor():
                name, role, where = actor.name, actor.role.value, actor.remote
            case str():
                name, role, where = actor or SYSTEM, "", ""
            case None:
                name, role, where = SYSTEM, "", ""
        try:
            self.store.append(
                at=datetime.fromtimestamp(self._clock(), UTC),
                actor=name,
                role=role,
                remote=remote or where,
                action=action,
                target=target,
                revision=revision,
                diff=diff,
                outcome=outcome,
                detail=detail,
            )
        except StoreError as exc:
            log.error(
                "cannot record in the audit log",
                extra={"error": str(exc), "action": action, "actor": name},
            )

    def page(
        self,
        offset: int,
        limit: int,
        *,
        actor: str | None = None,
        action: str | None = None,
    ) -> tuple[list[AuditEntry], int]:
        """Entries ``offset`` to ``offset + limit``, newest first, and the total that match."""
        return self.store.page(offset, limit, actor=actor, action=action)
