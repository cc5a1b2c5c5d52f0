"""The write-ahead log copied into ``bascule.db`` beside the commits, not inside them.

Where it sits: the revision store (revisions.py) commits each revision whole, in WAL mode with
``synchronous=FULL`` (database.py): a commit appends the revision's pages to ``bascule.db-wal``
and syncs that file, which is what makes it durable. SQLite later copies the log's pages into
the database file (a checkpoint, sqlite.org/wal.html) and, by default, the connection whose
commit takes the log past 1,000 pages does it at once, within that commit. At 1,000 services
of 10 servers a revision is 2.3 MB (~570 pages): every second commit copied and synced the
two before it, ~10 ms more (issue 15: the drain and the enable of the bench, its second and
fourth writes, were the ones that paid).

``Checkpointer`` runs those checkpoints in a thread of its own, on a connection of its own,
after the commits it is told of: a ``PASSIVE`` checkpoint neither takes the write lock nor
waits for readers, so a commit meanwhile is not held, and what the checkpoint cannot copy
yet is copied by the next one. Durability is the commit's and does not change; the store's
connection keeps a commit-time checkpoint of its own only past ``LOG_BOUND_PAGES``, a bound
on the log's size should this thread fall behind.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("bascule.store")

#: The store's connection checkpoints within a commit only past this many pages of log
#: (4 KiB each: 64 MiB, some 28 revisions of 10,000 servers committed faster than the
#: thread copies them).
LOG_BOUND_PAGES = 16_384

#: The log file is cut back to this size when a commit starts it over (bytes): commits that
#: come faster than the checkpoints grow it meanwhile (a checkpoint under way when the next
#: commit starts keeps SQLite from starting the log over).
LOG_FILE_LIMIT = 16 * 1024 * 1024

#: Waiting for another connection's lock before a checkpoint gives up (seconds).
BUSY_TIMEOUT = 5.0


class Checkpointer:
    """Checkpoints ``path``'s write-ahead log in a thread, after each ``committed``.

    The thread and its connection start at the first ``committed`` and end at ``close``;
    requests that arrive while a checkpoint runs are served by one more checkpoint.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._wake = threading.Condition()
        self._pending = False
        self._closed = False
        self._busy = False
        self._thread: threading.Thread | None = None
        self.checkpoints = 0  # done so far (tests read it)

    def committed(self) -> None:
        """A transaction was committed: copy the log into the database file soon."""
        with self._wake:
            if self._closed:
                return
            self._pending = True
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="bascule-checkpoint", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def wait_idle(self, timeout: float) -> bool:
        """Whether every requested checkpoint has run within ``timeout`` seconds (tests)."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self) -> None:
        """Stop the thread (a checkpoint under way finishes first); idempotent."""
        with self._wake:
            self._closed = True
            thread, self._thread = self._thread, None
            self._wake.notify_all()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        try:
            connection = sqlite3.connect(
                self._path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            log.warning("cannot open the store to checkpoint it", extra={"error": str(exc)})
            return
        try:
            connection.execute("PRAGMA synchronous = FULL")  # the database file synced too
            while True:
                with self._wake:
                    self._wake.wait_for(lambda: self._pending or self._closed)
                    if self._closed:
                        return
                    self._pending = False
                    self._busy = True
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.checkpoints += 1
                except sqlite3.Error as exc:
                    # Nothing is lost: the log keeps the commits and the store's own
                    # connection checkpoints past LOG_BOUND_PAGES.
                    log.warning("checkpoint failed", extra={"error": str(exc)})
                finally:
                    with self._wake:
                        self._busy = False
                        self._wake.notify_all()
        finally:
            connection.close()
