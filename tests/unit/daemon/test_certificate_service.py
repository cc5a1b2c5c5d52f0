"""CertificateService over real stores, the FakeEngine and a recording certificate engine:
imports, refusals, the document's names, deletion while used, the runtime swap, the audit
log (never a key), expiry alerts and the log, backups."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from change_requests import by
from make_certificates import DAY, NOW, Issued, hierarchy, issue

from bascule.daemon.audit import AuditService
from bascule.daemon.certificates import CertificateService
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import FakeEngine
from bascule.errors import InvalidCertificate, InvalidConfiguration, NotFound
from bascule.model import Configuration
from bascule.pki.expiry import ExpiryLevel
from bascule.reconcile.actions import Action
from bascule.store.audit import AuditStore
from bascule.store.certificates import CertificateStore, EntryKind, Source
from bascule.store.revisions import RevisionStore

ADMIN = by("alice").actor


class SwappingEngine(FakeEngine):
    """A FakeEngine that serves certificates and records the runtime swaps asked of it."""

    name = "swapper"

    def __init__(self) -> None:
        super().__init__()
        self.swapped: list[str] = []

    async def certificate_changed(self, applied: Configuration | None, name: str) -> bool:
        uses = applied is not None and any(
            vs.tls is not None and name in vs.tls.store_names for vs in applied.virtual_services
        )
        if uses:
            self.swapped.append(name)
        return uses

    async def execute(self, actions: Sequence[Action], applied: Configuration | None) -> None:
        await super().execute(actions, applied)


@pytest.fixture
def clock() -> list[datetime.datetime]:
    return [NOW]


@pytest.fixture
def parts(
    tmp_path: Path, clock: list[datetime.datetime]
) -> Iterator[tuple[CertificateService, ConfigService, SwappingEngine, AuditStore]]:
    path = tmp_path / "bascule.db"
    with (
        RevisionStore(path) as revisions,
        CertificateStore(path) as store,
        AuditStore(path) as audit_store,
    ):
        engine = SwappingEngine()
        audit = AuditService(audit_store)
        config = ConfigService(
            store=revisions, engines=[engine], vips=NullVipManager(), audit=audit
        )
        service = CertificateService(
            store,
            directory=tmp_path / "certificates",
            config=config,
            audit=audit,
            clock=lambda: clock[0],
        )
        config.attach_certificates(service.document_problems, service.alerts)
        yield service, config, engine, audit_store


@pytest.fixture
def service(
    parts: tuple[CertificateService, ConfigService, SwappingEngine, AuditStore],
) -> CertificateService:
    return parts[0]


def https(*names: str, **tls: Any) -> dict[str, Any]:
    return {
        "virtual_services": [
            {
                "name": "shop",
                "address": "198.18.0.100",
                "port": 443,
                "type": "https",
                "tls": {"certificates": list(names), **tls},
                "real_servers": [{"address": "198.18.0.4", "port": 80}],
            }
        ]
    }


async def add_leaf(
    service: CertificateService, name: str, leaf: Issued, chain: bytes = b""
) -> None:
    await service.import_pem(name, leaf.pem + chain, leaf.key_pem, actor=ADMIN)


async def test_import_describes_and_writes_the_engine_file(
    service: CertificateService, tmp_path: Path
) -> None:
    h = hierarchy()
    change = await service.import_pem(
        "shop", h.leaf.pem, h.leaf.key_pem, h.intermediate.pem, actor=ADMIN
    )
    details = change.details
    assert details is not None
    assert details.kind is EntryKind.certificate and details.has_key
    assert details.certificate.subject == "CN=www.example.test"
    assert [c.subject for c in details.chain] == ["CN=Test Intermediate CA"]
    assert details.expiry is ExpiryLevel.ok
    written = tmp_path / "certificates" / "shop.pem"
    assert written.stat().st_mode & 0o777 == 0o600
    assert written.read_bytes() == h.leaf.pem + h.intermediate.pem + h.leaf.key_pem


async def test_refusals_name_the_input_and_change_nothing(
    service: CertificateService, parts: Any
) -> None:
    h = hierarchy()
    other = issue("other.test")
    with pytest.raises(InvalidCertificate) as caught:
        await service.import_pem("shop", h.leaf.pem, other.key_pem, actor=ADMIN)
    assert caught.value.errors[0].path == "key"
    with pytest.raises(InvalidCertificate) as caught:
        await service.import_pem("Bad Name", h.leaf.pem, h.leaf.key_pem, actor=ADMIN)
    assert caught.value.errors[0].path == "name"
    expired = issue("old.test", not_before=NOW - 90 * DAY, not_after=NOW - DAY)
    with pytest.raises(InvalidCertificate) as caught:
        await add_leaf(service, "old", expired)
    assert caught.value.errors[0].path == "cert"
    assert service.entries() == []
    entries = parts[3].page(0, 10)[0]
    assert [e.outcome.value for e in entries] == ["refused"] * 3


async def test_self_signed_and_ca_bundles(service: CertificateService) -> None:
    change = await service.self_signed(
        "lab", dns=["a.test", "b.test"], ips=["198.18.0.100"], actor=ADMIN
    )
    assert change.details is not None
    assert change.details.source is Source.self_signed
    assert change.details.certificate.dns_names == ("a.test", "b.test")
    h = hierarchy()
    ca = await service.import_ca("corp", h.root.pem + h.intermediate.pem, actor=ADMIN)
    assert ca.details is not None and ca.details.kind is EntryKind.ca_bundle
    assert len(ca.details.chain) == 1
    with pytest.raises(InvalidCertificate, match="already in the certificate store"):
        await service.import_ca("lab", h.root.pem, actor=ADMIN)


async def test_document_names_are_checked_against_the_store(
    service: CertificateService, parts: Any
) -> None:
    config: ConfigService = parts[1]
    h = hierarchy()
    await add_leaf(service, "shop", h.leaf)
    await service.import_ca("corp", h.root.pem, actor=ADMIN)
    with pytest.raises(InvalidConfiguration) as caught:
        await config.apply(
            https(
                "shop",
                "missing",
                "corp",
                client_certificate="required",
                client_ca="shop",
            ),
            by("alice"),
        )
    problems = {e.path: e.message for e in caught.value.errors}
    assert set(problems) == {
        "virtual_services[0].tls.certificates[1]",
        "virtual_services[0].tls.certificates[2]",
        "virtual_services[0].tls.client_ca",
    }
    assert "no certificate missing" in problems["virtual_services[0].tls.certificates[1]"]
    assert (
        "CA bundle, not a server certificate" in problems["virtual_services[0].tls.certificates[2]"]
    )
    assert "not a CA bundle" in problems["virtual_services[0].tls.client_ca"]
    assert config.store.head() is None
    result = await config.apply(https("shop"), by("alice"))
    assert result.applied


async def test_an_expired_certificate_is_refused_for_new_use_not_for_running_use(
    service: CertificateService, parts: Any, clock: list[datetime.datetime]
) -> None:
    config: ConfigService = parts[1]
    short = issue("short.test", not_after=NOW + 2 * DAY)
    await add_leaf(service, "short", short)
    await add_leaf(service, "spare", issue("spare.test", not_after=NOW + 2 * DAY))
    await config.apply(https("short"), by("alice"))
    clock[0] = NOW + 3 * DAY
    # the running one stays usable in a new revision; a new use of an expired one is refused
    document = https("short")
    document["virtual_services"][0]["real_servers"].append({"address": "198.18.0.5", "port": 80})
    assert (await config.apply(document, by("alice"))).applied
    with pytest.raises(InvalidConfiguration, match="spare expired on"):
        await config.apply(https("short", "spare"), by("alice"))
    alerts = (await config.status()).certificates
    assert [(a.name, a.level, a.used_by) for a in alerts] == [
        ("short", "expired", ("shop",)),
        ("spare", "expired", ()),
    ]


async def test_delete_is_refused_while_used(service: CertificateService, parts: Any) -> None:
    config: ConfigService = parts[1]
    await add_leaf(service, "shop", hierarchy().leaf)
    await config.apply(https("shop"), by("alice"))
    assert service.used_by("shop") == ("shop",)
    with pytest.raises(InvalidCertificate, match="used by virtual service shop"):
        await service.delete("shop", actor=ADMIN)
    await config.apply({"virtual_services": []}, by("alice"))
    await service.delete("shop", actor=ADMIN)
    with pytest.raises(NotFound):
        service.show("shop")


async def test_replace_swaps_at_runtime_only_what_runs(
    service: CertificateService, parts: Any, tmp_path: Path
) -> None:
    config: ConfigService = parts[1]
    engine: SwappingEngine = parts[2]
    await add_leaf(service, "shop", issue("shop.test"))
    await add_leaf(service, "idle", issue("idle.test"))
    await config.apply(https("shop"), by("alice"))
    new = issue("shop.test")
    change = await service.import_pem("shop", new.pem, new.key_pem, actor=ADMIN, replace=True)
    assert change.swapped == ("swapper",)
    assert (tmp_path / "certificates" / "shop.pem").read_bytes() == new.pem + new.key_pem
    await service.import_pem("idle", new.pem, new.key_pem, actor=ADMIN, replace=True)
    assert engine.swapped == ["shop"]
    with pytest.raises(InvalidCertificate, match="replace it with one"):
        await service.import_ca("shop", hierarchy().root.pem, actor=ADMIN, replace=True)


async def test_the_audit_log_never_holds_key_material(
    service: CertificateService, parts: Any, tmp_path: Path
) -> None:
    h = hierarchy()
    await add_leaf(service, "shop", h.leaf, h.intermediate.pem)
    await service.self_signed("lab", dns=["lab.test"], actor=ADMIN)
    await service.delete("lab", actor=ADMIN)
    entries = parts[3].page(0, 10)[0]
    assert [(e.action, e.target, e.actor) for e in entries] == [
        ("certificate.delete", "lab", "alice"),
        ("certificate.add", "lab", "alice"),
        ("certificate.add", "shop", "alice"),
    ]
    assert "serial" in entries[2].detail and "CN=www.example.test" in entries[2].detail
    text = repr(entries)
    assert "PRIVATE KEY" not in text and "BEGIN" not in text


async def test_expiry_levels_reach_the_log_once_per_level(
    service: CertificateService, clock: list[datetime.datetime], caplog: pytest.LogCaptureFixture
) -> None:
    await add_leaf(service, "soon", issue("soon.test", not_after=NOW + 20 * DAY))
    caplog.set_level(logging.WARNING, logger="bascule.certificates")
    service.log_expiry()
    service.log_expiry()
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "expires in 20 days" in caplog.records[0].getMessage()
    clock[0] = NOW + 15 * DAY
    service.log_expiry()
    assert [r.levelname for r in caplog.records] == ["WARNING", "ERROR"]
    seconds = service.expiry_seconds()["soon"]
    assert seconds == pytest.approx(5 * 86400)


async def test_backup_without_keys_says_so_and_with_keys_restores_them(
    service: CertificateService,
) -> None:
    leaf = issue("shop.test")
    await add_leaf(service, "shop", leaf)
    plain = service.export(None)
    assert plain["keys"] is None
    assert "PRIVATE KEY" not in repr(plain)
    await service.delete("shop", actor=ADMIN)
    report = await service.restore(plain, None, actor=ADMIN)
    assert "carries no private keys" in report.message and report.without_key == ("shop",)
    assert not service.show("shop").has_key
    await service.import_pem("shop", leaf.pem, leaf.key_pem, actor=ADMIN, replace=True)
    sealed = service.export("a long enough passphrase")
    assert "PRIVATE KEY" not in repr(sealed)
    await service.delete("shop", actor=ADMIN)
    with pytest.raises(InvalidCertificate, match="passphrase"):
        await service.restore(sealed, None, actor=ADMIN)
    report = await service.restore(sealed, "a long enough passphrase", actor=ADMIN)
    assert report.keys_in_backup and not report.without_key
    assert service.show("shop").has_key
