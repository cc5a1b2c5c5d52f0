"""The certificate store: server certificates with their keys, and CA bundles, by name.

Sits under the daemon's certificate service (phase 2 of the TLS work): the doors hand it
certificates that ``bascule.pki`` has already checked; this module keeps them and writes the
files HAProxy reads. The configuration document only names these entries (``tls.certificates``,
``client_ca``, ``server_ca``); it never holds them.

Where things live, and why:

- **Rows of ``bascule.db`` are the truth** (table ``certificates``): one transaction adds,
  replaces or deletes an entry, names are unique across certificates and CA bundles, and a
  backup reads one consistent set. The file is 0600 (``store/database.py``), like the password
  hashes beside it. Keys are kept as unencrypted PKCS#8 PEM: the daemon must hand them to
  HAProxy unattended, so encrypting them at rest with a key kept on the same disk would add
  nothing.
- **Files are derived** (``write_files``): HAProxy reads PEM files, so each certificate is
  written as ``<name>.pem`` (certificate, chain, key) 0600 in a 0700 directory, a CA bundle as
  ``<name>.ca.pem``; they are rewritten from the rows, never read back.
- **No read path returns a key.** ``entries`` and ``entry`` give ``StoredCertificate``
  values (public parts and ``has_key``); only ``write_files`` and ``export`` touch keys, and
  ``export`` seals them with the administrator's passphrase (``pki/keyset.py``); ``snapshot``
  hands them to the HA pair's peer, over its pinned, authenticated channel only
  (daemon/pair.py).
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import TypeAdapter, ValidationError

from bascule.errors import InvalidCertificate, NotFound, StoreError
from bascule.model.types import Name
from bascule.pki.certificates import CaBundle, CertificateBundle, key_matches
from bascule.pki.keyset import open_keys, seal_keys
from bascule.store.database import Database, transaction

BACKUP_FORMAT = "bascule-certificates/1"
#: Add an entry, or replace the one of its name (a restore, the HA pair's copy).
_UPSERT = (
    "INSERT INTO certificates (name, kind, source, certificate, chain, private_key, created_at,"
    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
    " kind = excluded.kind, source = excluded.source, certificate = excluded.certificate,"
    " chain = excluded.chain, private_key = excluded.private_key,"
    " updated_at = excluded.updated_at"
)
_NAME: TypeAdapter[str] = TypeAdapter(Name)


class EntryKind(enum.StrEnum):
    certificate = "certificate"  # a server certificate with its key (tls.certificates)
    ca_bundle = "ca_bundle"  # CA certificates (client_ca, server_ca)


class Source(enum.StrEnum):
    imported = "imported"
    self_signed = "self_signed"
    acme = "acme"


@dataclass(frozen=True, kw_only=True)
class StoredCertificate:
    """An entry of the store without its private key."""

    name: str
    kind: EntryKind
    source: Source
    certificate_pem: bytes  # the leaf (certificate) or every CA certificate (ca_bundle)
    chain_pem: bytes  # intermediates, leaf's issuer first; b"" for a CA bundle
    has_key: bool  # False only for a certificate restored from a backup without keys
    created_at: datetime
    updated_at: datetime

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        """The parsed certificates of ``certificate_pem`` (one for a server certificate)."""
        return tuple(x509.load_pem_x509_certificates(self.certificate_pem))

    @property
    def leaf(self) -> x509.Certificate:
        return self.certificates[0]


@dataclass(frozen=True, kw_only=True)
class RestoreReport:
    """What a restore did, in the words the doors show."""

    restored: tuple[str, ...]
    without_key: tuple[str, ...]  # certificates that came without a usable key
    keys_in_backup: bool

    @property
    def message(self) -> str:
        text = f"{len(self.restored)} certificate store entries restored"
        if not self.keys_in_backup:
            text += "; this backup carries no private keys"
        if self.without_key:
            text += (
                f"; no key for {', '.join(self.without_key)}: import their keys or replace "
                "them before a service uses them"
            )
        return text


_COLUMNS = "name, kind, source, certificate, chain, private_key IS NOT NULL, created_at, updated_at"


class CertificateStore(Database):
    """The ``certificates`` table of ``bascule.db``; one connection, serialized by a lock."""

    def entries(self) -> list[StoredCertificate]:
        with self._use("list the certificates") as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM certificates ORDER BY name").fetchall()  # noqa: S608
        return [_entry(row) for row in rows]

    def entry(self, name: str) -> StoredCertificate | None:
        with self._use(f"read the certificate {name}") as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM certificates WHERE name = ?",  # noqa: S608
                (name,),
            ).fetchone()
        return None if row is None else _entry(row)

    def add(
        self,
        name: str,
        bundle: CertificateBundle | CaBundle,
        *,
        source: Source = Source.imported,
        at: datetime,
    ) -> StoredCertificate:
        """Add an entry; a name already used (by a certificate or a CA bundle) is refused."""
        check_name(name)
        with self._use(f"add the certificate {name}") as db, transaction(db):
            if db.execute("SELECT 1 FROM certificates WHERE name = ?", (name,)).fetchone():
                raise InvalidCertificate(
                    "name",
                    f"{name} is already in the certificate store: choose another name, or "
                    "replace it",
                )
            db.execute(
                "INSERT INTO certificates (name, kind, source, certificate, chain, private_key,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, *_columns(bundle, source), _text(at), _text(at)),
            )
        return self._entry_or_fail(name)

    def replace(
        self,
        name: str,
        bundle: CertificateBundle | CaBundle,
        *,
        source: Source = Source.imported,
        at: datetime,
    ) -> StoredCertificate:
        """Replace an entry by one of the same kind (a certificate by a certificate)."""
        kind = _kind(bundle)
        with self._use(f"replace the certificate {name}") as db, transaction(db):
            row = db.execute("SELECT kind FROM certificates WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"no certificate or CA bundle named {name} in the store")
            if row[0] != kind:
                raise InvalidCertificate(
                    "name", f"{name} is a {row[0].replace('_', ' ')}: replace it with one"
                )
            _, source_, certificate, chain, key = _columns(bundle, source)
            db.execute(
                "UPDATE certificates SET source = ?, certificate = ?, chain = ?,"
                " private_key = ?, updated_at = ? WHERE name = ?",
                (source_, certificate, chain, key, _text(at), name),
            )
        return self._entry_or_fail(name)

    def delete(self, name: str) -> None:
        """Remove an entry. Whether a service still uses it is the caller's check."""
        with self._use(f"delete the certificate {name}") as db, transaction(db):
            if db.execute("DELETE FROM certificates WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"no certificate or CA bundle named {name} in the store")

    def write_files(self, directory: Path) -> dict[str, Path]:
        """Write every usable entry as the PEM file HAProxy reads; remove stale ones.

        ``directory`` is made 0700; each file is written 0600 under a temporary name and
        renamed, so HAProxy never reads half a file. Returns name -> path. A certificate
        without its key is not written (it cannot serve).
        """
        with self._use("read the certificates for the engines") as db:
            rows = db.execute(
                "SELECT name, kind, certificate, chain, private_key FROM certificates"
            ).fetchall()
        wanted: dict[str, tuple[Path, bytes]] = {}
        for name, kind, certificate, chain, key in rows:
            if kind == EntryKind.ca_bundle:
                wanted[name] = (directory / f"{name}.ca.pem", certificate.encode())
            elif key is not None:
                wanted[name] = (directory / f"{name}.pem", (certificate + chain + key).encode())
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)
            for path, data in wanted.values():
                write_file(path, data)
            keep = {path for path, _ in wanted.values()}
            for stale in directory.glob("*.pem"):
                if stale not in keep:
                    stale.unlink()
        except OSError as exc:
            raise StoreError(f"cannot write the certificate files in {directory}: {exc}") from exc
        return {name: path for name, (path, _data) in wanted.items()}

    # -- backups ------------------------------------------------------------------------------

    def export(self, passphrase: str | None = None) -> dict[str, Any]:
        """Every entry as a JSON-ready mapping; keys only sealed with ``passphrase``."""
        with self._use("read the certificates for a backup") as db:
            rows = db.execute(
                "SELECT name, kind, source, certificate, chain, private_key FROM certificates"
                " ORDER BY name"
            ).fetchall()
        entries = [
            {"name": n, "kind": k, "source": s, "certificate": c, "chain": ch}
            for n, k, s, c, ch, _key in rows
        ]
        keys = {row[0]: row[5].encode() for row in rows if row[5] is not None}
        sealed = (
            seal_keys(keys, passphrase, associated=_associated(entries))
            if passphrase is not None
            else None
        )
        return {"format": BACKUP_FORMAT, "entries": entries, "keys": sealed}

    def restore(
        self, backup: Mapping[str, Any], passphrase: str | None = None, *, at: datetime
    ) -> RestoreReport:
        """Add or replace the backup's entries (others are kept), all or nothing.

        Keys come from the sealed set when the backup has one (the passphrase is then
        required); otherwise a certificate keeps the key already stored under its name if that
        key matches it, and is stored without a key if not.
        """
        entries, keys = _opened(backup, passphrase)
        restored: list[str] = []
        without_key: list[str] = []
        with self._use("restore the certificates") as db, transaction(db):
            for item in entries:
                name = item["name"]
                key = self._restored_key(db, item, keys.get(name))
                if item["kind"] == EntryKind.certificate and key is None:
                    without_key.append(name)
                db.execute(
                    _UPSERT,
                    (
                        name,
                        item["kind"],
                        item["source"],
                        item["certificate"],
                        item["chain"],
                        key,
                        _text(at),
                        _text(at),
                    ),
                )
                restored.append(name)
        return RestoreReport(
            restored=tuple(restored),
            without_key=tuple(without_key),
            keys_in_backup=backup.get("keys") is not None,
        )

    def check_backup(self, backup: Mapping[str, Any], passphrase: str | None = None) -> str:
        """What ``restore`` would say of ``backup``, or its refusal; nothing is written."""
        entries, keys = _opened(backup, passphrase)
        without_key: list[str] = []
        with self._use("check a certificate backup") as db:
            for item in entries:
                key = self._restored_key(db, item, keys.get(item["name"]))
                if item["kind"] == EntryKind.certificate and key is None:
                    without_key.append(item["name"])
        return RestoreReport(
            restored=tuple(item["name"] for item in entries),
            without_key=tuple(without_key),
            keys_in_backup=backup.get("keys") is not None,
        ).message

    # -- the HA pair --------------------------------------------------------------------------

    def snapshot(self) -> list[dict[str, str | None]]:
        """Every entry with its key in clear, for the HA pair's peer (daemon/pair.py): sent
        over the pinned, mutually authenticated channel only, never shown or saved elsewhere."""
        with self._use("read the certificates for the peer") as db:
            rows = db.execute(
                "SELECT name, kind, source, certificate, chain, private_key FROM certificates"
                " ORDER BY name"
            ).fetchall()
        return [
            {"name": n, "kind": k, "source": s, "certificate": c, "chain": ch, "private_key": key}
            for n, k, s, c, ch, key in rows
        ]

    def replicate(self, entries: Sequence[Mapping[str, Any]], *, at: datetime) -> tuple[str, ...]:
        """Make the store hold exactly the active's ``entries`` (``snapshot``'s shape); the
        names added, changed or deleted. All or nothing."""
        wanted: dict[str, tuple[str, str, str, str, str | None]] = {}
        for index, item in enumerate(entries):
            try:
                name = str(item["name"])
                check_name(name)
                kind = EntryKind(item["kind"])
                source = Source(item["source"])
                key = item.get("private_key")
                if key is not None and kind is not EntryKind.certificate:
                    raise ValueError("a CA bundle has no key")
                wanted[name] = (
                    kind.value,
                    source.value,
                    str(item["certificate"]),
                    str(item["chain"]),
                    None if key is None else str(key),
                )
            except KeyError as exc:
                raise InvalidCertificate(f"certificates[{index}]", f"lacks {exc}") from None
            except (ValueError, TypeError, InvalidCertificate) as exc:
                raise InvalidCertificate(f"certificates[{index}]", str(exc)) from None
        changed: list[str] = []
        with self._use("store the active's certificates") as db, transaction(db):
            rows = db.execute(
                "SELECT name, kind, source, certificate, chain, private_key FROM certificates"
            ).fetchall()
            current = {row[0]: tuple(row[1:]) for row in rows}
            for name in sorted(set(current) - set(wanted)):
                db.execute("DELETE FROM certificates WHERE name = ?", (name,))
                changed.append(name)
            for name, columns in sorted(wanted.items()):
                if current.get(name) == columns:
                    continue
                db.execute(
                    _UPSERT,
                    (name, *columns, _text(at), _text(at)),
                )
                changed.append(name)
        return tuple(sorted(changed))

    def digest(self) -> str:
        """What tells two stores apart (SHA-256, hex, of every entry and key): the active
        sends its certificates when the peer's digest is not its own."""
        text = json.dumps(self.snapshot(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _restored_key(db: Any, item: Mapping[str, str], sealed_key: bytes | None) -> str | None:
        """The key to store with a restored entry: the backup's, else the current one if it
        still matches the certificate, else none."""
        if item["kind"] != EntryKind.certificate:
            return None
        leaf = x509.load_pem_x509_certificate(item["certificate"].encode())
        if sealed_key is not None:
            if not _pem_matches(leaf, sealed_key):
                raise InvalidCertificate(
                    "keys", f"the backup's key for {item['name']} does not match its certificate"
                )
            return sealed_key.decode("ascii")
        row = db.execute(
            "SELECT private_key FROM certificates WHERE name = ?", (item["name"],)
        ).fetchone()
        if row is not None and row[0] is not None and _pem_matches(leaf, row[0].encode()):
            return str(row[0])
        return None

    def _entry_or_fail(self, name: str) -> StoredCertificate:
        entry = self.entry(name)
        if entry is None:  # pragma: no cover (written in the same call)
            raise StoreError(f"the certificate {name} vanished from the store")
        return entry


def check_name(name: str) -> None:
    """Refuse a name the document could not name (``InvalidCertificate`` on ``name``)."""
    try:
        _NAME.validate_python(name)
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise InvalidCertificate("name", message) from None


def _kind(bundle: CertificateBundle | CaBundle) -> EntryKind:
    return EntryKind.ca_bundle if isinstance(bundle, CaBundle) else EntryKind.certificate


def _columns(
    bundle: CertificateBundle | CaBundle, source: Source
) -> tuple[str, str, str, str, str | None]:
    if isinstance(bundle, CaBundle):
        return (EntryKind.ca_bundle, source, bundle.pem.decode(), "", None)
    return (
        EntryKind.certificate,
        source,
        bundle.certificate_pem.decode(),
        bundle.chain_pem.decode(),
        bundle.key_pem.decode(),
    )


def _entry(row: tuple[Any, ...]) -> StoredCertificate:
    name, kind, source, certificate, chain, has_key, created_at, updated_at = row
    return StoredCertificate(
        name=name,
        kind=EntryKind(kind),
        source=Source(source),
        certificate_pem=certificate.encode(),
        chain_pem=chain.encode(),
        has_key=bool(has_key),
        created_at=datetime.fromisoformat(created_at),
        updated_at=datetime.fromisoformat(updated_at),
    )


def _backup_entries(backup: Mapping[str, Any]) -> list[dict[str, str]]:
    if backup.get("format") != BACKUP_FORMAT:
        raise InvalidCertificate(
            "certificates", f"not a certificate store backup (format {backup.get('format')!r})"
        )
    entries: list[dict[str, str]] = []
    raw = backup.get("entries")
    if not isinstance(raw, list):
        raise InvalidCertificate("certificates", "the backup lists no entries")
    for index, item in enumerate(raw):
        where = f"certificates[{index}]"
        try:
            entry = {k: str(item[k]) for k in ("name", "kind", "source", "certificate", "chain")}
            check_name(entry["name"])
            EntryKind(entry["kind"])
            Source(entry["source"])
            x509.load_pem_x509_certificates(entry["certificate"].encode())
            if entry["chain"]:
                x509.load_pem_x509_certificates(entry["chain"].encode())
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidCertificate(where, f"is damaged: {exc}") from None
        entries.append(entry)
    return entries


def _opened(
    backup: Mapping[str, Any], passphrase: str | None
) -> tuple[list[dict[str, str]], dict[str, bytes]]:
    """A backup's entries, checked, and its keys opened with ``passphrase`` (none if the
    backup carries none)."""
    entries = _backup_entries(backup)
    sealed = backup.get("keys")
    if sealed is None:
        return entries, {}
    if passphrase is None:
        raise InvalidCertificate(
            "passphrase", "this backup's private keys are sealed: give its passphrase"
        )
    return entries, open_keys(sealed, passphrase, associated=_associated(entries))


def _associated(entries: list[dict[str, str]]) -> bytes:
    """What the sealed keys are bound to: the backup's entries, canonically."""
    return json.dumps([BACKUP_FORMAT, entries], sort_keys=True, separators=(",", ":")).encode()


def _pem_matches(leaf: x509.Certificate, pem: bytes) -> bool:
    try:
        key = serialization.load_pem_private_key(pem, None)
    except (TypeError, ValueError):
        return False
    return key_matches(leaf, key)


def write_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` through a new temporary file created with ``mode`` (never
    readable by others, even for an instant), then renamed over ``path``. Raises OSError."""
    temporary = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits away
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def _text(at: datetime) -> str:
    if at.tzinfo is None:
        raise StoreError("a time without a time zone cannot be stored")
    return at.astimezone(UTC).isoformat(timespec="microseconds")
