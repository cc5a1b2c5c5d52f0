"""Opening ``bascule.db``: file mode, pragmas and the schema migrations.

Every table of the store lives in one file and one schema version (``PRAGMA user_version``):
the version is the number of entries of ``MIGRATIONS`` applied. A new table or column is a new
entry appended at the end; entries are never edited once released.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from bascule.errors import StoreError

DATABASE_FILENAME = "bascule.db"

#: Waiting for another connection's write lock before giving up (seconds).
BUSY_TIMEOUT = 10.0

#: Each entry takes the schema from version ``i`` to ``i + 1``, in one transaction.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE revisions (
            number           INTEGER PRIMARY KEY CHECK (number >= 1),
            created_at       TEXT    NOT NULL,
            author           TEXT    NOT NULL,
            message          TEXT    NOT NULL,
            document         TEXT    NOT NULL,
            diff             TEXT    NOT NULL,
            changes          INTEGER NOT NULL,
            rolled_back_from INTEGER REFERENCES revisions (number)
        ) STRICT
        """,
        """
        CREATE TABLE applied_state (
            singleton    INTEGER PRIMARY KEY CHECK (singleton = 1),
            last_good    INTEGER REFERENCES revisions (number),
            last_attempt INTEGER NOT NULL REFERENCES revisions (number),
            ok           INTEGER NOT NULL CHECK (ok IN (0, 1)),
            message      TEXT    NOT NULL,
            attempted_at TEXT    NOT NULL
        ) STRICT
        """,
    ),
    # 2: accounts, API tokens, WUI sessions, failed logins and the audit log (store/accounts.py,
    # store/audit.py). Secrets are stored hashed: argon2 for passwords, SHA-256 for the rest.
    (
        """
        CREATE TABLE users (
            name                TEXT PRIMARY KEY,
            role                TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
            password_hash       TEXT NOT NULL,
            created_at          TEXT NOT NULL,
            password_changed_at TEXT NOT NULL
        ) STRICT
        """,
        """
        CREATE TABLE api_tokens (
            id            TEXT PRIMARY KEY,
            name          TEXT NOT NULL,
            role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
            owner         TEXT NOT NULL,
            secret_sha256 TEXT NOT NULL,
            created_at    TEXT NOT NULL,
            last_used_at  TEXT,
            revoked_at    TEXT
        ) STRICT
        """,
        "CREATE INDEX api_tokens_owner ON api_tokens (owner)",
        """
        CREATE TABLE sessions (
            id_sha256  TEXT PRIMARY KEY,
            user       TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
            created_at TEXT NOT NULL,
            last_seen  TEXT NOT NULL,
            remote     TEXT NOT NULL
        ) STRICT
        """,
        "CREATE INDEX sessions_user ON sessions (user)",
        """
        CREATE TABLE login_failures (
            name         TEXT PRIMARY KEY,
            count        INTEGER NOT NULL,
            first_at     TEXT NOT NULL,
            locked_until TEXT
        ) STRICT
        """,
        """
        CREATE TABLE audit_log (
            id       INTEGER PRIMARY KEY AUTOINCREMENT,
            at       TEXT    NOT NULL,
            actor    TEXT    NOT NULL,
            role     TEXT    NOT NULL,
            remote   TEXT    NOT NULL,
            action   TEXT    NOT NULL,
            target   TEXT    NOT NULL,
            revision INTEGER,
            diff     TEXT    NOT NULL,
            outcome  TEXT    NOT NULL,
            detail   TEXT    NOT NULL
        ) STRICT
        """,
        "CREATE INDEX audit_log_actor ON audit_log (actor)",
        "CREATE INDEX audit_log_action ON audit_log (action)",
    ),
    # 3: the certificate store (store/certificates.py): server certificates with their keys
    # (PKCS#8 PEM) and CA bundles, one namespace of names.
    (
        """
        CREATE TABLE certificates (
            name        TEXT PRIMARY KEY,
            kind        TEXT NOT NULL CHECK (kind IN ('certificate', 'ca_bundle')),
            source      TEXT NOT NULL CHECK (source IN ('imported', 'self_signed', 'acme')),
            certificate TEXT NOT NULL,
            chain       TEXT NOT NULL,
            private_key TEXT CHECK (private_key IS NULL OR kind = 'certificate'),
            created_at  TEXT NOT NULL,
            updated_at  TEXT NOT NULL
        ) STRICT
        """,
    ),
    # 4: the password guard (daemon/guard.py): failed password checks counted per account, per
    # source address and per account-and-source (replacing login_failures, per name only), the
    # sources each account logged in from; and an index for the audit log's retention.
    (
        "DROP TABLE login_failures",
        """
        CREATE TABLE password_failures (
            scope        TEXT NOT NULL CHECK (scope IN ('account', 'source', 'account_source')),
            key          TEXT NOT NULL,
            count        INTEGER NOT NULL,
            first_at     TEXT NOT NULL,
            locked_until TEXT,
            PRIMARY KEY (scope, key)
        ) STRICT
        """,
        """
        CREATE TABLE login_sources (
            name       TEXT NOT NULL,
            source     TEXT NOT NULL,
            last_ok_at TEXT NOT NULL,
            PRIMARY KEY (name, source)
        ) STRICT
        """,
        "CREATE INDEX audit_log_at ON audit_log (at)",
    ),
    # 5: ACME (store/acme.py): the accounts at each CA (their keys, PKCS#8 PEM) and the orders
    # that keep a certificate of the store issued and renewed.
    (
        """
        CREATE TABLE acme_accounts (
            directory  TEXT NOT NULL,
            email      TEXT NOT NULL,
            key        TEXT NOT NULL,
            uri        TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (directory, email)
        ) STRICT
        """,
        """
        CREATE TABLE acme_orders (
            name         TEXT PRIMARY KEY,
            directory    TEXT NOT NULL,
            email        TEXT NOT NULL,
            domains      TEXT NOT NULL,
            ca_bundle    TEXT NOT NULL,
            state        TEXT NOT NULL CHECK (state IN ('pending', 'valid', 'failed')),
            last_error   TEXT NOT NULL,
            failures     INTEGER NOT NULL,
            next_attempt TEXT,
            created_at   TEXT NOT NULL,
            updated_at   TEXT NOT NULL
        ) STRICT
        """,
    ),
    # 6: the page store (store/pages.py), HTML pages that not_available.respond.body_file names.
    (
        """
        CREATE TABLE pages (
            name       TEXT PRIMARY KEY,
            content    TEXT NOT NULL,
            created_at TEXT NOT NULL
        ) STRICT
        """,
    ),
    # 7: the HA pair's link (store/pair.py): the peer's URL, its pinned certificate, the token
    # this node presents to it, the id of the token minted for it, and the certificate of its
    # HAProxy peers listener (stick tables across the pair).
    (
        """
        CREATE TABLE ha_pair (
            singleton      INTEGER PRIMARY KEY CHECK (singleton = 1),
            peer_url       TEXT NOT NULL,
            peer_cert      TEXT NOT NULL,
            peer_token     TEXT NOT NULL,
            minted_token   TEXT NOT NULL,
            peers_cert     TEXT NOT NULL,
            joined_at      TEXT NOT NULL
        ) STRICT
        """,
    ),
    # 8: the HTTP user store (store/http_users.py): the users of services' basic authentication
    # (authentication.users names them), each with a yescrypt crypt(3) hash HAProxy verifies.
    (
        """
        CREATE TABLE http_users (
            name                TEXT PRIMARY KEY,
            password_hash       TEXT NOT NULL,
            created_at          TEXT NOT NULL,
            password_changed_at TEXT NOT NULL
        ) STRICT
        """,
    ),
)


