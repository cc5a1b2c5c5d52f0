"""AcmeService's decisions without a CA: identifiers, when an order is due (two thirds of
the lifetime), the backoff after failures with the CA's words kept, the status alert, and the
order forgotten with its certificate. The protocol itself runs against pebble
(tests/integration/test_tls_acme.py)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from acme import messages
from change_requests import by
from make_certificates import NOW, issue

from bascule.daemon.acme import BACKOFF, AcmeService, _ca_words, _identifiers
from bascule.daemon.certificates import CertificateService
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import FakeEngine
from bascule.errors import AcmeFailed, InvalidCertificate
from bascule.store.acme import AcmeStore, OrderState
from bascule.store.certificates import CertificateStore
from bascule.store.revisions import RevisionStore

ADMIN = by("alice").actor
HOUR = datetime.timedelta(hours=1)


@pytest.fixture
def clock() -> list[datetime.datetime]:
    return [NOW]


@pytest.fixture
def service(tmp_path: Path, clock: list[datetime.datetime]) -> Iterator[AcmeService]:
    path = tmp_path / "bascule.db"
    with RevisionStore(path) as revisions, CertificateStore(path) as store, AcmeStore(path) as acme:
        config = ConfigService(store=revisions, engines=[FakeEngine()], vips=NullVipManager())
        certificates = CertificateService(
            store, directory=tmp_path / "certificates", config=config, clock=lambda: clock[0]
        )
        yield AcmeService(acme, certificates=certificates, clock=lambda: clock[0])


def issued(service: AcmeService, hours: int) -> Any:
    """What a CA would issue now: valid for ``hours``."""
    now = service.clock()
    leaf = issue("shop.test", dns=("shop.test",), not_before=now, not_after=now + hours * HOUR)
    return leaf.pem, leaf.key_pem


def test_identifiers_are_names_or_addresses() -> None:
    assert _identifiers(["Shop.Test.", "198.18.0.100", "shop.test", "2001:2::0:1"]) == (
        "shop.test",
        "198.18.0.100",
        "2001:2::1",
    )
    for bad in ([], ["not a name"], ["-x.test"]):
        with pytest.raises(InvalidCertificate, match="domain"):
            _identifiers(bad)


def test_the_cas_words_are_kept() -> None:
    error = messages.Error(
        typ="urn:ietf:params:acme:error:rejectedIdentifier",
        detail='Order included an identifier forbidden by policy: "blocked.test"',
    )
    assert _ca_words(error) == (
        'the CA refused: Order included an identifier forbidden by policy: "blocked.test" '
        "(rejectedIdentifier)"
    )


async def test_issue_then_renew_at_two_thirds_of_the_lifetime(
    service: AcmeService, clock: list[datetime.datetime], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fake_issue(order: Any) -> tuple[bytes, bytes]:
        return issued(service, 90)

    monkeypatch.setattr(service, "_issue", fake_issue)
    change = await service.request(
        "shop",
        domains=["shop.test"],
        email="admin@shop.test",
        directory="https://ca/dir",
        actor=ADMIN,
    )
    assert change.details is not None and change.details.source.value == "acme"
    order = service.order("shop")
    assert order is not None and order.state is OrderState.valid
    clock[0] = NOW + 59 * HOUR
    assert service.due() == []
    clock[0] = NOW + 61 * HOUR
    assert [o.name for o in service.due()] == ["shop"]
    await service.renew_due()
    assert service.due() == []


async def test_failures_back_off_and_show_the_cas_words(
    service: AcmeService, clock: list[datetime.datetime], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(order: Any) -> tuple[bytes, bytes]:
        raise AcmeFailed("the CA refused: no way (rejectedIdentifier)")

    monkeypatch.setattr(service, "_issue", refused)
    with pytest.raises(AcmeFailed):
        await service.request(
            "shop", domains=["shop.test"], email="a@b.test", directory="https://ca/dir", actor=ADMIN
        )
    order = service.order("shop")
    assert order is not None and order.state is OrderState.failed and order.failures == 1
    assert order.next_attempt == NOW + BACKOFF[0]
    (alert,) = service.alerts()
    assert alert.level == "acme_failed" and "no way (rejectedIdentifier)" in alert.message
    assert service.due() == []
    clock[0] = NOW + BACKOFF[0]
    await service.renew_due()  # fails again: logged, not raised
    order = service.order("shop")
    assert order is not None and order.failures == 2
    assert order.next_attempt == clock[0] + BACKOFF[1]


async def test_deleting_the_certificate_forgets_its_order(
    service: AcmeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fake_issue(order: Any) -> tuple[bytes, bytes]:
        return issued(service, 90)

    monkeypatch.setattr(service, "_issue", fake_issue)
    await service.request(
        "shop", domains=["shop.test"], email="a@b.test", directory="https://ca/dir", actor=ADMIN
    )
    await service.certificates.delete("shop", actor=ADMIN)
    assert service.order("shop") is None


async def test_a_name_taken_by_another_kind_of_entry_is_refused(service: AcmeService) -> None:
    await service.certificates.self_signed("shop", dns=["shop.test"], actor=ADMIN)
    with pytest.raises(InvalidCertificate, match="not from ACME"):
        await service.request(
            "shop", domains=["shop.test"], email="a@b.test", directory="https://ca/dir", actor=ADMIN
        )
    with pytest.raises(InvalidCertificate, match="directory"):
        await service.request(
            "x", domains=["x.test"], email="a@b.test", directory="http://ca/dir", actor=ADMIN
        )
