"""Certificates in, checked bundles out, and every refusal with the field it blames."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from make_certificates import DAY, NOW, Hierarchy, hierarchy, issue

from bascule.errors import InvalidCertificate, InvalidConfiguration
from bascule.pki.certificates import load_ca_bundle, load_certificate, load_pkcs12


@pytest.fixture(scope="module")
def pki() -> Hierarchy:
    return hierarchy()


def refused(field: str, match: str) -> pytest.RaisesContext[InvalidCertificate]:
    """An InvalidCertificate whose single field error is ``field`` and matches ``match``."""
    return pytest.raises(InvalidCertificate, match=f"^{field}: .*{match}")


def test_a_certificate_with_key_and_chain_is_accepted_and_normalised(pki: Hierarchy) -> None:
    bundle = load_certificate(pki.leaf.pem, pki.leaf.key_pem, pki.intermediate.pem, now=NOW)
    assert bundle.certificate == pki.leaf.certificate
    assert bundle.chain == (pki.intermediate.certificate,)
    assert bundle.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    pem = bundle.engine_pem()
    assert pem.index(b"BEGIN CERTIFICATE") < pem.index(b"BEGIN PRIVATE KEY")
    assert pem.count(b"BEGIN CERTIFICATE") == 2


def test_a_fullchain_file_and_a_combined_pem_are_read(pki: Hierarchy) -> None:
    fullchain = pki.leaf.pem + pki.intermediate.pem + pki.root.pem
    bundle = load_certificate(fullchain + pki.leaf.key_pem, now=NOW)
    assert bundle.chain == (pki.intermediate.certificate, pki.root.certificate)


def test_the_error_is_an_invalid_configuration_naming_the_field(pki: Hierarchy) -> None:
    with pytest.raises(InvalidConfiguration) as caught:
        load_certificate(pki.leaf.pem, pki.root.key_pem, now=NOW)
    assert [e.path for e in caught.value.errors] == ["key"]


def test_a_key_that_does_not_match_the_certificate_is_refused(pki: Hierarchy) -> None:
    with refused("key", "does not match the certificate"):
        load_certificate(pki.leaf.pem, pki.intermediate.key_pem, now=NOW)


def test_no_key_at_all_is_refused(pki: Hierarchy) -> None:
    with refused("key", "no private key given"):
        load_certificate(pki.leaf.pem, now=NOW)


def test_an_encrypted_key_needs_its_password(pki: Hierarchy) -> None:
    encrypted = pki.leaf.encrypted_key_pem(b"right password")
    with refused("key", "encrypted: give its password"):
        load_certificate(pki.leaf.pem, encrypted, now=NOW)
    with refused("key", "wrong password"):
        load_certificate(pki.leaf.pem, encrypted, now=NOW, password=b"wrong")
    bundle = load_certificate(pki.leaf.pem, encrypted, now=NOW, password=b"right password")
    assert bundle.certificate == pki.leaf.certificate
    # a password given for a key that needs none is not in the way
    plain = load_certificate(pki.leaf.pem, pki.leaf.key_pem, now=NOW, password=b"unneeded")
    assert plain.key_pem == bundle.key_pem


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"hello world\n", "is not PEM"),
        (b"", "is empty"),
        (b"0\x82\x03\x1e0\x82", "looks like DER"),
        (
            b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
            "certificate 1 is damaged",
        ),
    ],
)
def test_garbage_pem_is_refused(pki: Hierarchy, data: bytes, match: str) -> None:
    with refused("cert", match):
        load_certificate(data, pki.leaf.key_pem, now=NOW)


def test_a_garbage_key_is_refused(pki: Hierarchy) -> None:
    garbage = b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
    with refused("key", "not a readable private key"):
        load_certificate(pki.leaf.pem, garbage, now=NOW)


def test_a_chain_out_of_order_is_refused(pki: Hierarchy) -> None:
    with refused("chain", "out of order"):
        load_certificate(
            pki.leaf.pem, pki.leaf.key_pem, pki.root.pem + pki.intermediate.pem, now=NOW
        )


def test_a_chain_that_does_not_lead_to_the_leaf_is_refused(pki: Hierarchy) -> None:
    stranger = issue("Other CA", ca=True)
    with refused("chain", "does not lead to the certificate"):
        load_certificate(pki.leaf.pem, pki.leaf.key_pem, stranger.pem, now=NOW)
    # the root alone skips the intermediate that issued the leaf
    with refused("chain", "does not lead to the certificate"):
        load_certificate(pki.leaf.pem, pki.leaf.key_pem, pki.root.pem, now=NOW)


def test_an_expired_or_future_certificate_is_refused_for_new_use(pki: Hierarchy) -> None:
    expired = issue("old.example.test", issuer=pki.intermediate, not_after=NOW - DAY)
    with refused("cert", "expired on"):
        load_certificate(expired.pem, expired.key_pem, now=NOW)
    future = issue("new.example.test", issuer=pki.intermediate, not_before=NOW + DAY)
    with refused("cert", "not valid yet"):
        load_certificate(future.pem, future.key_pem, now=NOW)


def test_an_expired_intermediate_is_refused(pki: Hierarchy) -> None:
    old = issue(
        "Test Intermediate CA",
        issuer=pki.root,
        key=pki.intermediate.key,
        ca=True,
        not_after=NOW - DAY,
    )
    with refused("chain", "certificate 1 .* expired"):
        load_certificate(pki.leaf.pem, pki.leaf.key_pem, old.pem, now=NOW)


def test_rsa_under_2048_bits_is_refused() -> None:
    small = issue("small.example.test", key=rsa.generate_private_key(65537, 1024))
    with refused("key", "at least 2048 bits; this one has 1024"):
        load_certificate(small.pem, small.key_pem, now=NOW)


def test_rsa_2048_is_accepted() -> None:
    enough = issue("rsa.example.test", key=rsa.generate_private_key(65537, 2048))
    assert load_certificate(enough.pem, enough.key_pem, now=NOW).certificate == enough.certificate


def test_an_ed25519_key_is_refused() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with refused("key", "Ed25519 keys are not accepted"):
        load_certificate(issue("x.example.test").pem, pem, now=NOW)


def _p12(pki: Hierarchy, password: bytes, extra: list[object] | None = None) -> bytes:
    return pkcs12.serialize_key_and_certificates(
        b"shop",
        pki.leaf.key,  # type: ignore[arg-type]
        pki.leaf.certificate,
        extra if extra is not None else [pki.root.certificate, pki.intermediate.certificate],  # type: ignore[arg-type]
        serialization.BestAvailableEncryption(password),
    )


def test_pkcs12_with_its_password_gives_the_chain_in_issuing_order(pki: Hierarchy) -> None:
    bundle = load_pkcs12(_p12(pki, b"secret"), b"secret", now=NOW)
    assert bundle.certificate == pki.leaf.certificate
    assert bundle.chain == (pki.intermediate.certificate, pki.root.certificate)


def test_pkcs12_with_a_wrong_password_is_refused(pki: Hierarchy) -> None:
    data = _p12(pki, b"secret")
    with refused("pkcs12", "wrong password"):
        load_pkcs12(data, b"not it", now=NOW)
    with refused("pkcs12", "wrong password"):
        load_pkcs12(data, None, now=NOW)
    with refused("pkcs12", "wrong password, or not a PKCS#12 file"):
        load_pkcs12(b"garbage", b"secret", now=NOW)


def test_pkcs12_with_an_unrelated_chain_is_refused(pki: Hierarchy) -> None:
    stranger = issue("Other CA", ca=True)
    with refused("chain", "does not lead"):
        load_pkcs12(_p12(pki, b"pw", [stranger.certificate]), b"pw", now=NOW)


def test_a_ca_bundle_is_read_and_refuses_expired_members(pki: Hierarchy) -> None:
    bundle = load_ca_bundle(pki.root.pem + pki.intermediate.pem, now=NOW)
    assert bundle.certificates == (pki.root.certificate, pki.intermediate.certificate)
    assert bundle.pem.count(b"BEGIN CERTIFICATE") == 2
    expired = issue("Expired CA", ca=True, not_after=NOW - DAY)
    with refused("ca", r"certificate 2 \(CN=Expired CA\) expired"):
        load_ca_bundle(pki.root.pem + expired.pem, now=NOW)
    with refused("ca", "is not PEM"):
        load_ca_bundle(b"nothing here", now=NOW)
