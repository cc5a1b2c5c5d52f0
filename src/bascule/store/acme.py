"""ACME's state in the store: the accounts at each CA, and the orders that keep certificates.

Sits under the daemon's ACME service (daemon/acme.py), beside the certificate store: an order
names the store entry it issues (``name``), the identifiers, the CA's directory and the trust
for it; its state says whether the last attempt worked and, after a failure, the CA's own
words and when to try again (exponential backoff). The account keys are kept as unencrypted
PKCS#8 PEM in ``bascule.db`` (0600), for the reason the certificates' keys are: the daemon
renews unattended. Everything here survives a restart of the daemon.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bascule.errors import NotFound, StoreError
from bascule.store.database import Database, transaction


class OrderState(enum.StrEnum):
    pending = "pending"  # never issued yet
    valid = "valid"  # the last attempt issued the certificate
    failed = "failed"  # the last attempt failed: last_error, next_attempt


@dataclass(frozen=True, kw_only=True)
class AcmeAccount:
    directory: str
    email: str
    key_pem: bytes  # a secret: never leaves the daemon
    uri: str


@dataclass(frozen=True, kw_only=True)
class AcmeOrder:
    """How a store entry is kept issued by an ACME CA."""

    name: str
    directory: str
    email: str
    domains: tuple[str, ...]  # DNS names and IP addresses, as the identifiers are ordered
    ca_bundle: bytes  # PEM trusted for the directory's HTTPS (b"": the system's CAs)
    state: OrderState
    last_error: str
    failures: int
    next_attempt: datetime | None
    created_at: datetime
    updated_at: datetime


_ORDER_COLUMNS = (
    "name, directory, email, domains, ca_bundle, state, last_error, failures, next_attempt,"
    " created_at, updated_at"
)


class AcmeStore(Database):
    """The ``acme_accounts`` and ``acme_orders`` tables of ``bascule.db``."""

    def account(self, directory: str, email: str) -> AcmeAccount | None:
        with self._use("read an ACME account") as db:
            row = db.execute(
                "SELECT directory, email, key, uri FROM acme_accounts"
                " WHERE directory = ? AND email = ?",
                (directory, email),
            ).fetchone()
        if row is None:
            return None
        return AcmeAccount(directory=row[0], email=row[1], key_pem=row[2].encode(), uri=row[3])

    def save_account(self, account: AcmeAccount, *, at: datetime) -> None:
        with self._use("save an ACME account") as db, transaction(db):
            db.execute(
                "INSERT INTO acme_accounts (directory, email, key, uri, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (directory, email) DO UPDATE"
                " SET key = excluded.key, uri = excluded.uri",
                (
                    account.directory,
                    account.email,
                    account.key_pem.decode(),
                    account.uri,
                    _text(at),
                ),
            )

    def orders(self) -> list[AcmeOrder]:
        with self._use("list the ACME orders") as db:
            rows = db.execute(f"SELECT {_ORDER_COLUMNS} FROM acme_orders ORDER BY name").fetchall()  # noqa: S608
        return [_order(row) for row in rows]

    def order(self, name: str) -> AcmeOrder | None:
        with self._use(f"read the ACME order of {name}") as db:
            row = db.execute(
                f"SELECT {_ORDER_COLUMNS} FROM acme_orders WHERE name = ?",  # noqa: S608
                (name,),
            ).fetchone()
        return None if row is None else _order(row)

    def save_order(
        self,
        *,
        name: str,
        directory: str,
        email: str,
        domains: tuple[str, ...],
        ca_bundle: bytes,
        at: datetime,
    ) -> AcmeOrder:
        """Create or redefine ``name``'s order (its state starts over as pending)."""
        with self._use(f"save the ACME order of {name}") as db, transaction(db):
            db.execute(
                "INSERT INTO acme_orders (name, directory, email, domains, ca_bundle, state,"
                " last_error, failures, next_attempt, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, 'pending', '', 0, NULL, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET directory = excluded.directory,"
                " email = excluded.email, domains = excluded.domains,"
                " ca_bundle = excluded.ca_bundle, state = 'pending', last_error = '',"
                " failures = 0, next_attempt = NULL, updated_at = excluded.updated_at",
                (
                    name,
                    directory,
                    email,
                    json.dumps(list(domains)),
                    ca_bundle.decode(),
                    _text(at),
                    _text(at),
                ),
            )
        return self._order_or_fail(name)

    def record(
        self,
        name: str,
        *,
        state: OrderState,
        error: str = "",
        failures: int = 0,
        next_attempt: datetime | None = None,
        at: datetime,
    ) -> AcmeOrder:
        """The outcome of an attempt."""
        with self._use(f"record the ACME order of {name}") as db, transaction(db):
            updated = db.execute(
                "UPDATE acme_orders SET state = ?, last_error = ?, failures = ?,"
                " next_attempt = ?, updated_at = ? WHERE name = ?",
                (
                    state.value,
                    error,
                    failures,
                    None if next_attempt is None else _text(next_attempt),
                    _text(at),
                    name,
                ),
            ).rowcount
        if not updated:
            raise NotFound(f"there is no ACME order for {name}")
        return self._order_or_fail(name)

    def delete_order(self, name: str) -> None:
        with self._use(f"delete the ACME order of {name}") as db, transaction(db):
            db.execute("DELETE FROM acme_orders WHERE name = ?", (name,))

    def _order_or_fail(self, name: str) -> AcmeOrder:
        order = self.order(name)
        if order is None:  # pragma: no cover (written in the same call)
            raise StoreError(f"the ACME order of {name} vanished")
        return order


def _order(row: tuple[Any, ...]) -> AcmeOrder:
    (name, directory, email, domains, ca_bundle, state, error, failures, next_attempt,
     created_at, updated_at) = row  # fmt: skip
    return AcmeOrder(
        name=name,
        directory=directory,
        email=email,
        domains=tuple(json.loads(domains)),
        ca_bundle=ca_bundle.encode(),
        state=OrderState(state),
        last_error=error,
        failures=int(failures),
        next_attempt=None if next_attempt is None else datetime.fromisoformat(next_attempt),
        created_at=datetime.fromisoformat(created_at),
        updated_at=datetime.fromisoformat(updated_at),
    )


def _text(at: datetime) -> str:
    if at.tzinfo is None:
        raise StoreError("a time without a time zone cannot be stored")
    return at.astimezone(UTC).isoformat(timespec="microseconds")
