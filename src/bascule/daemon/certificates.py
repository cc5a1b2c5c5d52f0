"""The certificate service: every change to the certificate store, from every door, goes here.

Where it sits: beside ``ConfigService`` (daemon/service.py), under the doors (the API's
``/certificates`` routes, the WUI's Certificates page, the CLI's ``bascule cert`` through the
API) and the ACME client (daemon/acme.py). It reads what comes in with ``bascule.pki`` (every
refusal an ``InvalidCertificate`` naming the input at fault), keeps it in the store
(``store/certificates.py``: rows are the truth), writes the files the engines read, and swaps
a replaced certificate into the running engines without a reload (HAProxy's SSL transactions,
the STARTTLS front's SIGHUP). Every change is audited: who, what, the certificate's public
facts, never a key.

It also answers, for the change pipeline, whether a document's ``tls`` names exist in the
store (``document_problems``: field errors like ``virtual_services[0].tls.certificates[1]``),
refuses deleting what a service uses, and watches expiry (the status, ``/metrics`` and the
log at 30 and 7 days; an expired certificate in use keeps serving, loudly).

Store changes take the reconciler's lock, so they are serialised with configuration changes:
a document that starts using a certificate and the deletion of that certificate never cross.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from bascule.daemon.audit import AuditOutcome, AuditService
from bascule.daemon.results import CertificateAlert
from bascule.daemon.service import ConfigService
from bascule.engines.base import CertificateUpdates
from bascule.errors import BasculeError, EngineError, FieldError, InvalidCertificate, NotFound
from bascule.model import Configuration
from bascule.model.access import Actor
from bascule.pki.certificates import (
    CaBundle,
    CertificateBundle,
    load_ca_bundle,
    load_certificate,
    load_pkcs12,
)
from bascule.pki.describe import CertificateInfo, describe
from bascule.pki.expiry import ExpiryLevel, expiry_level, expiry_warnings
from bascule.pki.selfsigned import DEFAULT_DAYS, KeyKind, self_signed
from bascule.store.certificates import (
    CertificateStore,
    EntryKind,
    RestoreReport,
    Source,
    StoredCertificate,
    check_name,
)

log = logging.getLogger("bascule.certificates")

Clock = Callable[[], datetime]

# The entries a restore is about to put in the store (name -> kind), for the dry run of the
# document that comes with them: its names count as present (see CertificateService.restoring).
_RESTORING: contextvars.ContextVar[Mapping[str, EntryKind] | None] = contextvars.ContextVar(
    "restoring", default=None
)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class CertificateDetails:
    """An entry of the store as the doors show it: public facts only, never a key."""

    name: str
    kind: EntryKind
    source: Source
    has_key: bool
    used_by: tuple[str, ...]  # the virtual services of the current revision that name it
    certificate: CertificateInfo  # the leaf, or a CA bundle's first certificate
    chain: tuple[CertificateInfo, ...]  # the intermediates, or the bundle's other CAs
    expiry: ExpiryLevel
    created_at: datetime
    updated_at: datetime

    @property
    def not_after(self) -> datetime:
        """When it stops being valid (a CA bundle: its first member to expire)."""
        return min(info.not_after for info in (self.certificate, *self.chain))


@dataclass(frozen=True, kw_only=True)
class CertificateChange:
    """What a change to the store did: the entry now, and which engines serve it already."""

    details: CertificateDetails | None  # None after a deletion
    swapped: tuple[str, ...] = ()  # engines that took the new file without a reload
    message: str = ""


class CertificateService:
    """The certificate store, its files for the engines, and the checks of a document."""

    def __init__(
        self,
        store: CertificateStore,
        *,
        directory: Path,
        config: ConfigService,
        audit: AuditService | None = None,
        clock: Clock = utc_now,
    ) -> None:
        """``directory``: where the engines read ``<name>.pem`` and ``<name>.ca.pem``."""
        self.store = store
        self.directory = directory
        self.config = config
        self.audit = audit
        self.clock = clock
        self._levels: dict[str, ExpiryLevel] = {}
        # called with a name once its entry is deleted (ACME forgets its order)
        self.on_delete: list[Callable[[str], None]] = []

    # -- reading ------------------------------------------------------------------------------

    def entries(self) -> list[CertificateDetails]:
        usage = self._usage()
        now = self.clock()
        return [self._details(entry, usage, now) for entry in self.store.entries()]

    def show(self, name: str) -> CertificateDetails:
        return self._details(self._entry(name), self._usage(), self.clock())

    def used_by(self, name: str) -> tuple[str, ...]:
        return self._usage().get(name, ())

    def _entry(self, name: str) -> StoredCertificate:
        entry = self.store.entry(name)
        if entry is None:
            raise NotFound(f"there is no certificate or CA bundle named {name!r} in the store")
        return entry

    def _usage(self, config: Configuration | None = None) -> dict[str, tuple[str, ...]]:
        usage: dict[str, list[str]] = {}
        for vs in (config or self.config.desired()).virtual_services:
            if vs.tls is not None:
                for name in vs.tls.store_names:
                    usage.setdefault(name, []).append(vs.name)
        return {name: tuple(services) for name, services in usage.items()}

    def _details(
        self, entry: StoredCertificate, usage: Mapping[str, tuple[str, ...]], now: datetime
    ) -> CertificateDetails:
        first, *others = entry.certificates
        chain = (
            [describe(c, now=now) for c in others]
            if entry.kind is EntryKind.ca_bundle
            else [describe(c, now=now) for c in _chain_of(entry)]
        )
        leaf = describe(first, now=now)
        return CertificateDetails(
            name=entry.name,
            kind=entry.kind,
            source=entry.source,
            has_key=entry.has_key,
            used_by=usage.get(entry.name, ()),
            certificate=leaf,
            chain=tuple(chain),
            expiry=expiry_level(min(i.not_after for i in (leaf, *chain)), now=now),
            created_at=entry.created_at,
            updated_at=entry.updated_at,
        )

    def check_name(self, name: str) -> None:
        """Refuse a name the store would refuse (``InvalidCertificate`` on ``name``)."""
        check_name(name)

    # -- changing -----------------------------------------------------------------------------

    async def import_pem(
        self,
        name: str,
        cert: bytes,
        key: bytes | None = None,
        chain: bytes | None = None,
        *,
        password: bytes | None = None,
        actor: Actor,
        replace: bool = False,
    ) -> CertificateChange:
        """A certificate from PEM (``--cert``, ``--key``, ``--chain``, or one paste)."""
        return await self._save(
            name,
            lambda now: load_certificate(cert, key, chain, now=now, password=password),
            actor=actor,
            replace=replace,
            how="imported from PEM",
        )

    async def import_pkcs12(
        self,
        name: str,
        data: bytes,
        *,
        password: bytes | None,
        actor: Actor,
        replace: bool = False,
    ) -> CertificateChange:
        return await self._save(
            name,
            lambda now: load_pkcs12(data, password, now=now),
            actor=actor,
            replace=replace,
            how="imported from PKCS#12",
        )

    async def self_signed(
        self,
        name: str,
        *,
        dns: Sequence[str] = (),
        ips: Sequence[str] = (),
        key_kind: KeyKind = KeyKind.ecdsa_p256,
        days: int = DEFAULT_DAYS,
        actor: Actor,
        replace: bool = False,
    ) -> CertificateChange:
        return await self._save(
            name,
            lambda now: self_signed(dns=dns, ips=ips, key_kind=key_kind, days=days, now=now),
            actor=actor,
            replace=replace,
            how="self-signed",
            source=Source.self_signed,
        )

    async def import_ca(
        self, name: str, data: bytes, *, actor: Actor, replace: bool = False
    ) -> CertificateChange:
        """A CA bundle (``client_ca``, ``server_ca``)."""
        return await self._save(
            name,
            lambda now: load_ca_bundle(data, now=now),
            actor=actor,
            replace=replace,
            how="CA bundle",
        )

    async def store_issued(
        self, name: str, bundle: CertificateBundle, *, actor: Actor | str, how: str
    ) -> CertificateChange:
        """A certificate an ACME CA issued: added, or replacing the one of that name."""
        replace = self.store.entry(name) is not None
        return await self._save(
            name, lambda _now: bundle, actor=actor, replace=replace, how=how, source=Source.acme
        )

    async def delete(self, name: str, *, actor: Actor) -> CertificateChange:
        """Remove an entry; refused while a virtual service names it."""
        action = "certificate.delete"
        try:
            self._check_writable()
            async with self.config.reconciler.lock:
                self._entry(name)
                users = self.used_by(name)
                if users:
                    raise InvalidCertificate(
                        "name",
                        f"{name} is used by virtual service{'s' if len(users) > 1 else ''} "
                        f"{', '.join(users)}: change {'them' if len(users) > 1 else 'it'} "
                        "first",
                    )
                self.store.delete(name)
                await self._write_files()
        except BasculeError as exc:
            self._record(actor, action, name, outcome=AuditOutcome.refused, detail=str(exc))
            raise
        self._record(actor, action, name, detail="deleted")
        for forget in self.on_delete:
            forget(name)
        return CertificateChange(details=None, message=f"deleted {name}")

    async def _save(
        self,
        name: str,
        load: Callable[[datetime], CertificateBundle | CaBundle],
        *,
        actor: Actor | str,
        replace: bool,
        how: str,
        source: Source = Source.imported,
    ) -> CertificateChange:
        action = "certificate.replace" if replace else "certificate.add"
        try:
            self._check_writable()
            # parsing, checking (and a new key for a self-signed one) cost CPU: not on the loop
            bundle = await asyncio.to_thread(load, self.clock())
            async with self.config.reconciler.lock:
                now = self.clock()
                if replace:
                    self.store.replace(name, bundle, source=source, at=now)
                else:
                    self.store.add(name, bundle, source=source, at=now)
                await self._write_files()
                swapped, message = await self._swap(name) if replace else ((), "")
        except BasculeError as exc:
            self._record(actor, action, name, outcome=AuditOutcome.refused, detail=str(exc))
            raise
        details = self.show(name)
        self._record(actor, action, name, detail=_summary(how, details))
        self._levels.pop(name, None)  # a new certificate: say its expiry again if it must
        return CertificateChange(details=details, swapped=swapped, message=message)

    def _check_writable(self) -> None:
        """On an HA pair's standby the store follows the active's: writes go there."""
        guard = self.config.changes.guard
        if guard is not None:
            guard()

    async def _write_files(self) -> None:
        await asyncio.to_thread(self.store.write_files, self.directory)

    async def _swap(self, name: str) -> tuple[tuple[str, ...], str]:
        """Serve the rewritten file ``name`` in every running engine that uses it, without a
        reload. The file is already written, so a later reload reads the same; an engine that
        cannot swap is reported (it serves the new file from its next reload)."""
        swapped: list[str] = []
        problems: list[str] = []
        reconciler = self.config.reconciler
        for engine in self.config.engines:
            if not isinstance(engine, CertificateUpdates):
                continue
            try:
                if await engine.certificate_changed(reconciler.running(engine.name), name):
                    swapped.append(engine.name)
            except (EngineError, OSError) as exc:
                log.error(
                    "could not swap a certificate at runtime",
                    extra={"certificate": name, "engine": engine.name, "error": str(exc)},
                )
                problems.append(f"{engine.name}: {exc}")
        message = ""
        if problems:
            message = (
                f"{name} is stored, but not yet served by "
                + "; ".join(problems)
                + " (it is served from the next reload)"
            )
        return tuple(swapped), message

    def _record(
        self,
        actor: Actor | str,
        action: str,
        target: str,
        *,
        outcome: AuditOutcome = AuditOutcome.ok,
        detail: str = "",
    ) -> None:
        if self.audit is not None:
            self.audit.record(actor, action, target, outcome=outcome, detail=detail)

    # -- the engines --------------------------------------------------------------------------

    async def prepare(self) -> None:
        """At the daemon's start: write every entry's file before the engines read them."""
        await self._write_files()

    # -- the document -------------------------------------------------------------------------

    def document_problems(self, config: Configuration) -> list[FieldError]:
        """The ``tls`` names of ``config`` that the store cannot serve, as field errors.

        A certificate must exist, hold its key and, when no service uses it yet, be valid
        (refused for new use, never for running use). ``client_ca`` and ``server_ca`` must be
        CA bundles.
        """
        entries = {entry.name: entry for entry in self.store.entries()}
        in_use = self._usage()
        now = self.clock()
        problems: list[FieldError] = []
        restoring = _RESTORING.get() or {}
        for index, vs in enumerate(config.virtual_services):
            tls = vs.tls
            if tls is None:
                continue
            where = f"virtual_services[{index}].tls"
            for position, name in enumerate(tls.certificates):
                if restoring.get(name) is EntryKind.certificate:
                    continue
                message = _certificate_problem(entries.get(name), name, name in in_use, now)
                if message:
                    problems.append(
                        FieldError(path=f"{where}.certificates[{position}]", message=message)
                    )
            for field in ("client_ca", "server_ca"):
                name = getattr(tls, field)
                if name is None or restoring.get(name) is EntryKind.ca_bundle:
                    continue
                entry = entries.get(name)
                if entry is None:
                    problems.append(
                        FieldError(
                            path=f"{where}.{field}",
                            message=f"there is no CA bundle {name} in the certificate store: "
                            f"add it first (bascule cert ca add {name} --file FILE)",
                        )
                    )
                elif entry.kind is not EntryKind.ca_bundle:
                    problems.append(
                        FieldError(
                            path=f"{where}.{field}",
                            message=f"{name} is a server certificate, not a CA bundle "
                            f"(add one with: bascule cert ca add NAME --file FILE)",
                        )
                    )
        return problems

    # -- expiry -------------------------------------------------------------------------------

    def alerts(self) -> tuple[CertificateAlert, ...]:
        """The entries that expire within 30 days or have expired, soonest first."""
        details = {d.name: d for d in self.entries()}
        warnings = expiry_warnings({n: d.not_after for n, d in details.items()}, now=self.clock())
        return tuple(
            CertificateAlert(
                name=w.name,
                level=w.level.value,
                message=w.message,
                not_after=w.not_after,
                used_by=details[w.name].used_by,
            )
            for w in warnings
        )

    def expiry_seconds(self) -> dict[str, float]:
        """Seconds until each entry expires (negative once expired), for ``/metrics``."""
        now = self.clock()
        return {d.name: (d.not_after - now).total_seconds() for d in self.entries()}

    def log_expiry(self) -> None:
        """Log each entry whose expiry level is new since the last call: a warning at 30
        days, an error at 7 and once expired (an expired certificate in use keeps serving)."""
        levels: dict[str, ExpiryLevel] = {}
        for alert in self.alerts():
            level = ExpiryLevel(alert.level)
            levels[alert.name] = level
            if self._levels.get(alert.name) is level:
                continue
            extra = {
                "certificate": alert.name,
                "level": level.value,
                "not_after": alert.not_after.isoformat() if alert.not_after else "",
                "used_by": ",".join(alert.used_by),
            }
            if level is ExpiryLevel.warning:
                log.warning(alert.message, extra=extra)
            else:
                log.error(alert.message, extra=extra)
        self._levels = levels

    async def watch_expiry(self, interval: float = 3600.0) -> None:
        """The daemon's hourly look at expiry (the log; the status and metrics read live)."""
        while True:
            try:
                self.log_expiry()
            except BasculeError as exc:
                log.error("could not check certificate expiry", extra={"error": str(exc)})
            await asyncio.sleep(interval)

    # -- backups ------------------------------------------------------------------------------

    def export(self, passphrase: str | None) -> dict[str, Any]:
        """The store for a backup: certificates always, keys only sealed with ``passphrase``."""
        return self.store.export(passphrase)

    @staticmethod
    @contextlib.contextmanager
    def restoring(backup: Mapping[str, Any] | None) -> Iterator[None]:
        """While planning a restore (a dry run of its document), the backup's entries count as
        present in the store: the document names them, and the real restore adds them first."""
        if backup is None:
            yield
            return
        entries = backup.get("entries") if isinstance(backup, Mapping) else None
        pending = {
            str(item.get("name")): EntryKind(item["kind"])
            for item in entries or []
            if isinstance(item, Mapping) and item.get("kind") in set(EntryKind)
        }
        token = _RESTORING.set(pending)
        try:
            yield
        finally:
            _RESTORING.reset(token)

    def check_backup(self, backup: Mapping[str, Any], passphrase: str | None) -> str:
        """Whether ``backup`` would restore (its entries readable, its sealed keys opened by
        ``passphrase``), without changing anything; what the restore would say."""
        return self.store.check_backup(backup, passphrase)

    async def restore(
        self, backup: Mapping[str, Any], passphrase: str | None, *, actor: Actor
    ) -> RestoreReport:
        """Put a backup's entries back (others are kept); in-use ones are swapped at runtime."""
        action = "certificate.restore"
        try:
            self._check_writable()
            async with self.config.reconciler.lock:
                before = {e.name: e for e in self.store.entries()}
                report = await asyncio.to_thread(
                    self.store.restore, backup, passphrase, at=self.clock()
                )
                await self._write_files()
                for name in report.restored:
                    if name in before and _changed(before[name], self.store.entry(name)):
                        await self._swap(name)
        except BasculeError as exc:
            self._record(actor, action, "", outcome=AuditOutcome.refused, detail=str(exc))
            raise
        self._record(actor, action, "", detail=report.message)
        return report

    async def replicate(self, entries: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
        """Hold exactly the HA pair's active's entries (daemon/pair.py): stored, files
        written, those in use swapped at runtime; the names that changed."""
        async with self.config.reconciler.lock:
            changed = await asyncio.to_thread(self.store.replicate, entries, at=self.clock())
            if changed:
                await self._write_files()
                for name in changed:
                    if self.store.entry(name) is not None:
                        await self._swap(name)
        return changed


def _chain_of(entry: StoredCertificate) -> list[x509.Certificate]:
    return list(x509.load_pem_x509_certificates(entry.chain_pem)) if entry.chain_pem else []


def _changed(before: StoredCertificate, after: StoredCertificate | None) -> bool:
    return after is None or (before.certificate_pem, before.chain_pem) != (
        after.certificate_pem,
        after.chain_pem,
    )


def _certificate_problem(
    entry: StoredCertificate | None, name: str, in_use: bool, now: datetime
) -> str:
    if entry is None:
        return (
            f"there is no certificate {name} in the certificate store: add it first "
            f"(bascule cert add {name} ...), or name another"
        )
    if entry.kind is not EntryKind.certificate:
        return f"{name} is a CA bundle, not a server certificate with its key"
    if not entry.has_key:
        return (
            f"{name} has no private key in the store (it came from a backup without keys): "
            "import its key or replace it"
        )
    not_after = entry.leaf.not_valid_after_utc
    if not in_use and not_after <= now:
        return (
            f"{name} expired on {not_after:%Y-%m-%d %H:%M} UTC: replace it before a service uses it"
        )
    return ""


def _summary(how: str, details: CertificateDetails) -> str:
    """What the audit log says of a certificate: public facts, never key material."""
    info = details.certificate
    names = ", ".join(info.names) or info.subject
    return (
        f"{how}: {details.kind.value} {info.subject} ({names}), issuer {info.issuer}, "
        f"serial {info.serial}, {info.key_type}, not after {info.not_after:%Y-%m-%d %H:%M} UTC"
    )
