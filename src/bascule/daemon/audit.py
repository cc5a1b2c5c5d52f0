"""The audit log as the daemon keeps it: every change, login and account change, in one place.

The change pipeline (``daemon/changes.py``) records each configuration change (committed or
refused) with its actor (name, role, address), message, revision and diff; ``AccountService``
records logins (ok, failed, locked), user and token changes. The API and the WUI read it back
a page at a time, newest first.

Recording never fails the change it describes: the change has already happened (or already
been refused), so a store error here is logged and swallowed. The entry of a committed change
is the exception: the pipeline builds it with ``entry`` and the revision store writes it in
the revision's own transaction (both or neither), and ``settle`` records the apply outcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bascule.errors import StoreError
from bascule.model.access import Actor
from bascule.store.audit import AuditEntry, AuditOutcome, AuditRecord, AuditStore

log = logging.getLogger("bascule.audit")

__all__ = ["AuditEntry", "AuditOutcome", "AuditService"]

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
        outcome: AuditOutcome = AuditOutcome.ok,
        detail: str = "",
    ) -> None:
        """Record one entry. ``actor`` is who (an ``Actor``, with its role and address, or
        only a name, e.g. the user name a login tried); ``remote`` defaults to the actor's
        address."""
        entry = self.entry(
            actor,
            action,
            target,
            remote=remote,
            revision=revision,
            diff=diff,
            outcome=outcome,
            detail=detail,
        )
        try:
            self.store.append(
                at=entry.at,
                actor=entry.actor,
                role=entry.role,
                remote=entry.remote,
                action=entry.action,
                target=entry.target,
                revision=entry.revision,
                diff=entry.diff,
                outcome=entry.outcome,
                detail=entry.detail,
            )
        except StoreError as exc:
            log.error(
                "cannot record in the audit log",
                extra={"error": str(exc), "action": action, "actor": entry.actor},
            )

    def entry(
        self,
        actor: Actor | str | None,
        action: str,
        target: str = "",
        *,
        remote: str = "",
        revision: int | None = None,
        diff: Sequence[Mapping[str, Any]] = (),
        outcome: AuditOutcome = AuditOutcome.ok,
        detail: str = "",
    ) -> AuditRecord:
        """An entry stamped now but not written: the change pipeline hands it to
        ``RevisionStore.commit``, which writes it in the transaction of the revision."""
        match actor:
            case Actor():
                name, role, where = actor.name, actor.role.value, actor.remote
            case str():
                name, role, where = actor or SYSTEM, "", ""
            case None:
                name, role, where = SYSTEM, "", ""
        return AuditRecord(
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

    def settle(self, revision: int, *, outcome: AuditOutcome, detail: str) -> None:
        """Set the outcome of the entry committed with ``revision`` (e.g. ``apply_failed``
        when the engines refused it); like ``record``, never fails the change."""
        try:
            self.store.settle(revision, outcome=outcome, detail=detail)
        except StoreError as exc:
            log.error(
                "cannot settle an audit entry",
                extra={"error": str(exc), "revision": revision, "outcome": outcome},
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
