"""A revision as a value and as a row of the ``revisions`` table.

Where this sits in the flow of a change: the revision store (``revisions.py``) commits a
validated document as a ``Revision``; the values it hands out are here (``Revision``, a line
of the history ``RevisionSummary``, what the daemon applied ``AppliedState``, and
``digest_of``, what tells two copies of a revision apart on the HA pair), with the reads and
inserts of the table's rows that its transactions are made of, on a connection the store
holds in a transaction (its text is ``texts.py``'s). A stored document is read forward to the
current schema version, never rewritten.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bascule.errors import Conflict, InvalidConfiguration, NotFound, StoreError
from bascule.model.schema import migrate
from bascule.reconcile.diff import DiffItem, diff_from_json
from bascule.store.texts import decode_document, encode, encode_diff


@dataclass(frozen=True, kw_only=True)
class Revision:
    """One committed configuration document and how it came to be.

    ``diff`` turns the previous revision's document into this one's (from the empty document
    for revision 1). ``rolled_back_from`` is the older revision whose document a rollback
    restored, ``None`` for an ordinary commit.
    """

    number: int
    created_at: datetime
    author: str
    message: str
    document: dict[str, Any]
    diff: tuple[DiffItem, ...]
    rolled_back_from: int | None

    def summary(self) -> RevisionSummary:
        """Its line of the history."""
        return RevisionSummary(
            number=self.number,
            created_at=self.created_at,
            author=self.author,
            message=self.message,
            changes=len(self.diff),
            rolled_back_from=self.rolled_back_from,
        )


@dataclass(frozen=True, kw_only=True)
class RevisionSummary:
    """A line of the history: a revision without its document; ``changes`` counts its diff."""

    number: int
    created_at: datetime
    author: str
    message: str
    changes: int
    rolled_back_from: int | None


@dataclass(frozen=True, kw_only=True)
class AppliedState:
    """What the daemon last did with the engines.

    ``last_good`` is the last revision applied successfully (``None`` before any success, the
    state traffic flows on); ``last_attempt`` the last revision tried, ``ok`` and ``message``
    that attempt's outcome, ``attempted_at`` its time.
    """

    last_good: int | None
    last_attempt: int
    ok: bool
    message: str
    attempted_at: datetime


REVISION_COLUMNS = "number, created_at, author, message, document, diff, rolled_back_from"


def insert_replica(db: sqlite3.Connection, revision: Revision) -> None:
    """A revision made on the HA pair's other node, under its own number, time and author."""
    db.execute(
        f"INSERT INTO revisions ({REVISION_COLUMNS}, changes)"  # noqa: S608 (a constant)
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            revision.number,
            revision.created_at.astimezone(UTC).isoformat(),
            revision.author,
            revision.message,
            encode(revision.document),
            encode_diff(revision.diff),
            revision.rolled_back_from,
            len(revision.diff),
        ),
    )


def digest_of(revision: Revision) -> str:
    """What tells two copies of a revision apart (SHA-256, hex): number, time, author, message
    and document. Two nodes that both committed a revision N differ at least in its time."""
    text = "\n".join(
        (
            str(revision.number),
            revision.created_at.astimezone(UTC).isoformat(),
            revision.author,
            revision.message,
            encode(revision.document),
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()


def check_base(db: sqlite3.Connection, base: int | None) -> Revision | None:
    head = read_head(db)
    current = None if head is None else head.number
    if base != current:
        raise Conflict(base=base, current=current)
    return head


def head_number(db: sqlite3.Connection) -> int | None:
    number: int | None = db.execute("SELECT MAX(number) FROM revisions").fetchone()[0]
    return number


def read_head(db: sqlite3.Connection) -> Revision | None:
    row = db.execute(
        f"SELECT {REVISION_COLUMNS} FROM revisions"  # noqa: S608 (a constant)
        " ORDER BY number DESC LIMIT 1"
    ).fetchone()
    return None if row is None else revision_from_row(row)


def stored_document(db: sqlite3.Connection, row: tuple[int, str]) -> str | None:
    """The stored text of revision ``row`` (number, time), None if there is no such one."""
    found = db.execute(
        "SELECT document FROM revisions WHERE number = ? AND created_at = ?", row
    ).fetchone()
    return None if found is None else str(found[0])


def must_exist(db: sqlite3.Connection, number: int) -> None:
    """``NotFound`` unless revision ``number`` exists (its document left undecoded: 10,000
    servers take tens of milliseconds to decode, issue 15)."""
    if db.execute("SELECT 1 FROM revisions WHERE number = ?", (number,)).fetchone() is None:
        raise NotFound(f"revision {number} does not exist")


def read_revision(db: sqlite3.Connection, number: int) -> Revision:
    row = db.execute(
        f"SELECT {REVISION_COLUMNS} FROM revisions WHERE number = ?",  # noqa: S608 (a constant)
        (number,),
    ).fetchone()
    if row is None:
        raise NotFound(f"revision {number} does not exist")
    return revision_from_row(row)


def revision_from_row(row: tuple[Any, ...]) -> Revision:
    number, created_at, author, message, document, diff, rolled_back_from = row
    try:
        decoded_diff = diff_from_json(json.loads(diff))
    except ValueError as exc:
        raise StoreError(f"revision {number} has an unreadable diff: {exc}") from exc
    return Revision(
        number=number,
        created_at=parse_time(created_at),
        author=author,
        message=message,
        document=_read_forward(number, decode_document(document)),
        diff=decoded_diff,
        rolled_back_from=rolled_back_from,
    )


def insert_revision(
    db: sqlite3.Connection,
    number: int,
    created_at: datetime,
    author: str,
    message: str,
    text: str,
    diff: tuple[DiffItem, ...],
    rolled_back_from: int | None,
) -> None:
    """One revision's row (its document ``text`` encoded already)."""
    db.execute(
        f"INSERT INTO revisions ({REVISION_COLUMNS}, changes)"  # noqa: S608 (a constant)
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            number,
            created_at.isoformat(),
            author,
            message,
            text,
            encode_diff(diff),
            rolled_back_from,
            len(diff),
        ),
    )


def _read_forward(number: int, document: dict[str, Any]) -> dict[str, Any]:
    """A stored document in the current schema version (model/schema.py): a revision written
    by an older Bascule is read forward, never rewritten; one written by a newer Bascule
    cannot be read."""
    try:
        return migrate(document)
    except InvalidConfiguration as exc:
        reasons = "; ".join(f"{e.path}: {e.message}" for e in exc.errors)
        raise StoreError(f"revision {number} cannot be read: {reasons}") from exc


def parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise StoreError(f"a stored time is unreadable: {text!r}") from exc
