"""The ``tls`` section: its own validation, and the cipher set table."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bascule.model.tls import (
    CIPHER_SETS,
    CipherSet,
    Tls,
    TlsVersion,
)


def tls(**fields: Any) -> Tls:
    return Tls.model_validate({"certificates": ["shop"], **fields})


def refused(match: str) -> pytest.RaisesContext[ValidationError]:
    return pytest.raises(ValidationError, match=match)


def test_the_issue_example_is_valid() -> None:
    section = Tls.model_validate(
        {
            "certificates": ["shop", "shop-old"],
            "min_version": "tls1.2",
            "max_version": "tls1.3",
            "cipher_set": "intermediate",
            "http2": True,
            "hsts": 31536000,
            "redirect_http": True,
            "client_certificate": "none",
            "reencrypt": False,
            "verify_server": "none",
            "server_sni": "",
        }
    )
    assert section.store_names == ("shop", "shop-old")
    assert section.profile is CIPHER_SETS[CipherSet.intermediate]


def test_defaults() -> None:
    section = tls()
    assert section.cipher_set is CipherSet.intermediate
    assert section.min_version is None
    assert section.effective_min_version is TlsVersion.tls1_2
    assert section.max_version is TlsVersion.tls1_3
    assert (section.http2, section.hsts, section.redirect_http, section.reencrypt) == (
        False,
        0,
        False,
        False,
    )


def test_yaml_numbers_are_versions() -> None:
    assert tls(min_version=1.2).min_version is TlsVersion.tls1_2


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"certificates": []}, "at least 1 item"),
        ({"certificates": ["shop", "shop"]}, r"\[1\]: shop is listed twice"),
        ({"certificates": ["Shop"]}, "must be 1 to 63 characters"),
        (
            {"min_version": "tls1.3", "max_version": "tls1.2"},
            "max_version: tls1.2 is below min_version",
        ),
        ({"cipher_set": "modern", "max_version": "tls1.2"}, "below what cipher_set modern allows"),
        ({"cipher_set": "modern", "min_version": "tls1.2"}, "min_version: tls1.2 is below"),
        ({"min_version": "tls1.1"}, "min_version: tls1.1 is below what cipher_set intermediate"),
        ({"min_version": "ssl3"}, "Input should be 'tls1.0'"),
        ({"hsts": -1}, "between 0 and"),
        ({"hsts": True}, "not true/false"),
        ({"client_certificate": "required"}, "client_ca: client_certificate required needs"),
        ({"client_certificate": "optional"}, "client_ca: client_certificate optional needs"),
        ({"client_ca": "corp-ca"}, "client_ca: only used with client_certificate"),
        ({"verify_server": "required"}, "verify_server: only used with reencrypt"),
        ({"server_sni": "api.example.test"}, "server_sni: only used with reencrypt"),
        ({"reencrypt": True, "verify_server": "required"}, "server_ca: verify_server required"),
        ({"reencrypt": True, "server_ca": "corp-ca"}, "server_ca: only used with verify_server"),
        ({"reencrypt": True, "server_sni": "198.18.0.4"}, "must be a DNS name"),
        ({"reencrypt": True, "server_sni": "api.example.test:443"}, "must be a DNS name"),
        ({"reencrypt": True, "server_sni": "a\nb"}, "must be a DNS name"),
        ({"unknown": 1}, "Extra inputs are not permitted"),
    ],
)
def test_refusals(fields: dict[str, Any], match: str) -> None:
    with refused(match):
        tls(**fields)


def test_old_allows_tls_1_0_and_full_options_are_valid() -> None:
    section = tls(
        cipher_set="old",
        min_version="tls1.0",
        client_certificate="required",
        client_ca="corp-ca",
        reencrypt=True,
        verify_server="required",
        server_ca="servers-ca",
        server_sni="API.example.test",
    )
    assert section.server_sni == "api.example.test"
    assert section.store_names == ("shop", "corp-ca", "servers-ca")


def test_every_cipher_set_has_a_profile() -> None:
    assert set(CIPHER_SETS) == set(CipherSet)


def test_the_profiles_are_mozillas_5_7() -> None:
    modern = CIPHER_SETS[CipherSet.modern]
    intermediate = CIPHER_SETS[CipherSet.intermediate]
    old = CIPHER_SETS[CipherSet.old]
    assert modern.ciphers == () and modern.min_version is TlsVersion.tls1_3
    # 5.7 appended DHE-RSA-CHACHA20-POLY1305 to intermediate
    assert intermediate.ciphers[-1] == "DHE-RSA-CHACHA20-POLY1305"
    assert len(intermediate.ciphers) == 9
    assert old.ciphers[: len(intermediate.ciphers)] == intermediate.ciphers
    assert old.ciphers[-1] == "DES-CBC3-SHA" and len(old.ciphers) == 26
    assert old.server_preference and old.legacy_security_level == 0
    for profile in (modern, intermediate, old):
        assert profile.ciphersuites == (
            "TLS_AES_128_GCM_SHA256",
            "TLS_AES_256_GCM_SHA384",
            "TLS_CHACHA20_POLY1305_SHA256",
        )


def test_fips_uses_approved_algorithms_only() -> None:
    fips = CIPHER_SETS[CipherSet.fips]
    names = fips.ciphers + fips.ciphersuites + fips.curves
    assert not [n for n in names if "CHACHA" in n or "X25519" in n or "SHA1" in n]
    assert all("GCM" in c for c in fips.ciphers + fips.ciphersuites)
