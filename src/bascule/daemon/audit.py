"""The audit log as the daemon keeps it: every change, login and account change, in one place.

The change pipeline (``daemon/changes.py``) records each configuration change (committed or
refused) with its actor (name, role, address), message, revision and diff; ``AccountService``
records logins (ok, failed, locked), user and token changes. The API and the WUI read it back
a page at a time, newest first.

Recording never fails the change it describes: the change has already happened (or already
been refused), so a store error here is logged and swallowed. The entry of a committed change
is the exception: the pipeline builds it with ``entry`` and the revision store writes it in
the revision's own transaction (both or neither), and ``settle`` records the apply outcome.

Nobody fills the disk through it (docs/security.md):

- what comes from a request is stored short and printable: every text field is cut to its
  limit (``LIMITS``: a refused path of 60 KB becomes 256 characters and a note of how much was
  left out) and control characters are stored as escapes (``\x1b``);
- refusals (``refused``) are recorded ``REFUSAL_BURST`` at a time per actor, then one every
  ``REFUSAL_EVERY`` seconds; the next one recorded says how many were not (a viewer
  hammering a route it may not use writes a few entries a minute, not thousands a second).
  Failed logins are bounded by the password guard (daemon/guard.py), which locks and records
  once per lock;
- old entries go: daemon/retention.py prunes the log by age and by size.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict, Unpack

from bascule.errors import StoreError
from bascule.model.access import Actor
from bascule.store.audit import AuditEntry, AuditOutcome, AuditRecord, AuditStore
from bascule.text import clip, escape_control

log = logging.getLogger("bascule.audit")

__all__ = ["AuditEntry", "AuditOutcome", "AuditService"]

#: The actor name of what the daemon does by itself (no request behind it).
SYSTEM = "system"
#: The longest text stored in each field of an entry (characters; the diff is the change's).
LIMITS = {"actor": 128, "role": 16, "remote": 64, "action": 64, "target": 256, "detail": 2000}
#: Refusals recorded at once per actor, then one per REFUSAL_EVERY seconds.
REFUSAL_BURST = 20
REFUSAL_EVERY = 6.0
#: Actors whose refusals are counted; past it, the quietest are forgotten.
_MAX_BUCKETS = 10_000


@dataclass
class _Bucket:
    """A token bucket of refusal entries for one actor, and the refusals it did not record."""

    tokens: float
    updated: float
    suppressed: int = 0


class EntryFields(TypedDict, total=False):
    """What an entry may say besides who, what and on which target (``AuditService.entry``)."""

    remote: str
    revision: int | None
    diff: Sequence[Mapping[str, Any]]
    outcome: AuditOutcome
    detail: str


class AuditService:
    """Appends to and pages through the audit log."""

    def __init__(self, store: AuditStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock
        self._refusals: dict[str, _Bucket] = {}

    def record(
        self,
        actor: Actor | str | None,
        action: str,
        target: str = "",
        **fields: Unpack[EntryFields],
    ) -> None:
        """Record one entry. ``actor`` is who (an ``Actor``, with its role and address, or
        only a name, e.g. the user name a login tried); ``remote`` defaults to the actor's
        address. A refusal beyond the actor's rate is counted, not recorded."""
        if fields.get("outcome") is AuditOutcome.refused:
            name = actor.name if isinstance(actor, Actor) else (actor or SYSTEM)
            recorded, suppressed = self._take_refusal(name)
            if not recorded:
                return
            if suppressed:
                detail = fields.get("detail", "")
                fields["detail"] = f"{detail} ({suppressed} more refusals of {name} not recorded)"
        entry = self.entry(actor, action, target, **fields)
        try:
            self.store.append(entry)
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
            actor=_stored(name, "actor"),
            role=_stored(role, "role"),
            remote=_stored(remote or where, "remote"),
            action=_stored(action, "action"),
            target=_stored(target, "target"),
            revision=revision,
            diff=diff,
            outcome=outcome,
            detail=_stored(detail, "detail"),
        )

    def _take_refusal(self, name: str) -> tuple[bool, int]:
        """Whether a refusal of ``name`` is recorded now, and how many were not before it."""
        now = self._clock()
        bucket = self._refusals.get(name)
        if bucket is None:
            if len(self._refusals) >= _MAX_BUCKETS:
                self._forget_quiet(now)
            bucket = self._refusals[name] = _Bucket(tokens=REFUSAL_BURST, updated=now)
        bucket.tokens = min(REFUSAL_BURST, bucket.tokens + (now - bucket.updated) / REFUSAL_EVERY)
        bucket.updated = now
        if bucket.tokens < 1:
            bucket.suppressed += 1
            return False, 0
        bucket.tokens -= 1
        suppressed, bucket.suppressed = bucket.suppressed, 0
        return True, suppressed

    def _forget_quiet(self, now: float) -> None:
        """Drop the buckets that are full again (their actors have been quiet long enough)."""
        full = REFUSAL_BURST * REFUSAL_EVERY
        self._refusals = {
            name: bucket
            for name, bucket in self._refusals.items()
            if now - bucket.updated < full or bucket.suppressed
        }
        while len(self._refusals) >= _MAX_BUCKETS:  # a flood of names: the oldest go
            oldest = min(self._refusals, key=lambda name: self._refusals[name].updated)
            del self._refusals[oldest]

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


def _stored(text: str, field: str) -> str:
    """``text`` as the audit log keeps it: printable and at most ``LIMITS[field]`` long."""
    return clip(escape_control(text), LIMITS[field])
