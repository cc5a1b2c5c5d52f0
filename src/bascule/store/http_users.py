"""The HTTP user store: the users of services' basic authentication, with password hashes.

Like the certificate and page stores: the rows of ``bascule.db`` (table ``http_users``) are
the truth and the document only names a user (``authentication.users``). A password is kept
only as a crypt(3) hash HAProxy itself verifies (``userlist ... user NAME password HASH``,
configuration manual 3.4): yescrypt (``$y$``), the strongest scheme of the system's libcrypt
(libxcrypt), which HAProxy 2.6 verifies through the same library. HAProxy runs crypt(3) on
every request that carries credentials, so the cost is yescrypt's second setting (about 3 ms a
check on a 2020s CPU, as long as a SHA-512 crypt of 5000 rounds, memory-hard where SHA-512 is
not); docs/security.md says why. The plain password is never stored, logged or returned.

The rows leave the store whole (``export``, hashes included) on two paths only: to the HA
pair's standby over the pinned, mutually authenticated channel (``replicate`` there; the
``digest`` tells the active whether to send them), and into a backup, the hashes sealed with
the backup's passphrase (``seal_rows``/``open_rows``, pki/keyset.py's scheme; ``restore``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import re
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from bascule.errors import InvalidCertificate, NotFound, StoreError
from bascule.pki.keyset import open_keys, seal_keys
from bascule.store.database import Database, transaction

#: The crypt(3) scheme and cost of new hashes (libxcrypt's ``crypt_gensalt`` arguments).
HASH_PREFIX = b"$y$"
HASH_COST = 2
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
# What a yescrypt hash is made of: HAProxy reads it as one unquoted word.
_HASH = re.compile(r"^\$y\$[./0-9A-Za-z$]{20,200}$")
# A user name (model/authentication.py has the same alphabet: the document names them).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# libxcrypt's struct crypt_data is 32768 bytes (crypt.h, CRYPT_DATA_INTERNAL_SIZE and more).
_CRYPT_DATA_SIZE = 32768
_SETTING_SIZE = 256


class InvalidHttpUser(InvalidCertificate):
    """An HTTP user, or its password, is refused; ``errors`` name the input (``name``,
    ``password``)."""


@dataclass(frozen=True, kw_only=True)
class HttpUser:
    name: str
    created_at: datetime
    password_changed_at: datetime


@cache
def _libcrypt() -> ctypes.CDLL:
    found = ctypes.util.find_library("crypt")
    if found is None:
        raise StoreError("cannot hash HTTP passwords: the system has no libcrypt")
    library = ctypes.CDLL(found, use_errno=True)
    library.crypt_gensalt_rn.restype = ctypes.c_char_p
    library.crypt_gensalt_rn.argtypes = [
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
    ]
    library.crypt_rn.restype = ctypes.c_char_p
    library.crypt_rn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    return library


def crypt(password: str, setting: str) -> str:
    """crypt(3) of ``password`` with ``setting`` (a salt, or a whole hash to verify against)."""
    library = _libcrypt()
    data = ctypes.create_string_buffer(_CRYPT_DATA_SIZE)
    result = library.crypt_rn(password.encode(), setting.encode(), data, _CRYPT_DATA_SIZE)
    if not result or result.startswith(b"*"):
        raise StoreError(f"libcrypt cannot hash with the setting {setting[:8]!r}...")
    return str(result.decode("ascii"))


def hash_password(password: str) -> str:
    """A new yescrypt hash of ``password`` (a fresh random salt from the kernel)."""
    check_password(password)
    library = _libcrypt()
    setting = ctypes.create_string_buffer(_SETTING_SIZE)
    if not library.crypt_gensalt_rn(HASH_PREFIX, HASH_COST, None, 0, setting, _SETTING_SIZE):
        raise StoreError("libcrypt cannot make a yescrypt salt (is it libxcrypt?)")
    hashed = crypt(password, setting.value.decode("ascii"))
    if not _HASH.fullmatch(hashed):
        raise StoreError("libcrypt made a hash HAProxy could not read")
    return hashed


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``password`` is the one ``hashed`` was made from (what HAProxy checks)."""
    return crypt(password, hashed) == hashed


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidHttpUser(
            "name",
            f"{name!r} is not an HTTP user name: 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or a digit",
        )
    return name


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidHttpUser("password", f"must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidHttpUser("password", f"must be at most {MAX_PASSWORD} characters")
    if "\x00" in password:
        raise InvalidHttpUser("password", "must not contain a NUL character")


class HttpUserStore(Database):
    """The ``http_users`` table of ``bascule.db``."""

    def entries(self) -> list[HttpUser]:
        with self._use("list the HTTP users") as db:
            rows = db.execute(
                "SELECT name, created_at, password_changed_at FROM http_users ORDER BY name"
            ).fetchall()
        return [_user(row) for row in rows]

    def entry(self, name: str) -> HttpUser | None:
        with self._use(f"read the HTTP user {name}") as db:
            row = db.execute(
                "SELECT name, created_at, password_changed_at FROM http_users WHERE name = ?",
                (name,),
            ).fetchone()
        return None if row is None else _user(row)

    def hashes(self) -> dict[str, str]:
        """Every user's hash, for the engine's configuration (never for a door)."""
        with self._use("read the HTTP users for the engines") as db:
            rows = db.execute("SELECT name, password_hash FROM http_users").fetchall()
        return {str(name): str(hashed) for name, hashed in rows if _HASH.fullmatch(hashed)}

    def add(self, name: str, password_hash: str, *, at: datetime) -> HttpUser:
        """Add a user; a name already used is refused."""
        check_name(name)
        _check_hash(password_hash)
        when = at.astimezone(UTC).isoformat()
        with self._use(f"add the HTTP user {name}") as db, transaction(db):
            if db.execute("SELECT 1 FROM http_users WHERE name = ?", (name,)).fetchone():
                raise InvalidHttpUser("name", f"{name} is already an HTTP user")
            db.execute(
                "INSERT INTO http_users (name, password_hash, created_at, password_changed_at)"
                " VALUES (?, ?, ?, ?)",
                (name, password_hash, when, when),
            )
        return HttpUser(name=name, created_at=at, password_changed_at=at)

    def set_password_hash(self, name: str, password_hash: str, *, at: datetime) -> None:
        _check_hash(password_hash)
        with self._use(f"change the password of the HTTP user {name}") as db, transaction(db):
            changed = db.execute(
                "UPDATE http_users SET password_hash = ?, password_changed_at = ? WHERE name = ?",
                (password_hash, at.astimezone(UTC).isoformat(), name),
            ).rowcount
            if changed == 0:
                raise NotFound(f"there is no HTTP user named {name!r}")

    def delete(self, name: str) -> None:
        """Remove a user. Whether a service still names it is the caller's check."""
        with self._use(f"delete the HTTP user {name}") as db, transaction(db):
            if db.execute("DELETE FROM http_users WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"there is no HTTP user named {name!r}")

    def export(self) -> list[dict[str, str]]:
        """Every row, hashes included (``ROW_KEYS``): for the HA pair's peer, over its pinned
        channel (daemon/pair.py), and for a sealed backup (daemon/http_users.py)."""
        with self._use("export the HTTP users") as db:
            rows = db.execute(
                "SELECT name, password_hash, created_at, password_changed_at FROM http_users"
                " ORDER BY name"
            ).fetchall()
        return [dict(zip(ROW_KEYS, map(str, row), strict=True)) for row in rows]

    def digest(self) -> str:
        """What tells two stores apart (SHA-256, hex, of every row): the pair's active sends
        its users when the peer's digest is not its own."""
        return rows_digest(self.export())

    def replicate(self, rows: Sequence[Mapping[str, object]]) -> tuple[str, ...]:
        """Hold exactly ``rows`` (an ``export`` of the pair's active); the names added,
        changed or deleted. All or nothing: a bad row is refused naming it."""
        wanted = checked_rows(rows, field="http_users")
        with self._use("replicate the HTTP users") as db, transaction(db):
            before = _stored_hashes(db)
            changed = sorted(
                {n for n in before if n not in wanted}
                | {n for n, row in wanted.items() if before.get(n) != row["password_hash"]}
            )
            db.execute("DELETE FROM http_users")
            db.executemany(_INSERT, list(wanted.values()))
        return tuple(changed)

    def restore(self, rows: Sequence[Mapping[str, object]]) -> tuple[str, ...]:
        """Put a backup's ``rows`` back: a user of the same name takes the backup's hash and
        times, the others are kept. All or nothing; the names whose hash changed."""
        wanted = checked_rows(rows, field="http_user_store.users")
        with self._use("restore the HTTP users") as db, transaction(db):
            before = _stored_hashes(db)
            db.executemany("DELETE FROM http_users WHERE name = ?", [(n,) for n in wanted])
            db.executemany(_INSERT, list(wanted.values()))
        return tuple(
            n for n, row in sorted(wanted.items()) if before.get(n) != row["password_hash"]
        )


#: A user's row as it leaves the store (``export``): to the pair's peer, into a sealed backup.
ROW_KEYS = ("name", "password_hash", "created_at", "password_changed_at")
_INSERT = (
    "INSERT INTO http_users (name, password_hash, created_at, password_changed_at)"
    " VALUES (:name, :password_hash, :created_at, :password_changed_at)"
)


def rows_digest(rows: Sequence[Mapping[str, str]]) -> str:
    text = json.dumps(list(rows), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def checked_rows(rows: Sequence[Mapping[str, object]], *, field: str) -> dict[str, dict[str, str]]:
    """``rows`` (``ROW_KEYS`` each) by name, every one checked: a name, a yescrypt hash, two
    ISO 8601 times with a zone, no name twice. ``InvalidHttpUser`` names the row at fault
    (``http_users[2].password_hash``)."""
    wanted: dict[str, dict[str, str]] = {}
    for index, row in enumerate(rows):
        where = f"{field}[{index}]"
        if not isinstance(row, Mapping):
            raise InvalidHttpUser(where, "must be {" + ", ".join(ROW_KEYS) + "}")
        values: dict[str, str] = {}
        for key in ROW_KEYS:
            value = row.get(key)
            if not isinstance(value, str):
                raise InvalidHttpUser(f"{where}.{key}", "is required (text)")
            values[key] = value
        if not _NAME.fullmatch(values["name"]):
            raise InvalidHttpUser(f"{where}.name", f"{values['name']!r} is not an HTTP user name")
        if values["name"] in wanted:
            raise InvalidHttpUser(f"{where}.name", f"{values['name']} is twice")
        if not _HASH.fullmatch(values["password_hash"]):
            raise InvalidHttpUser(f"{where}.password_hash", "is not a yescrypt hash")
        for key in ("created_at", "password_changed_at"):
            try:
                when = datetime.fromisoformat(values[key])
            except ValueError:
                when = None
            if when is None or when.tzinfo is None:
                raise InvalidHttpUser(f"{where}.{key}", "must be an ISO 8601 time with a zone")
            values[key] = when.astimezone(UTC).isoformat()
        wanted[values["name"]] = values
    return wanted


# -- backups ------------------------------------------------------------------------------------

#: A backup's section of HTTP users (``bascule backup --with-keys``).
BACKUP_SECTION = "http_user_store"
BACKUP_FORMAT = 1
_PUBLIC_KEYS = ("name", "created_at", "password_changed_at")


def seal_rows(rows: Sequence[Mapping[str, str]], passphrase: str) -> dict[str, object]:
    """A backup's ``http_user_store`` section: the users (names, times) in clear, their
    hashes sealed with ``passphrase`` as the certificates' keys are (pki/keyset.py), bound to
    the users listed."""
    users = [{key: row[key] for key in _PUBLIC_KEYS} for row in rows]
    hashes = {row["name"]: row["password_hash"].encode("ascii") for row in rows}
    sealed = seal_keys(hashes, passphrase, associated=_associated(users))
    return {"format": BACKUP_FORMAT, "users": users, "hashes": sealed}


def open_rows(section: object, passphrase: str | None) -> list[dict[str, str]]:
    """The rows of a backup's ``http_user_store`` section (``seal_rows``), their hashes
    opened with ``passphrase`` and every row checked; ``InvalidHttpUser`` names the field."""
    where = BACKUP_SECTION
    if not isinstance(section, Mapping) or section.get("format") != BACKUP_FORMAT:
        raise InvalidHttpUser(where, f"must be a store export of format {BACKUP_FORMAT}")
    users, sealed = section.get("users"), section.get("hashes")
    if not isinstance(users, list):
        raise InvalidHttpUser(f"{where}.users", "must be a list of {name, created_at, ...}")
    if not isinstance(sealed, Mapping):
        raise InvalidHttpUser(f"{where}.hashes", "must be the sealed password hashes")
    if passphrase is None:
        raise InvalidHttpUser(
            "passphrase", "this backup's HTTP user password hashes are sealed: give its passphrase"
        )
    try:
        hashes = open_keys(sealed, passphrase, associated=_associated(users))
    except InvalidCertificate as exc:
        error = exc.errors[0]
        if error.path == "passphrase":
            raise InvalidHttpUser(
                "passphrase", "wrong passphrase, or the backup was altered: no HTTP user restored"
            ) from None
        raise InvalidHttpUser(f"{where}.hashes", error.message) from None
    rows = [
        {**user, "password_hash": hashes.get(str(user.get("name")), b"").decode("ascii")}
        if isinstance(user, Mapping)
        else user
        for user in users
    ]
    return list(checked_rows(rows, field=f"{where}.users").values())


def _associated(users: object) -> bytes:
    """What the sealed hashes are bound to: the section's users, canonically."""
    text = json.dumps([BACKUP_SECTION, BACKUP_FORMAT, users], sort_keys=True, separators=(",", ":"))
    return text.encode()


def _stored_hashes(db: sqlite3.Connection) -> dict[str, str]:
    rows = db.execute("SELECT name, password_hash FROM http_users")
    return {str(name): str(hashed) for name, hashed in rows}


def _check_hash(password_hash: str) -> None:
    if not _HASH.fullmatch(password_hash):
        raise InvalidHttpUser("password", "is not a yescrypt hash")


def _user(row: tuple[str, str, str]) -> HttpUser:
    name, created, changed = row
    return HttpUser(
        name=name,
        created_at=datetime.fromisoformat(created),
        password_changed_at=datetime.fromisoformat(changed),
    )
