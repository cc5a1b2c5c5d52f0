"""Numbered revisions of the configuration document, and which one is running.

Sits after validation in the flow of a change: the service layer commits a validated document
as a new revision (with its author, message and the diff from the previous head), the
reconciler reads the head, and the daemon records here what it applied. A revision is never
changed; a rollback is a new revision carrying an old document. The oldest revisions are
deleted by the retention (``prune``, daemon/retention.py), never those the daemon runs on.

``RevisionStore`` is the store's transactions; the values it hands out and the rows they are
made of are ``revision_rows.py``'s (exported here too: what the store's callers import), and
a revision's text is ``texts.py``'s.

Writes are optimistic: every write names the revision it was based on (``base``) and fails with
``Conflict`` when another write got there first, so no edit silently overwrites another.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bascule.errors import Conflict, DivergedHistory, NotFound, StoreError
from bascule.model.schema import FIELD as SCHEMA_FIELD
from bascule.reconcile.diff import DiffItem, diff_documents
from bascule.store.audit import AuditRecord, insert_entry
from bascule.store.checkpoints import LOG_BOUND_PAGES, LOG_FILE_LIMIT, Checkpointer
from bascule.store.database import Database, transaction
from bascule.store.revision_rows import (
    REVISION_COLUMNS,
    AppliedState,
    Revision,
    RevisionSummary,
    check_base,
    digest_of,
    head_number,
    insert_replica,
    insert_revision,
    must_exist,
    parse_time,
    read_head,
    read_revision,
    revision_from_row,
    stored_document,
)
from bascule.store.texts import ServiceTexts, decode_document, encode

__all__ = [
    "AppliedState",
    "Clock",
    "Revision",
    "RevisionStore",
    "RevisionSummary",
    "digest_of",
    "utc_now",
]

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock: the current time, in UTC."""
    return datetime.now(UTC)


