"""``RevisionStore.commit_operation``: a revision whose diff the caller computed, stored as
``commit`` would store it (the first one of an empty store included)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bascule.errors import Conflict
from bascule.model.schema import FIELD, SCHEMA_VERSION
from bascule.reconcile.diff import diff_documents
from bascule.store.database import DATABASE_FILENAME
from bascule.store.revisions import RevisionStore


def document(*weights: int) -> dict[str, Any]:
    return {
        FIELD: SCHEMA_VERSION,
        "virtual_services": [
            {
                "name": f"web{i}",
                "address": "198.18.0.10",
                "port": 8000 + i,
                "real_servers": [{"address": "198.18.0.4", "port": 80, "weight": weight}],
            }
            for i, weight in enumerate(weights)
        ],
    }


def stored_rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT number, document, diff, changes FROM revisions ORDER BY number"
        ).fetchall()
    db.close()
    return rows


def test_the_first_revision_is_stored_as_commit_stores_it(tmp_path: Path) -> None:
    by_commit, by_operation = tmp_path / "a" / DATABASE_FILENAME, tmp_path / "b" / DATABASE_FILENAME
    by_commit.parent.mkdir()
    by_operation.parent.mkdir()
    first = document(1, 2)
    with RevisionStore(by_commit) as store:
        store.commit(first, base=None, author="t", message="m")
    with RevisionStore(by_operation) as store:
        revision = store.commit_operation(
            first, diff_documents(None, first), base=None, author="t", message="m"
        )
        assert revision.number == 1
        assert store.head() is revision  # cached: not decoded again
    assert stored_rows(by_operation) == stored_rows(by_commit)
    with RevisionStore(by_operation) as store:
        head = store.head()
        assert head is not None
        assert head.document == first
        assert head.diff == diff_documents(None, first)


def test_a_later_revision_round_trips(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_FILENAME
    first, second = document(1, 2), document(1, 3)
    with RevisionStore(path) as store:
        store.commit_operation(
            first, diff_documents(None, first), base=None, author="t", message="m"
        )
        diff = diff_documents(first, second)
        store.commit_operation(second, diff, base=1, author="t", message="weight")
        assert store.rollback(1, base=2, author="t").document == first
    with RevisionStore(path) as store:
        assert store.get(2).document == second
        assert store.get(2).diff == diff
        assert store.get(3).document == first
        assert store.get(3).rolled_back_from == 1


def test_a_stale_base_conflicts(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_FILENAME
    first = document(1)
    with RevisionStore(path) as store:
        store.commit(first, base=None, author="t", message="m")
        with pytest.raises(Conflict):
            store.commit_operation(
                first, diff_documents(None, first), base=None, author="t", message="m"
            )
        with pytest.raises(ValueError, match="needs a change"):
            store.commit_operation(first, (), base=1, author="t", message="m")
        assert store.head_number() == 1
