"""What the HA pair's sync keeps in the store: the link (store/pair.py), the active's revisions
stored on the standby under their own numbers (``RevisionStore.replicate``), and the certificate
store copied whole (``CertificateStore.snapshot``/``replicate``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from make_certificates import NOW

from bascule.errors import DivergedHistory, InvalidCertificate, StoreError
from bascule.pki.selfsigned import self_signed
from bascule.store.certificates import CertificateStore
from bascule.store.pair import PairLink, PairStore
from bascule.store.revisions import RevisionStore, digest_of

LINK = PairLink(
    peer_url="https://198.18.0.3:8443",
    peer_cert="-----BEGIN CERTIFICATE-----\n...",
    peer_token="bsc_0123_secret",
    minted_token="4567",
    peers_cert="-----BEGIN CERTIFICATE-----\n...",
    joined_at=datetime(2026, 12, 5, 12, 0, tzinfo=UTC),
)


def document(weight: int) -> dict[str, object]:
    return {
        "virtual_services": [
            {
                "name": "web",
                "address": "198.18.0.100",
                "port": 80,
                "real_servers": [{"address": "198.18.0.11", "port": 80, "weight": weight}],
            }
        ]
    }


@pytest.fixture
def active(tmp_path: Path) -> Iterator[RevisionStore]:
    with RevisionStore(tmp_path / "active.db") as store:
        yield store


@pytest.fixture
def standby(tmp_path: Path) -> Iterator[RevisionStore]:
    with RevisionStore(tmp_path / "standby.db") as store:
        yield store


def commit(store: RevisionStore, *weights: int) -> None:
    for weight in weights:
        store.commit(document(weight), base=store.head_number(), author="admin", message="m")


def test_the_link_is_saved_read_and_forgotten(tmp_path: Path) -> None:
    with PairStore(tmp_path / "bascule.db") as store:
        assert store.link() is None
        store.save(LINK)
        assert store.link() == LINK
        store.save(dataclasses.replace(LINK, peer_token="bsc_0123_other"))
        assert store.link() == dataclasses.replace(LINK, peer_token="bsc_0123_other")
        assert store.forget() is not None
        assert store.link() is None and store.forget() is None


def test_the_standby_holds_the_same_revisions(
    active: RevisionStore, standby: RevisionStore
) -> None:
    commit(active, 1, 2, 3)
    assert standby.replicate(active.since(None, limit=2)) == 2
    assert standby.replicate(active.since(2, limit=10)) == 3
    for number in (1, 2, 3):
        mine, theirs = active.get(number), standby.get(number)
        assert mine == theirs and digest_of(mine) == digest_of(theirs)
    # sent twice (a retry after a lost answer): nothing changes
    assert standby.replicate(active.since(None, limit=10)) == 3
    assert [r.number for r in standby.history()] == [3, 2, 1]


def test_revisions_committed_on_both_sides_are_never_overwritten(
    active: RevisionStore, standby: RevisionStore
) -> None:
    commit(active, 1)
    standby.replicate(active.since(None, limit=10))
    commit(active, 2, 3)
    commit(standby, 20)  # the standby took a write during a partition
    before = standby.get(2)
    with pytest.raises(DivergedHistory, match="diverge at revision 2"):
        standby.replicate(active.since(1, limit=10))
    assert standby.head_number() == 2 and standby.get(2) == before  # all or nothing


def test_an_older_revision_than_the_head_is_refused(
    active: RevisionStore, standby: RevisionStore
) -> None:
    commit(standby, 1, 2)
    commit(active, 5)
    old = dataclasses.replace(active.get(1), number=1, created_at=NOW - timedelta(days=1))
    with pytest.raises(DivergedHistory):
        standby.replicate([old])


def test_the_certificate_store_is_copied_whole_keys_included(tmp_path: Path) -> None:
    with (
        CertificateStore(tmp_path / "a.db") as mine,
        CertificateStore(tmp_path / "b.db") as theirs,
    ):
        mine.add("shop", self_signed(dns=["shop.example.test"], now=NOW), at=NOW)
        theirs.add("gone", self_signed(dns=["gone.example.test"], now=NOW), at=NOW)
        assert mine.digest() != theirs.digest()
        snapshot = mine.snapshot()
        assert snapshot[0]["private_key"] and "PRIVATE KEY" in str(snapshot[0]["private_key"])
        assert theirs.replicate(snapshot, at=NOW) == ("gone", "shop")
        assert mine.digest() == theirs.digest()
        entry = theirs.entry("shop")
        assert entry is not None and entry.has_key
        assert theirs.replicate(snapshot, at=NOW) == ()  # nothing changed


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "bad name!", "kind": "certificate", "source": "imported"},
        {"name": "shop", "kind": "nonsense", "source": "imported"},
        {"name": "shop", "kind": "ca_bundle", "source": "imported", "private_key": "k"},
        {"name": "shop"},
    ],
)
def test_a_bad_entry_from_the_peer_is_refused_naming_it(
    tmp_path: Path, bad: dict[str, str]
) -> None:
    good = {"name": "ok", "kind": "ca_bundle", "source": "imported", "certificate": "c"}
    entry = {"certificate": "c", "chain": "", **bad}
    with CertificateStore(tmp_path / "b.db") as theirs:
        with pytest.raises(InvalidCertificate, match=r"^certificates\[1\]: "):
            theirs.replicate([{**good, "chain": ""}, entry], at=NOW)
        assert theirs.entries() == []


def test_a_diverged_history_is_replaced_after_the_fork(
    active: RevisionStore, standby: RevisionStore
) -> None:
    """``ha resolve``: the standby's revisions after the fork give way to the kept ones, all
    at once; the applied state forgets the replaced revisions (a start then applies in full)."""
    commit(active, 1, 2)
    standby.replicate(active.since(None, limit=10))
    commit(active, 3)
    commit(standby, 30, 40)  # a partition: 3 here, 3-4 there
    standby.rollback(3, base=4, author="admin")  # 5, rolled back from 3
    standby.record_applied(5, ok=True, message="")
    mine = standby.since(2, limit=10)
    replaced = standby.replace_after(2, active.since(2, limit=10))
    assert replaced == mine
    assert [digest_of(r) for r in standby.since(None, limit=10)] == [
        digest_of(r) for r in active.since(None, limit=10)
    ]
    applied = standby.applied()
    assert applied is not None and (applied.last_good, applied.last_attempt) == (None, 2)
    with pytest.raises(StoreError, match="without a gap"):
        standby.replace_after(1, active.since(2, limit=10))
    assert standby.head_number() == 3