class RevisionStore(Database):
    """The revision history in a SQLite file (normally ``<data dir>/bascule.db``).

    One connection, shared by threads (the daemon calls from its event loop and through
    ``asyncio.to_thread``): a lock serializes every use of it, reads included, because a
    connection has one transaction and a read must not land inside another thread's write.
    Several stores (processes) on one file are safe too: each write is a ``BEGIN IMMEDIATE``
    transaction, and SQLite makes it all-or-nothing even if the process is killed mid-way.
    """

    def __init__(self, path: Path, *, clock: Clock = utc_now) -> None:
        super().__init__(path)  # the audit log of its commits lives in the same file
        self._clock = clock
        # The head revision as last read: the daemon's loops read the head every second or
        # so, and decoding a 10,000-server document each time was most of an idle daemon's
        # CPU (issue 15). A revision never changes: the cache holds while the head row is
        # the same (its number and time: a restored backup may reuse a number).
        self._head: tuple[tuple[Any, ...], Revision] | None = None
        self._texts = ServiceTexts()
        # A revision's log pages are copied into the file beside the commits (checkpoints.py).
        with self._use("set up the store") as db:
            db.execute(f"PRAGMA wal_autocheckpoint = {LOG_BOUND_PAGES:d}")
            db.execute(f"PRAGMA journal_size_limit = {LOG_FILE_LIMIT:d}")
        self._checkpoints = Checkpointer(path)

    def close(self) -> None:
        self._checkpoints.close()
        super().close()

    @contextmanager
    def _write(self, action: str, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """The connection in a write transaction; once it is committed, a checkpoint soon
        (``durable=False``: see ``transaction``; copied with the next durable commit's)."""
        with self._use(action) as db, transaction(db, durable=durable):
            yield db
        if durable:
            self._checkpoints.committed()

    # -- reading ----------------------------------------------------------------------------

    def head(self) -> Revision | None:
        """The current revision, ``None`` while the store is empty. Its document is shared
        with every caller: read it, copy it to change it."""
        with self._use("read the head revision") as db:
            row = db.execute(
                "SELECT number, created_at FROM revisions ORDER BY number DESC LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            key = tuple(row)
            if self._head is not None and self._head[0] == key:
                return self._head[1]
            head = read_head(db)
            self._head = None if head is None else (key, head)
            return head

    def head_number(self) -> int | None:
        """The current revision's number (they start at 1), ``None`` while empty."""
        with self._use("read the head revision") as db:
            return head_number(db)

    def get(self, number: int) -> Revision:
        """Revision ``number``; ``NotFound`` if there is none."""
        with self._use(f"read revision {number}") as db:
            return read_revision(db, number)

    def history(self, *, limit: int = 50, before: int | None = None) -> list[RevisionSummary]:
        """Up to ``limit`` revisions, newest first, all older than ``before`` when given.

        To page, pass the last number of a page as ``before`` of the next.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        query = "SELECT number, created_at, author, message, changes, rolled_back_from"
        query += " FROM revisions"
        parameters: tuple[int, ...] = (limit,)
        if before is not None:
            query += " WHERE number < ?"
            parameters = (before, limit)
        query += " ORDER BY number DESC LIMIT ?"
        with self._use("read the history") as db:
            rows = db.execute(query, parameters).fetchall()
        return [
            RevisionSummary(
                number=number,
                created_at=parse_time(created_at),
                author=author,
                message=message,
                changes=changes,
                rolled_back_from=rolled_back_from,
            )
            for number, created_at, author, message, changes, rolled_back_from in rows
        ]

    def diff(self, a: int, b: int) -> tuple[DiffItem, ...]:
        """The changes from revision ``a``'s document to revision ``b``'s (either order)."""
        with self._use(f"compare revisions {a} and {b}") as db:
            old, new = read_revision(db, a), read_revision(db, b)
        return diff_documents(old.document, new.document)

    # -- writing ----------------------------------------------------------------------------

    def commit(
        self,
        document: Mapping[str, Any],
        *,
        base: int | None,
        author: str,
        message: str,
        rolled_back_from: int | None = None,
        audit: AuditRecord | None = None,
    ) -> Revision:
        """Store ``document`` as the next revision, if ``base`` is still the head.

        ``base`` is the revision the change was made on (``None`` on an empty store);
        ``Conflict`` carries the current head when it is not. A document with no change from
        the head commits nothing: the head is returned unchanged, so the history holds no
        empty revisions (the first revision is committed even if its document is empty). The
        order of virtual services and real servers is not a change (see ``reconcile.diff``).

        ``audit``, the audit entry of the change, is written in the same transaction with the
        new revision's number: a crash never leaves a revision without its entry, or an entry
        without its revision. Nothing is written for a commit of no change.
        """
        text = encode(document)
        with self._write("commit a revision") as db:
            head = head_number(db)
            revision = self._commit(db, text, base, author, message, rolled_back_from)
            if audit is not None and revision.number != head:
                insert_entry(db, replace(audit, revision=revision.number))
            return revision

    def commit_operation(
        self,
        document: dict[str, Any],
        diff: tuple[DiffItem, ...],
        *,
        base: int | None,
        author: str,
        message: str,
        audit: AuditRecord | None = None,
        rolled_back_from: int | None = None,
    ) -> Revision:
        """``commit`` of a document whose ``diff`` from the head ``base`` the caller computed
        (a runtime operation, reconcile/operations.py; the change pipeline, which compared
        only the services an edit touched): the whole document is neither decoded nor
        compared again, and the services stored unchanged since the last commit are copied
        from its stored text, not encoded again (``ServiceTexts``). ``document`` becomes the
        cached head's: nobody may change it in place. ``diff`` must not be empty. ``base``
        ``None``: the store is empty and ``diff`` is the document's from nothing
        (``diff_documents(None, document)``), as the first apply of 10,000 servers gives it:
        ~0.8 s of decoding and comparing again saved (issue 15)."""
        if not diff:
            raise ValueError("an operation's revision needs a change")
        prepared = self._texts.prepare(document)
        with self._write("commit a revision") as db:
            head = head_number(db)
            if base != head:
                raise Conflict(base=base, current=head)
            if rolled_back_from is not None:
                must_exist(db, rolled_back_from)
            number = 1 if base is None else base + 1
            created_at = self._now()
            text = self._texts.text(prepared, functools.partial(stored_document, db))
            insert_revision(db, number, created_at, author, message, text, diff, rolled_back_from)
            del text  # megabytes at scale: not kept while the transaction commits
            self._texts.stored(prepared, (number, created_at.isoformat()))
            if audit is not None:
                insert_entry(db, replace(audit, revision=number))
            revision = Revision(
                number=number,
                created_at=created_at,
                author=author,
                message=message,
                document=document,
                diff=diff,
                rolled_back_from=rolled_back_from,
            )
            self._head = ((number, created_at.isoformat()), revision)
            return revision

    def rollback(
        self, to: int, *, base: int | None, author: str, message: str | None = None
    ) -> Revision:
        """Commit revision ``to``'s document again, as a new revision; rules as ``commit``.

        Returns the head unchanged when its document already is revision ``to``'s.
        """
        with self._write(f"roll back to revision {to}") as db:
            check_base(db, base)
            target = read_revision(db, to)
            text = encode(target.document)
            message = f"roll back to revision {to}" if message is None else message
            return self._commit(db, text, base, author, message, to)

    def record_applied(self, number: int, *, ok: bool, message: str) -> None:
        """Record that the daemon tried to apply revision ``number`` and how it went.

        Not synced to the disk (``transaction``'s ``durable=False``): it describes what the
        engines run, and a power cut stops them as well. A daemon killed keeps it; after a
        power cut the record may be an older one, and the daemon's start applies the head
        again whatever it says (the revision itself is durable before a change answers).
        The sync cost every change 2-8 ms on the event loop (issue 15)."""
        with self._write(f"record the application of revision {number}", durable=False) as db:
            must_exist(db, number)  # NotFound rather than a foreign-key error
            row = db.execute("SELECT last_good FROM applied_state WHERE singleton = 1").fetchone()
            last_good = number if ok else (None if row is None else row[0])
            db.execute(
                "INSERT OR REPLACE INTO applied_state"
                " (singleton, last_good, last_attempt, ok, message, attempted_at)"
                " VALUES (1, ?, ?, ?, ?, ?)",
                (last_good, number, int(ok), message, self._now().isoformat()),
            )

    def applied(self) -> AppliedState | None:
        """The last application recorded, ``None`` before the first."""
        with self._use("read the applied state") as db:
            row = db.execute(
                "SELECT last_good, last_attempt, ok, message, attempted_at"
                " FROM applied_state WHERE singleton = 1"
            ).fetchone()
        if row is None:
            return None
        last_good, last_attempt, ok, message, attempted_at = row
        return AppliedState(
            last_good=last_good,
            last_attempt=last_attempt,
            ok=bool(ok),
            message=message,
            attempted_at=parse_time(attempted_at),
        )

    def schema_versions(self) -> dict[int, int]:
        """How many revisions each document schema version wrote, as stored (before they are
        read forward): what a start after an upgrade reports."""
        query = (
            "SELECT COALESCE(json_extract(document, ?), 1), COUNT(*) FROM revisions"
            " GROUP BY 1 ORDER BY 1"
        )
        with self._use("count the revisions by schema version") as db:
            rows = db.execute(query, (f"$.{SCHEMA_FIELD}",)).fetchall()
        return {int(version): count for version, count in rows}

    def prune(self, *, keep: int, max_bytes: int) -> list[int]:
        """Delete the oldest revisions beyond the newest ``keep``, or beyond ``max_bytes`` of
        documents and diffs; the numbers deleted (daemon/retention.py).

        Never deleted: the head, the last good and the last attempted revisions (what runs and
        what the daemon would converge on), and any revision a kept one was rolled back from
        (so a rollback's origin always reads)."""
        with self._write("prune the history") as db:
            rows = db.execute(
                "SELECT number, LENGTH(CAST(document AS BLOB)) + LENGTH(CAST(diff AS BLOB))"
                " + LENGTH(CAST(message AS BLOB)) + 64, rolled_back_from"
                " FROM revisions ORDER BY number DESC"
            ).fetchall()
            applied = db.execute(
                "SELECT last_good, last_attempt FROM applied_state WHERE singleton = 1"
            ).fetchone()
            protected = {number for number in (applied or ()) if number is not None}
            if rows:
                protected.add(rows[0][0])  # the head
            kept: set[int] = set()
            total = 0
            full = False
            for position, (number, size, _) in enumerate(rows):
                full = full or position >= keep or total + size > max_bytes
                if number in protected or not full:
                    kept.add(number)
                    total += size
            origins = {number: origin for number, _, origin in rows}
            pending = list(kept)
            while pending:  # what a kept revision was rolled back from, transitively
                origin = origins.get(pending.pop())
                if origin is not None and origin in origins and origin not in kept:
                    kept.add(origin)
                    pending.append(origin)
            # Newest first: a revision is rolled back from an older one, so whatever refers to
            # the one being deleted is gone already (or kept, and then so is its origin).
            doomed = sorted(set(origins) - kept, reverse=True)
            db.executemany(
                "DELETE FROM revisions WHERE number = ?", [(number,) for number in doomed]
            )
        return sorted(doomed)

    # -- the HA pair: the standby holds the active's revisions, same numbers ----------------

    def since(self, after: int | None, *, limit: int) -> list[Revision]:
        """Up to ``limit`` revisions newer than ``after`` (all when ``None``), oldest first:
        what a peer that holds ``after`` lacks (daemon/pair.py)."""
        with self._use("read revisions for the peer") as db:
            rows = db.execute(
                f"SELECT {REVISION_COLUMNS} FROM revisions"  # noqa: S608 (a constant)
                " WHERE number > ? ORDER BY number LIMIT ?",
                (after or 0, limit),
            ).fetchall()
        return [revision_from_row(row) for row in rows]

    def digest(self, number: int | None) -> str | None:
        """Revision ``number``'s digest (``digest_of``), ``None`` for ``None`` or a missing one."""
        if number is None:
            return None
        try:
            return digest_of(self.get(number))
        except NotFound:
            return None

    def replicate(self, revisions: Sequence[Revision]) -> int | None:
        """Store revisions committed on the HA pair's active, under their own numbers, times,
        authors and diffs; the new head. All or nothing.

        One this store already holds must be the same revision (``digest_of``); one newer
        than the head is appended. ``DivergedHistory`` when a number holds another revision
        here (both nodes committed during a partition): nothing is overwritten.
        """
        with self._write("store the active's revisions") as db:
            for revision in sorted(revisions, key=lambda r: r.number):
                try:
                    mine = read_revision(db, revision.number)
                except NotFound:
                    mine = None
                if mine is not None:
                    if digest_of(mine) != digest_of(revision):
                        raise DivergedHistory(
                            number=revision.number,
                            current=head_number(db),
                            detail=f"here by {mine.author} at {mine.created_at.isoformat()}, "
                            f"on the peer by {revision.author} at "
                            f"{revision.created_at.isoformat()}",
                        )
                    continue
                head = head_number(db)
                if head is not None and revision.number < head:
                    raise DivergedHistory(
                        number=revision.number,
                        current=head,
                        detail="this node has newer revisions than the one it is sent",
                    )
                insert_replica(db, revision)
            return head_number(db)

    def replace_after(self, fork: int, revisions: Sequence[Revision]) -> list[Revision]:
        """Replace every revision newer than ``fork`` by ``revisions``, numbered from
        ``fork + 1`` on: the HA pair's kept history (``bascule ha resolve``, daemon/pair.py);
        the revisions replaced, oldest first (the caller archives them). All or nothing.

        The applied state forgets a replaced revision (its number now holds another
        document): a start before the next apply then applies in full."""
        wanted = sorted(revisions, key=lambda r: r.number)
        if [r.number for r in wanted] != list(range(fork + 1, fork + 1 + len(wanted))):
            raise StoreError(f"the kept history must follow revision {fork} without a gap")
        with self._write("replace the revisions of a diverged history") as db:
            rows = db.execute(
                f"SELECT {REVISION_COLUMNS} FROM revisions"  # noqa: S608 (a constant)
                " WHERE number > ? ORDER BY number",
                (fork,),
            ).fetchall()
            applied = db.execute(
                "SELECT last_good, last_attempt FROM applied_state WHERE singleton = 1"
            ).fetchone()
            if applied is not None and applied[1] > fork:
                last_good = applied[0] if applied[0] is not None and applied[0] <= fork else None
                if fork < 1:
                    db.execute("DELETE FROM applied_state")
                else:
                    db.execute(
                        "UPDATE applied_state SET last_good = ?, last_attempt = ?, ok = 0,"
                        " message = ? WHERE singleton = 1",
                        (last_good, fork, "replaced by the pair's kept history"),
                    )
            # newest first: a rollback refers to an older revision
            db.executemany(
                "DELETE FROM revisions WHERE number = ?", [(row[0],) for row in reversed(rows)]
            )
            for revision in wanted:
                insert_replica(db, revision)
            return [revision_from_row(row) for row in rows]

    # -- inside ----------------------------------------------------------------------------

    def _commit(
        self,
        db: sqlite3.Connection,
        text: str,
        base: int | None,
        author: str,
        message: str,
        rolled_back_from: int | None,
    ) -> Revision:
        head = check_base(db, base)
        document = decode_document(text)
        diff = diff_documents(None if head is None else head.document, document)
        if head is not None and not diff:
            return head
        if rolled_back_from is not None:
            must_exist(db, rolled_back_from)
        number = 1 if head is None else head.number + 1
        created_at = self._now()
        insert_revision(db, number, created_at, author, message, text, diff, rolled_back_from)
        return Revision(
            number=number,
            created_at=created_at,
            author=author,
            message=message,
            document=document,
            diff=diff,
            rolled_back_from=rolled_back_from,
        )

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise StoreError("the store's clock returned a time without a time zone")
        return now.astimezone(UTC)
