"""The write-ahead log checkpointed in a thread beside the commits (store/checkpoints.py)."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Any

from bascule.store.checkpoints import LOG_BOUND_PAGES, LOG_FILE_LIMIT, Checkpointer
from bascule.store.database import DATABASE_FILENAME
from bascule.store.revisions import RevisionStore


def document(weight: int) -> dict[str, Any]:
    return {
        "virtual_services": [
            {
                "name": "web",
                "address": "198.18.0.10",
                "port": 80,
                "real_servers": [{"address": "198.18.0.4", "port": 80, "weight": weight}],
            }
        ]
    }


def checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "bascule-checkpoint"]


def test_the_log_reaches_the_database_file_without_a_commit_doing_it(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_FILENAME
    with RevisionStore(path) as store:
        with store._use("read") as db:
            assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == LOG_BOUND_PAGES
            assert db.execute("PRAGMA journal_size_limit").fetchone()[0] == LOG_FILE_LIMIT
        head = None
        for weight in range(1, 6):
            head = store.commit(document(weight), base=head, author="t", message="m").number
        assert store._checkpoints.wait_idle(timeout=10)
        assert store._checkpoints.checkpoints >= 1
        # The database file alone (no -wal beside it) holds every committed revision.
        alone = tmp_path / "alone" / DATABASE_FILENAME
        alone.parent.mkdir()
        shutil.copyfile(path, alone)
    with sqlite3.connect(alone) as copy:
        rows = copy.execute("SELECT number FROM revisions ORDER BY number").fetchall()
    copy.close()
    assert [number for (number,) in rows] == [1, 2, 3, 4, 5]


def test_revisions_read_back_after_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_FILENAME
    with RevisionStore(path) as store:
        first = store.commit(document(1), base=None, author="t", message="m")
        store.commit(document(2), base=first.number, author="t", message="m")
    assert not checkpoint_threads()
    with RevisionStore(path) as store:
        head = store.head()
        assert head is not None
        assert head.number == 2
        assert head.document["virtual_services"][0]["real_servers"][0]["weight"] == 2


def test_close_stops_the_thread_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_FILENAME
    store = RevisionStore(path)
    assert not checkpoint_threads()  # started by the first commit only
    store.commit(document(1), base=None, author="t", message="m")
    assert checkpoint_threads()
    store.close()
    store.close()
    assert not checkpoint_threads()


def test_a_checkpointer_that_cannot_open_its_file_leaves_the_commits_alone(
    tmp_path: Path,
) -> None:
    checkpointer = Checkpointer(tmp_path / "missing" / DATABASE_FILENAME)
    checkpointer.committed()
    checkpointer.close()
    checkpointer.committed()  # after close: nothing
    assert checkpointer.checkpoints == 0
    assert not checkpoint_threads()
