"""The retention: what Bascule keeps on disk is bounded, by age and by size.

Beside the flow of a change, at its end: every hour (and at start) the daemon prunes

- the **audit log**: entries older than ``audit_days``, then the oldest until the rest hold at
  most ``audit_max_bytes`` (``AuditStore.prune``);
- the **revision history**: the oldest beyond the newest ``revisions_keep``, or beyond
  ``revisions_max_bytes`` of documents and diffs (``RevisionStore.prune``), never the head,
  the last good or the last attempted revision, nor one a kept revision was rolled back from.

Statistics are not on disk at all (daemon/statistics.py: an hour and a day per service, in
memory, dropped with the service); failed password checks and login sources are pruned as
they are written (daemon/guard.py). SQLite reuses the pages freed: the file stops growing, it
does not shrink (a ``VACUUM`` would rewrite it whole under an exclusive lock).

Each pass runs in a worker thread (the deletes are SQLite writes with an fsync) and logs what
it removed; a store error is logged and the next pass tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bascule.errors import StoreError
from bascule.store.audit import AuditStore
from bascule.store.revisions import RevisionStore

log = logging.getLogger("bascule.retention")

#: How often the daemon prunes (seconds).
INTERVAL = 3600.0
MIB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class RetentionPolicy:
    """How much history is kept (settings ``audit_retention_days``, ``audit_max_mb``,
    ``revisions_keep``, ``revisions_max_mb``)."""

    audit_days: float = 365.0
    audit_max_bytes: int = 64 * MIB
    revisions_keep: int = 1000
    revisions_max_bytes: int = 256 * MIB

    def __post_init__(self) -> None:
        if self.audit_days <= 0 or self.audit_max_bytes <= 0:
            raise ValueError("the audit log's retention must be positive")
        if self.revisions_keep < 1 or self.revisions_max_bytes <= 0:
            raise ValueError("at least one revision is kept, in a positive size")


@dataclass(frozen=True, kw_only=True)
class Pruned:
    """What one pass removed."""

    audit_entries: int
    revisions: tuple[int, ...]


class Retention:
    """Prunes the audit log and the history by the policy; ``run`` every ``interval``."""

    def __init__(
        self,
        *,
        revisions: RevisionStore,
        audit: AuditStore,
        policy: RetentionPolicy,
        clock: Callable[[], float] = time.time,
        interval: float = INTERVAL,
    ) -> None:
        self.revisions = revisions
        self.audit = audit
        self.policy = policy
        self.interval = interval
        self._clock = clock

    def prune(self) -> Pruned:
        """One pass, now (blocking: the daemon runs it in a worker thread)."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        policy = self.policy
        entries = self.audit.prune(
            before=now - timedelta(days=policy.audit_days), max_bytes=policy.audit_max_bytes
        )
        numbers = self.revisions.prune(
            keep=policy.revisions_keep, max_bytes=policy.revisions_max_bytes
        )
        return Pruned(audit_entries=entries, revisions=tuple(numbers))

    async def run(self) -> None:
        """Prune now and every ``interval`` seconds until cancelled."""
        while True:
            try:
                pruned = await asyncio.to_thread(self.prune)
            except StoreError as exc:
                log.error("retention failed", extra={"error": str(exc)})
            else:
                if pruned.audit_entries or pruned.revisions:
                    log.info(
                        "pruned by the retention policy",
                        extra={
                            "audit_entries": pruned.audit_entries,
                            "revisions": len(pruned.revisions),
                            "oldest_kept": (pruned.revisions[-1] + 1) if pruned.revisions else None,
                        },
                    )
            await asyncio.sleep(self.interval)
