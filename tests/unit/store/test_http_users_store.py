"""The HTTP user store (store/http_users.py): its migration, yescrypt hashes, and the rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bascule.errors import InvalidConfiguration, NotFound
from bascule.store.database import MIGRATIONS, open_database, schema_version
from bascule.store.http_users import (
    HttpUserStore,
    InvalidHttpUser,
    hash_password,
    verify_password,
)

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HttpUserStore]:
    with HttpUserStore(tmp_path / "bascule.db") as opened:
        yield opened


def test_migration_8_adds_the_table_to_a_version_7_store_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bascule.db"
    old = sqlite3.connect(path, isolation_level=None)
    for statements in MIGRATIONS[:7]:
        for statement in statements:
            old.execute(statement)
    old.execute("PRAGMA user_version = 7")
    old.execute("INSERT INTO pages (name, content, created_at) VALUES ('p', 'x', 't')")
    old.close()
    connection = open_database(path)
    assert schema_version(connection) == 8 == len(MIGRATIONS)
    assert connection.execute("SELECT name FROM pages").fetchall() == [("p",)]
    assert connection.execute("SELECT count(*) FROM http_users").fetchone() == (0,)
    connection.close()


def test_a_hash_is_yescrypt_salted_and_verifies_only_its_password() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first.startswith("$y$") and first != second  # a fresh salt each time
    assert "correct horse" not in first
    assert verify_password("correct horse", first)
    assert not verify_password("wrong horse", first)


@pytest.mark.parametrize(
    ("password", "why"), [("short", "at least 8"), ("x" * 1025, "at most"), ("abc\x00defgh", "NUL")]
)
def test_bad_passwords_are_refused_on_their_field(password: str, why: str) -> None:
    with pytest.raises(InvalidHttpUser) as caught:
        hash_password(password)
    assert caught.value.errors[0].path == "password" and why in caught.value.errors[0].message


def test_users_are_added_listed_changed_and_deleted(store: HttpUserStore) -> None:
    hashed = hash_password("password-1")
    store.add("ops", hashed, at=T0)
    assert [user.name for user in store.entries()] == ["ops"]
    assert store.hashes() == {"ops": hashed}
    with pytest.raises(InvalidConfiguration, match="already"):
        store.add("ops", hashed, at=T0)
    later = datetime(2026, 12, 6, tzinfo=UTC)
    store.set_password_hash("ops", hash_password("password-2"), at=later)
    entry = store.entry("ops")
    assert entry is not None and entry.password_changed_at == later
    assert verify_password("password-2", store.hashes()["ops"])
    store.delete("ops")
    assert store.entries() == []
    with pytest.raises(NotFound):
        store.delete("ops")
    with pytest.raises(NotFound):
        store.set_password_hash("ops", hashed, at=T0)


@pytest.mark.parametrize("name", ["a:b", "", "-x", "x y", "é", "a" * 65, "x'\nuser"])
def test_bad_names_are_refused(store: HttpUserStore, name: str) -> None:
    with pytest.raises(InvalidHttpUser) as caught:
        store.add(name, hash_password("password-1"), at=T0)
    assert caught.value.errors[0].path == "name"


def test_only_yescrypt_hashes_are_stored(store: HttpUserStore) -> None:
    # a plain password, or anything HAProxy would read as more than one word, never gets in
    for bad in ("password-1", "$y$abc def$ghi", "$6$salt$hash"):
        with pytest.raises(InvalidHttpUser):
            store.add("ops", bad, at=T0)


def test_replicate_holds_exactly_the_active_rows(tmp_path: Path, store: HttpUserStore) -> None:
    store.add("ops", hash_password("password-1"), at=T0)
    store.add("old", hash_password("password-1"), at=T0)
    with HttpUserStore(tmp_path / "active.db") as active:
        active.add("ops", hash_password("password-2"), at=T0)
        active.add("new", hash_password("password-3"), at=T0)
        changed = store.replicate(active.export())
        assert store.hashes() == active.hashes()
    assert changed == ("new", "old", "ops")
    assert store.replicate(store.export()) == ()
