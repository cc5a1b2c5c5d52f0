"""What a certificate is shown as, whether its names cover a host, generation and expiry."""

from __future__ import annotations

import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from make_certificates import DAY, NOW, hierarchy, issue

from bascule.errors import InvalidCertificate
from bascule.pki.certificates import load_certificate
from bascule.pki.describe import check_covers, covers, days_left, describe
from bascule.pki.expiry import ExpiryLevel, expiry_level, expiry_warnings
from bascule.pki.selfsigned import KeyKind, self_signed


def test_describe_shows_what_a_person_needs() -> None:
    pki = hierarchy()
    info = describe(pki.leaf.certificate, now=NOW)
    assert info.subject == "CN=www.example.test"
    assert info.dns_names == ("www.example.test", "*.shop.example.test")
    assert info.ip_addresses == ("198.18.0.100",)
    assert info.issuer == "CN=Test Intermediate CA"
    assert info.not_after == NOW + 60 * DAY
    assert info.days_left == 60
    assert info.key_type == "ECDSA P-256"
    assert info.serial == f"{pki.leaf.certificate.serial_number:X}"
    assert len(info.fingerprint) == 32 * 3 - 1
    assert not info.self_signed and not info.is_ca
    root = describe(pki.root.certificate, now=NOW)
    assert root.self_signed and root.is_ca


def test_days_left_rounds_down_and_goes_negative() -> None:
    assert days_left(NOW + DAY - datetime.timedelta(seconds=1), now=NOW) == 0
    assert days_left(NOW - datetime.timedelta(seconds=1), now=NOW) == -1


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("www.example.test", True),
        ("WWW.Example.Test.", True),
        ("a.shop.example.test", True),
        ("shop.example.test", False),  # the wildcard needs a label
        ("a.b.shop.example.test", False),  # and stands for one label only
        ("example.test", False),
        ("198.18.0.100", True),
        ("198.18.0.101", False),
    ],
)
def test_covers_follows_rfc_6125(host: str, expected: bool) -> None:
    assert covers(hierarchy().leaf.certificate, host) is expected


def test_a_certificate_not_covering_server_sni_is_refused() -> None:
    leaf = hierarchy().leaf.certificate
    check_covers(leaf, "www.example.test")
    with pytest.raises(InvalidCertificate, match=r"^server_sni: 'api.example.test' is not among"):
        check_covers(leaf, "api.example.test")


def test_the_common_name_counts_only_without_alternative_names() -> None:
    assert covers(issue("legacy.example.test").certificate, "legacy.example.test")
    assert not covers(hierarchy().leaf.certificate, "Test Intermediate CA")


def test_self_signed_defaults_to_ecdsa_p256_and_names_everything() -> None:
    bundle = self_signed(dns=["shop.example.test", "*.example.test"], ips=["198.18.0.100"], now=NOW)
    info = describe(bundle.certificate, now=NOW)
    assert info.key_type == "ECDSA P-256"
    assert info.subject == "CN=shop.example.test"
    assert info.names == ("shop.example.test", "*.example.test", "198.18.0.100")
    assert info.days_left == 365
    assert info.self_signed and not info.is_ca
    # what it makes passes the same checks as an import
    again = load_certificate(bundle.certificate_pem, bundle.key_pem, now=NOW)
    assert again.certificate == bundle.certificate


@pytest.mark.parametrize(("kind", "bits"), [(KeyKind.rsa_2048, 2048), (KeyKind.rsa_3072, 3072)])
def test_self_signed_rsa(kind: KeyKind, bits: int) -> None:
    bundle = self_signed(ips=["2001:2::1"], key_kind=kind, now=NOW)
    assert isinstance(bundle.key, rsa.RSAPrivateKey)
    assert bundle.key.key_size == bits
    assert describe(bundle.certificate, now=NOW).subject == "CN=2001:2::1"


@pytest.mark.parametrize(
    ("dns", "ips", "field"),
    [
        ([], [], "dns"),
        (["bad name"], [], "dns"),
        (["a.*.example"], [], "dns"),
        ([], ["1.2.3"], "ip"),
    ],
)
def test_self_signed_refuses_bad_names(dns: list[str], ips: list[str], field: str) -> None:
    with pytest.raises(InvalidCertificate, match=f"^{field}: "):
        self_signed(dns=dns, ips=ips, now=NOW)


@pytest.mark.parametrize(
    ("left", "level"),
    [
        (datetime.timedelta(days=31), ExpiryLevel.ok),
        (datetime.timedelta(days=30), ExpiryLevel.warning),
        (datetime.timedelta(days=8), ExpiryLevel.warning),
        (datetime.timedelta(days=7), ExpiryLevel.critical),
        (datetime.timedelta(seconds=1), ExpiryLevel.critical),
        (datetime.timedelta(0), ExpiryLevel.expired),
        (-DAY, ExpiryLevel.expired),
    ],
)
def test_expiry_levels_at_30_and_7_days(left: datetime.timedelta, level: ExpiryLevel) -> None:
    assert expiry_level(NOW + left, now=NOW) is level


def test_expiry_warnings_soonest_first_with_messages() -> None:
    warnings = expiry_warnings(
        {"fine": NOW + 90 * DAY, "soon": NOW + 20 * DAY, "gone": NOW - DAY, "now": NOW + DAY},
        now=NOW,
    )
    assert [(w.name, w.level) for w in warnings] == [
        ("gone", ExpiryLevel.expired),
        ("now", ExpiryLevel.critical),
        ("soon", ExpiryLevel.warning),
    ]
    assert warnings[0].seconds_left == -86400
    assert warnings[0].message.startswith("certificate gone expired on 2026-05-31 12:00 UTC")
    assert warnings[1].message.startswith("certificate now expires in 1 day (")
    assert "in 20 days" in warnings[2].message
