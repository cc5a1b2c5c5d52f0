"""Revisions written by another version of Bascule (model/schema.py): older ones are read
forward, never rewritten; a newer one is refused, and the daemon will not start on it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bascule.daemon.adoption import check_stored_revisions
from bascule.errors import BasculeError, StoreError
from bascule.store.revisions import RevisionStore

V1_IPV6 = {
    "virtual_services": [
        {
            "name": "web",
            "address": "2001:2::100",
            "port": 80,
            "persistence": {"method": "source_ip", "timeout": 600, "source_mask": 32},
            "real_servers": [{"address": "2001:2::11", "port": 80}],
        }
    ]
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RevisionStore]:
    with RevisionStore(tmp_path / "bascule.db") as opened:
        yield opened


def stored_text(store: RevisionStore, number: int) -> Any:
    with sqlite3.connect(store.path) as db:
        row = db.execute("SELECT document FROM revisions WHERE number = ?", (number,)).fetchone()
    return json.loads(row[0])


def test_an_older_revision_is_read_forward_and_never_rewritten(store: RevisionStore) -> None:
    store.commit(V1_IPV6, base=None, author="bascule 0.1", message="before schema 2")
    revision = store.get(1)
    persistence = revision.document["virtual_services"][0]["persistence"]
    assert revision.document["schema_version"] == 2
    assert persistence == {"method": "source_ip", "timeout": 600, "source_mask6": 128}
    assert stored_text(store, 1) == V1_IPV6  # the history is never changed
    assert store.schema_versions() == {1: 1}
    # a change on top diffs against the read-forward document: only what the person changed
    changed = json.loads(json.dumps(revision.document))
    changed["virtual_services"][0]["port"] = 81
    second = store.commit(changed, base=1, author="bascule 0.2", message="port")
    assert [(item.path, item.old, item.new) for item in second.diff] == [
        ("virtual_services[web].port", 80, 81)
    ]
    assert store.schema_versions() == {1: 1, 2: 1}
    check_stored_revisions(store)  # the daemon starts on it


def test_a_newer_revision_stops_the_start_with_both_versions(store: RevisionStore) -> None:
    store.commit({"schema_version": 3, "virtual_services": []}, base=None, author="a", message="")
    with pytest.raises(StoreError) as unreadable:
        store.get(1)
    assert str(unreadable.value) == (
        "revision 1 cannot be read: schema_version: 3 is newer than this Bascule reads "
        "(up to 2): the document was written by a newer Bascule; upgrade this one"
    )
    with pytest.raises(BasculeError) as refused:
        check_stored_revisions(store)
    assert str(refused.value).startswith("cannot start: revision 1 cannot be read: ")
    assert "restore a backup made by this version, or run the newer Bascule" in str(refused.value)


def test_an_empty_store_starts(store: RevisionStore) -> None:
    check_stored_revisions(store)
    assert store.schema_versions() == {}
