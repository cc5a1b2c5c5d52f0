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
    open_rows,
    seal_rows,
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


def test_two_stores_with_the_same_rows_have_the_same_digest(
    tmp_path: Path, store: HttpUserStore
) -> None:
    """What the pair's active compares to decide whether to send its users."""
    store.add("ops", hash_password("password-1"), at=T0)
    with HttpUserStore(tmp_path / "standby.db") as standby:
        assert standby.digest() != store.digest()
        standby.replicate(store.export())
        assert standby.digest() == store.digest() and standby.export() == store.export()
        store.set_password_hash("ops", hash_password("password-2"), at=T0)
        assert standby.digest() != store.digest()


@pytest.mark.parametrize(
    ("row", "path"),
    [
        ({"name": "bad name"}, "http_users[1].name"),
        ({"password_hash": "$6$salt$plain"}, "http_users[1].password_hash"),
        ({"password_hash": "password-1"}, "http_users[1].password_hash"),
        ({"created_at": "2026-12-05T12:00:00"}, "http_users[1].created_at"),
        ({"password_changed_at": None}, "http_users[1].password_changed_at"),
        ({"name": "ops"}, "http_users[1].name"),  # twice
    ],
)
def test_replicate_refuses_a_bad_row_naming_it_and_changes_nothing(
    store: HttpUserStore, row: dict[str, object], path: str
) -> None:
    store.add("kept", hash_password("password-1"), at=T0)
    good = {
        "name": "ops",
        "password_hash": hash_password("password-2"),
        "created_at": T0.isoformat(),
        "password_changed_at": T0.isoformat(),
    }
    with pytest.raises(InvalidHttpUser) as refused:
        store.replicate([good, {**good, "name": "dev", **row}])
    assert refused.value.errors[0].path == path
    assert [user.name for user in store.entries()] == ["kept"]


def test_a_sealed_section_restores_its_users_and_keeps_the_others(
    tmp_path: Path, store: HttpUserStore
) -> None:
    store.add("ops", hash_password("password-1"), at=T0)
    section = seal_rows(store.export(), "a passphrase of twelve")
    text = repr(section)
    assert "$y$" not in text and "password-1" not in text  # the hashes are sealed
    assert section["users"] == [
        {"name": "ops", "created_at": T0.isoformat(), "password_changed_at": T0.isoformat()}
    ]
    with HttpUserStore(tmp_path / "other.db") as other:
        other.add("ops", hash_password("password-9"), at=T0)
        other.add("dev", hash_password("password-3"), at=T0)
        assert other.restore(open_rows(section, "a passphrase of twelve")) == ("ops",)
        assert other.hashes()["ops"] == store.hashes()["ops"]
        assert verify_password("password-1", other.hashes()["ops"])
        assert [user.name for user in other.entries()] == ["dev", "ops"]


def test_a_sealed_section_needs_its_passphrase_and_its_own_users(store: HttpUserStore) -> None:
    store.add("ops", hash_password("password-1"), at=T0)
    section = seal_rows(store.export(), "a passphrase of twelve")
    for passphrase in (None, "another passphrase"):
        with pytest.raises(InvalidHttpUser) as refused:
            open_rows(section, passphrase)
        assert refused.value.errors[0].path == "passphrase"
    moved = {**section, "users": [{**section["users"][0], "name": "root"}]}  # type: ignore[dict-item]
    with pytest.raises(InvalidHttpUser) as refused:
        open_rows(moved, "a passphrase of twelve")  # the hashes are bound to their users
    assert refused.value.errors[0].path == "passphrase"
    with pytest.raises(InvalidHttpUser) as refused:
        open_rows({"format": 1, "users": "ops"}, "a passphrase of twelve")
    assert refused.value.errors[0].path == "http_user_store.users"
