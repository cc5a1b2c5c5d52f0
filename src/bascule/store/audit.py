"""The audit log: who did what, when, from where, with which outcome; in ``bascule.db``.

Sits under the daemon's ``AuditService``: the service layer (configuration changes) and the
account service (logins, users, tokens) record entries; the API and the WUI page through them,
newest first. Entries are only ever appended, with one exception: the entry of a committed
revision is written by ``RevisionStore.commit`` in the revision's own transaction (so neither
exists without the other) and its outcome is settled once the engines have applied it. Old
entries are deleted by the retention (``prune``, daemon/retention.py), oldest first.
"""

from __future__ import annotations

import enum
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bascule.errors import StoreError
from bascule.store.database import Database, transaction


class AuditOutcome(enum.StrEnum):
    """How what an entry records ended."""

    ok = "ok"  # done (a committed change its engines applied, a login, a user created...)
    refused = "refused"  # refused before anything changed (invalid, stale, forbidden...)
    apply_failed = "apply_failed"  # committed, but the engines could not apply it
    failed = "failed"  # a login with a wrong user name or password
    locked = "locked"  # a login refused, or one that locked its user name out


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """An entry not written yet: ``RevisionStore.commit`` writes it with the revision it
    commits (filling in ``revision``), in the same transaction."""

    at: datetime
    actor: str
    role: str
    remote: str
    action: str
    target: str
    revision: int | None
    diff: Sequence[Mapping[str, Any]]
    outcome: AuditOutcome
    detail: str


@dataclass(frozen=True, kw_only=True)
class AuditEntry(AuditRecord):
    """One line of the audit log, as read back: a record and its ``id``. ``diff`` is the
    revision's diff as JSON (``()`` if none)."""

    id: int


_COLUMNS = "id, at, actor, role, remote, action, target, revision, diff, outcome, detail"
# An entry's size as the retention counts it: its texts in bytes, and a little for the rest.
_ENTRY_BYTES = (
    "(LENGTH(CAST(diff AS BLOB)) + LENGTH(CAST(detail AS BLOB)) + LENGTH(CAST(target AS BLOB))"
    " + LENGTH(CAST(actor AS BLOB)) + LENGTH(CAST(remote AS BLOB)) + LENGTH(action) + 64)"
)
# The newest entry that no longer fits in the size cap, counting from the newest.
_OLDEST_BEYOND = (
    "SELECT id FROM ("  # noqa: S608 (constant clauses)
    " SELECT id, SUM(size) OVER (ORDER BY id DESC) AS kept FROM ("
    f"  SELECT id, {_ENTRY_BYTES} AS size FROM audit_log))"
    " WHERE kept > ? ORDER BY id DESC LIMIT 1"
)


def insert_entry(db: sqlite3.Connection, record: AuditRecord) -> int:
    """Insert ``record`` in the transaction open on ``db``; returns its id."""
    try:
        diff_text = json.dumps(list(record.diff), ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"an audit diff cannot be stored as JSON: {exc}") from exc
    cursor = db.execute(
        "INSERT INTO audit_log"
        " (at, actor, role, remote, action, target, revision, diff, outcome, detail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            _text(record.at),
            record.actor,
            record.role,
            record.remote,
            record.action,
            record.target,
            record.revision,
            diff_text,
            record.outcome,
            record.detail,
        ),
    )
    return int(cursor.lastrowid or 0)


class AuditStore(Database):
    """The ``audit_log`` table; one connection, serialized by a lock."""

    def append(self, record: AuditRecord) -> int:
        """Append an entry; returns its id."""
        with self._use("append to the audit log") as db, transaction(db):
            return insert_entry(db, record)

    def settle(self, revision: int, *, outcome: AuditOutcome, detail: str) -> None:
        """Set the outcome of the entry committed with ``revision`` (only a committed change's
        entry names a revision), once the engines have applied it or not."""
        with self._use("settle an audit entry") as db, transaction(db):
            db.execute(
                "UPDATE audit_log SET outcome = ?, detail = ? WHERE revision = ?",
                (outcome, detail, revision),
            )

    def prune(self, *, before: datetime, max_bytes: int) -> int:
        """Delete the entries older than ``before``, then the oldest until the rest take at most
        ``max_bytes`` (their text, counted in bytes); how many went (daemon/retention.py)."""
        with self._use("prune the audit log") as db, transaction(db):
            aged = db.execute("DELETE FROM audit_log WHERE at < ?", (_text(before),)).rowcount
            row = db.execute(_OLDEST_BEYOND, (max_bytes,)).fetchone()
            sized = 0
            if row is not None:
                sized = db.execute("DELETE FROM audit_log WHERE id <= ?", (row[0],)).rowcount
        return int(aged) + int(sized)

    def size(self) -> tuple[int, int]:
        """How many entries the log holds, and their size in bytes (as ``prune`` counts)."""
        with self._use("measure the audit log") as db:
            count, total = db.execute(
                f"SELECT COUNT(*), COALESCE(SUM({_ENTRY_BYTES}), 0) FROM audit_log"  # noqa: S608
            ).fetchone()
        return int(count), int(total)

    def page(
        self,
        offset: int,
        limit: int,
        *,
        actor: str | None = None,
        action: str | None = None,
    ) -> tuple[list[AuditEntry], int]:
        """Entries ``offset`` to ``offset + limit``, newest first, and how many match."""
        if offset < 0 or limit < 1:
            raise ValueError(f"bad page: offset {offset}, limit {limit}")
        where: list[str] = []
        parameters: list[Any] = []
        if actor is not None:
            where.append("actor = ?")
            parameters.append(actor)
        if action is not None:
            where.append("action = ?")
            parameters.append(action)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._use("read the audit log") as db:
            total = int(
                db.execute(
                    f"SELECT COUNT(*) FROM audit_log{clause}",  # noqa: S608 (constant clauses)
                    parameters,
                ).fetchone()[0]
            )
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM audit_log{clause}"  # noqa: S608 (constant clauses)
                " ORDER BY id DESC LIMIT ? OFFSET ?",
                [*parameters, limit, offset],
            ).fetchall()
        return [_entry(row) for row in rows], total


def _entry(row: tuple[Any, ...]) -> AuditEntry:
    entry_id, at, actor, role, remote, action, target, revision, diff, outcome, detail = row
    try:
        decoded = json.loads(diff)
        at_time = datetime.fromisoformat(at)
        outcome = AuditOutcome(outcome)
    except ValueError as exc:
        raise StoreError(f"audit entry {entry_id} is unreadable: {exc}") from exc
    return AuditEntry(
        id=entry_id,
        at=at_time,
        actor=actor,
        role=role,
        remote=remote,
        action=action,
        target=target,
        revision=revision,
        diff=tuple(item for item in decoded if isinstance(item, dict)),
        outcome=outcome,
        detail=detail,
    )


def _text(at: datetime) -> str:
    if at.tzinfo is None:
        raise StoreError("a time without a time zone cannot be stored")
    return at.astimezone(UTC).isoformat(timespec="microseconds")