def open_database(path: Path) -> sqlite3.Connection:
    """Open (creating it 0600 if needed) and migrate the store at ``path``.

    The connection is in autocommit mode: callers open their own ``BEGIN IMMEDIATE``
    transactions (see ``transaction``). WAL with ``synchronous=FULL`` makes every committed
    transaction durable across a power cut (but those a caller asks not to be: the applied
    state), and a process killed mid-transaction leaves the previous state.
    """
    try:
        # Create the file ourselves so it is never readable by others, even for an instant;
        # SQLite gives its -wal and -shm files the database file's mode.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        connection = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open the store {path}: {exc}") from exc
    try:
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"the store {path} cannot use write-ahead logging (mode {mode})")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA foreign_keys = ON")
        _migrate(connection, path)
    except sqlite3.Error as exc:
        connection.close()
        raise StoreError(f"cannot prepare the store {path}: {exc}") from exc
    except StoreError:
        connection.close()
        raise
    return connection


def _migrate(connection: sqlite3.Connection, path: Path) -> None:
    with transaction(connection):
        version = int(connection.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the store {path} has schema version {version}, newer than this Bascule "
                f"knows ({len(MIGRATIONS)}); upgrade Bascule"
            )
        for target, statements in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in statements:
                connection.execute(statement)
            # user_version lives in the database header, so it changes within the transaction.
            connection.execute(f"PRAGMA user_version = {target:d}")


@contextmanager
def transaction(
    connection: sqlite3.Connection, *, durable: bool = True
) -> Iterator[sqlite3.Connection]:
    """A ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error.

    IMMEDIATE takes the write lock at the start, so a read-then-write (check the head, insert
    the next revision) cannot interleave with another writer's.

    ``durable=False``: the commit does not sync the log (``synchronous=NORMAL`` for it alone,
    sqlite.org/pragma.html#pragma_synchronous): it is as atomic, and survives the process
    being killed (the page cache holds it), but a power cut may take it back, with nothing
    after it; the next durable commit syncs it with its own. For what matters only while the
    machine runs.
    """
    if not durable:
        connection.execute("PRAGMA synchronous = NORMAL")
        try:
            with transaction(connection) as db:
                yield db
        finally:
            connection.execute("PRAGMA synchronous = FULL")
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        # SQLite may already have rolled back by itself (SQLITE_FULL, SQLITE_IOERR...).
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    try:
        connection.execute("COMMIT")
    except sqlite3.Error:
        # A failed COMMIT can leave the transaction open; never keep it for the next caller.
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def schema_version(connection: sqlite3.Connection) -> int:
    """The schema version of an open store."""
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


class Database:
    """One connection to ``bascule.db``, serialized by a lock: what each store holds.

    ``_use`` lends the connection to one caller at a time and turns sqlite3 errors into
    ``StoreError`` naming the action; closing twice is harmless, using a closed store raises.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = open_database(path)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file; later calls raise ``StoreError``. Closing twice is harmless."""
        with self._lock:
            if self._connection is not None:
                connection, self._connection = self._connection, None
                try:
                    connection.close()
                except sqlite3.Error as exc:
                    raise StoreError(f"cannot close the store {self._path}: {exc}") from exc

    @contextmanager
    def _use(self, action: str) -> Iterator[sqlite3.Connection]:
        """The connection, held alone; sqlite3 errors become ``StoreError``."""
        with self._lock:
            if self._connection is None:
                raise StoreError(f"cannot {action}: the store {self._path} is closed")
            try:
                yield self._connection
            except sqlite3.Error as exc:
                raise StoreError(f"cannot {action} in {self._path}: {exc}") from exc
