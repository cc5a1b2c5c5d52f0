"""The revision store on a real SQLite file in a temporary data dir."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import bascule
from bascule.errors import Conflict, NotFound, StoreError
from bascule.reconcile.diff import DiffItem, DiffOp, apply_diff
from bascule.store.database import (
    DATABASE_FILENAME,
    MIGRATIONS,
    open_database,
    schema_version,
    transaction,
)
from bascule.store.revisions import AppliedState, RevisionStore, RevisionSummary

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def ticking_clock() -> Callable[[], datetime]:
    """T0, T0 + 1 s, T0 + 2 s... one tick per call."""
    ticks = iter(range(1_000_000))
    return lambda: T0 + timedelta(seconds=next(ticks))


def document(port: int = 80, *weights: int) -> dict[str, Any]:
    servers = [
        {"address": f"198.18.0.{4 + i}", "port": 80, "weight": w} for i, w in enumerate(weights)
    ]
    return {
        "schema_version": 2,  # as Bascule writes them (model/schema.py)
        "virtual_services": [
            {"name": "web", "address": "198.18.0.100", "port": port, "real_servers": servers}
        ],
    }


def unversioned(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key != "schema_version"}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / DATABASE_FILENAME


@pytest.fixture
def store(path: Path) -> Iterator[RevisionStore]:
    with RevisionStore(path, clock=ticking_clock()) as opened:
        yield opened


def test_an_empty_store(store: RevisionStore) -> None:
    assert store.head() is None
    assert store.head_number() is None
    assert store.history() == []
    assert store.applied() is None
    with pytest.raises(NotFound):
        store.get(1)


def test_commit_head_get(store: RevisionStore) -> None:
    first = store.commit(document(80, 1000), base=None, author="alice", message="create web")
    assert first.number == 1
    assert first.created_at == T0
    assert first.author == "alice"
    assert first.message == "create web"
    assert first.document == document(80, 1000)
    assert first.diff == (
        DiffItem(
            op=DiffOp.ADD,
            path="virtual_services",
            old=None,
            new=document(80, 1000)["virtual_services"],
        ),
    )
    assert first.rolled_back_from is None
    assert store.head() == first
    assert store.get(1) == first

    second = store.commit(document(8080, 1000), base=1, author="bob", message="move web")
    assert second.number == 2
    assert second.created_at == T0 + timedelta(seconds=1)
    assert second.diff == (
        DiffItem(op=DiffOp.CHANGE, path="virtual_services[web].port", old=80, new=8080),
    )
    assert store.head_number() == 2
    assert store.get(2) == second
    assert store.get(1) == first


def test_the_head_is_decoded_once_and_follows_every_writer(path: Path) -> None:
    """The daemon's loops read the head every second: it is kept while its row is the same,
    and a commit, by this store or another on the same file, is seen at once."""
    with (
        RevisionStore(path, clock=ticking_clock()) as store,
        RevisionStore(path, clock=ticking_clock()) as other,
    ):
        first = store.commit(document(80, 1000), base=None, author="a", message="m")
        assert store.head() is store.head()
        second = other.commit(document(8080, 1000), base=1, author="b", message="m")
        assert store.head() == second != first
        assert store.head() is store.head()


def test_the_store_persists(path: Path) -> None:
    with RevisionStore(path, clock=ticking_clock()) as store:
        committed = store.commit(document(), base=None, author="a", message="m")
    with RevisionStore(path, clock=ticking_clock()) as store:
        assert store.head() == committed


def test_an_unchanged_document_commits_nothing(store: RevisionStore) -> None:
    first = store.commit(document(), base=None, author="a", message="m")
    again = store.commit(document(), base=1, author="b", message="nothing")
    assert again == first
    assert store.head_number() == 1


def test_a_first_empty_document_is_a_revision(store: RevisionStore) -> None:
    first = store.commit({}, base=None, author="a", message="empty")
    assert (first.number, first.diff) == (1, ())


def test_a_stale_base_conflicts_and_loses_nothing(path: Path) -> None:
    writer_a = RevisionStore(path, clock=ticking_clock())
    writer_b = RevisionStore(path, clock=ticking_clock())
    try:
        for port in (81, 82, 83):
            writer_a.commit(document(port), base=writer_a.head_number(), author="a", message="m")
        assert writer_b.head_number() == 3

        won = writer_a.commit(document(90), base=3, author="a", message="a's change")
        with pytest.raises(Conflict) as caught:
            writer_b.commit(document(91), base=3, author="b", message="b's change")
        assert (caught.value.base, caught.value.current) == (3, 4)

        assert writer_b.head() == won
        assert [s.number for s in writer_b.history()] == [4, 3, 2, 1]
        assert writer_b.get(4).document == document(90)
    finally:
        writer_a.close()
        writer_b.close()


@pytest.mark.parametrize("base", [None, 0, 2])
def test_conflict_on_any_wrong_base(store: RevisionStore, base: int | None) -> None:
    store.commit(document(), base=None, author="a", message="m")
    with pytest.raises(Conflict) as caught:
        store.commit(document(81), base=base, author="a", message="m")
    assert caught.value.current == 1


def test_a_base_on_an_empty_store_conflicts(store: RevisionStore) -> None:
    with pytest.raises(Conflict) as caught:
        store.commit(document(), base=1, author="a", message="m")
    assert (caught.value.base, caught.value.current) == (1, None)


def test_concurrent_threads_never_lose_a_write(store: RevisionStore) -> None:
    store.commit({"counter": 0}, base=None, author="init", message="m")

    def bump(worker: int) -> None:
        for _ in range(20):
            while True:
                head = store.head()
                assert head is not None
                counter = head.document["counter"]
                try:
                    store.commit(
                        {"counter": counter + 1}, base=head.number, author=f"w{worker}", message=""
                    )
                    break
                except Conflict:
                    continue

    threads = [threading.Thread(target=bump, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    head = store.head()
    assert head is not None
    assert head.document["counter"] == 80
    assert head.number == 81


def test_history_is_newest_first_and_pages(store: RevisionStore) -> None:
    for port in range(1, 8):
        store.commit(document(port), base=store.head_number(), author="a", message=f"p{port}")
    first_page = store.history(limit=3)
    assert first_page[0] == RevisionSummary(
        number=7,
        created_at=T0 + timedelta(seconds=6),
        author="a",
        message="p7",
        changes=1,
        rolled_back_from=None,
    )
    assert [s.number for s in first_page] == [7, 6, 5]
    assert [s.number for s in store.history(limit=3, before=5)] == [4, 3, 2]
    assert [s.number for s in store.history(limit=3, before=2)] == [1]
    assert store.history(limit=3, before=1) == []
    assert len(store.history()) == 7
    with pytest.raises(ValueError):
        store.history(limit=0)


def test_diff_between_revisions(store: RevisionStore) -> None:
    store.commit(document(80, 1000), base=None, author="a", message="m")
    store.commit(document(80, 1000, 1000), base=1, author="a", message="m")
    store.commit(document(8080, 500, 1000), base=2, author="a", message="m")
    assert store.diff(1, 3) == (
        DiffItem(op=DiffOp.CHANGE, path="virtual_services[web].port", old=80, new=8080),
        DiffItem(
            op=DiffOp.CHANGE,
            path="virtual_services[web].real_servers[198.18.0.4:80].weight",
            old=1000,
            new=500,
        ),
        DiffItem(
            op=DiffOp.ADD,
            path="virtual_services[web].real_servers[198.18.0.5:80]",
            old=None,
            new={"address": "198.18.0.5", "port": 80, "weight": 1000},
        ),
    )
    assert store.diff(3, 3) == ()
    assert store.diff(3, 1)[0] == DiffItem(
        op=DiffOp.CHANGE, path="virtual_services[web].port", old=8080, new=80
    )
    with pytest.raises(NotFound):
        store.diff(1, 9)


def test_rollback_is_a_new_revision(store: RevisionStore) -> None:
    store.commit(document(80), base=None, author="a", message="m")
    store.commit(document(81), base=1, author="a", message="m")
    store.commit(document(82), base=2, author="a", message="m")
    rolled = store.rollback(1, base=3, author="carol")
    assert rolled.number == 4
    assert rolled.document == document(80)
    assert rolled.rolled_back_from == 1
    assert rolled.message == "roll back to revision 1"
    assert rolled.author == "carol"
    assert rolled.diff == (
        DiffItem(op=DiffOp.CHANGE, path="virtual_services[web].port", old=82, new=80),
    )
    assert store.history(limit=1)[0].rolled_back_from == 1
    assert store.get(3).document == document(82)


def test_rollback_rules(store: RevisionStore) -> None:
    store.commit(document(80), base=None, author="a", message="m")
    store.commit(document(81), base=1, author="a", message="m")
    with pytest.raises(Conflict):
        store.rollback(1, base=1, author="a")
    with pytest.raises(NotFound):
        store.rollback(7, base=2, author="a")
    head = store.head()
    assert store.rollback(2, base=2, author="a", message="no-op") == head


def test_applied_state(store: RevisionStore) -> None:
    store.commit(document(80), base=None, author="a", message="m")
    store.commit(document(81), base=1, author="a", message="m")
    store.record_applied(1, ok=True, message="applied")
    assert store.applied() == AppliedState(
        last_good=1,
        last_attempt=1,
        ok=True,
        message="applied",
        attempted_at=T0 + timedelta(seconds=2),
    )
    store.record_applied(2, ok=False, message="haproxy refused it")
    state = store.applied()
    assert state is not None
    assert (state.last_good, state.last_attempt, state.ok, state.message) == (
        1,
        2,
        False,
        "haproxy refused it",
    )
    with pytest.raises(NotFound):
        store.record_applied(9, ok=True, message="")


RECORD_THEN_DIE = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from bascule.store.revisions import RevisionStore

    store = RevisionStore(Path(sys.argv[1]))
    store.commit({"virtual_services": []}, base=None, author="a", message="m")
    store.record_applied(1, ok=True, message="applied")
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.timeout(60)
def test_the_applied_state_outlives_a_killed_daemon(path: Path) -> None:
    # written without a sync of its own (record_applied), it is still the file's once the
    # process that wrote it dies: only a power cut may take it back
    source = str(Path(bascule.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": source}
    child = subprocess.run([sys.executable, "-c", RECORD_THEN_DIE, str(path)], env=env, timeout=30)
    assert child.returncode == -signal.SIGKILL
    with RevisionStore(path) as store:
        state = store.applied()
        assert state is not None
        assert (state.last_good, state.last_attempt, state.ok, state.message) == (
            1,
            1,
            True,
            "applied",
        )


@pytest.mark.parametrize("fails", [False, True])
def test_a_transaction_without_a_sync_leaves_the_others_synced(path: Path, fails: bool) -> None:
    connection = open_database(path)
    try:
        full, normal = 2, 1  # sqlite.org/pragma.html#pragma_synchronous
        with (
            contextlib.suppress(sqlite3.OperationalError),
            transaction(connection, durable=False) as db,
        ):
            assert db.execute("PRAGMA synchronous").fetchone() == (normal,)
            db.execute("SELECT * FROM no_such_table" if fails else "SELECT 1")
        assert connection.execute("PRAGMA synchronous").fetchone() == (full,)
        assert not connection.in_transaction
    finally:
        connection.close()


def test_a_first_failed_apply_has_no_last_good(store: RevisionStore) -> None:
    store.commit(document(80), base=None, author="a", message="m")
    store.record_applied(1, ok=False, message="nft refused it")
    state = store.applied()
    assert state is not None
    assert (state.last_good, state.last_attempt, state.ok) == (None, 1, False)


def test_file_mode_is_0600(path: Path) -> None:
    old_umask = os.umask(0)
    try:
        with RevisionStore(path) as store:
            store.commit(document(), base=None, author="a", message="m")
            for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                if name.exists():
                    assert stat.S_IMODE(name.stat().st_mode) == 0o600, name
    finally:
        os.umask(old_umask)


def test_an_existing_file_is_made_0600(path: Path) -> None:
    path.touch(mode=0o644)
    path.chmod(0o644)
    RevisionStore(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_schema_and_pragmas(path: Path) -> None:
    RevisionStore(path).close()
    connection = sqlite3.connect(path)
    try:
        assert schema_version(connection) == len(MIGRATIONS)
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        connection.close()


def test_a_newer_schema_is_refused(path: Path) -> None:
    RevisionStore(path).close()
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    connection.close()
    with pytest.raises(StoreError, match="newer"):
        RevisionStore(path)


def test_sqlite_errors_become_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        RevisionStore(tmp_path / "missing-dir" / DATABASE_FILENAME)
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError) as caught:
        RevisionStore(tmp_path / "junk.db")
    assert isinstance(caught.value.__cause__, sqlite3.Error)


def test_a_closed_store_refuses(path: Path) -> None:
    store = RevisionStore(path)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.head()


def test_a_naive_clock_is_refused(path: Path) -> None:
    with RevisionStore(path, clock=lambda: datetime(2024, 1, 1)) as store:
        with pytest.raises(StoreError, match="time zone"):
            store.commit(document(), base=None, author="a", message="m")
        assert store.head() is None


def test_a_non_json_document_is_refused(store: RevisionStore) -> None:
    with pytest.raises(StoreError):
        store.commit({"a": {1, 2}}, base=None, author="a", message="m")
    assert store.head() is None


# -- durability ----------------------------------------------------------------------------

COMMIT_FOREVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from bascule.store.revisions import RevisionStore

    store = RevisionStore(Path(sys.argv[1]))
    n = 0
    while True:
        n += 1
        servers = [
            {"address": f"198.18.{i // 250}.{i % 250 + 1}", "port": 80, "weight": n % 65535 + 1}
            for i in range(n % 40)
        ]
        document = {"virtual_services": [{"name": "web", "port": 80, "real_servers": servers}]}
        store.commit(document, base=store.head_number(), author="loop", message=str(n))
    """
)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kill_after", [0.3, 0.7, 1.1])
def test_kill_9_mid_commit_leaves_whole_revisions(path: Path, kill_after: float) -> None:
    source = str(Path(bascule.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": source}
    child = subprocess.Popen([sys.executable, "-c", COMMIT_FOREVER, str(path)], env=env)
    try:
        deadline = time.monotonic() + 30
        while not path.exists() or _count_revisions(path) < 5:
            assert child.poll() is None, "the committing child died on its own"
            assert time.monotonic() < deadline, "the child never committed"
            time.sleep(0.02)
        time.sleep(kill_after)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL

    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        connection.close()
    with RevisionStore(path) as store:
        head = store.head_number()
        assert head is not None
        summaries = store.history(limit=head + 1)
        assert [s.number for s in summaries] == list(range(head, 0, -1))
        previous: dict[str, Any] | None = None
        for number in range(1, head + 1):
            revision = store.get(number)
            assert revision.message == str(number)
            # read forward: each carries the schema version, which no diff names
            assert unversioned(apply_diff(previous, revision.diff)) == unversioned(
                revision.document
            )
            previous = revision.document
        # and the store still takes commits
        store.commit({"after": "kill"}, base=head, author="t", message="after")


def _count_revisions(path: Path) -> int:
    try:
        connection = sqlite3.connect(path, timeout=5)
        try:
            count: int = connection.execute("SELECT COUNT(*) FROM revisions").fetchone()[0]
            return count
        finally:
            connection.close()
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0
