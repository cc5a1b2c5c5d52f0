"""Real certificates made in the tests: a root CA, an intermediate, server leaves (cryptography).

Imported by the certificate tests (``pki/``, ``store/``) as ``make_certificates``: pytest puts
``tests/unit`` on the path for ``tests/unit/conftest.py``.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    key: Key

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def encrypted_key_pem(self, password: bytes) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )


def ec_key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def issue(
    common_name: str,
    *,
    issuer: Issued | None = None,
    key: Key | None = None,
    ca: bool = False,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    not_before: datetime.datetime = NOW - 30 * DAY,
    not_after: datetime.datetime = NOW + 60 * DAY,
) -> Issued:
    """A certificate for ``common_name``, self-signed unless ``issuer`` is given."""
    key = key or ec_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signer_name = issuer.certificate.subject if issuer else name
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(signer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), False
        )
    )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(builder.sign(signer_key, hashes.SHA256()), key)


@dataclass(frozen=True)
class Hierarchy:
    """root -> intermediate -> leaf (www.example.test, 198.18.0.100)."""

    root: Issued
    intermediate: Issued
    leaf: Issued


def hierarchy(now: datetime.datetime = NOW) -> Hierarchy:
    """The three certificates, valid from 30 days before ``now`` to 60 days after."""
    valid = {"not_before": now - 30 * DAY, "not_after": now + 60 * DAY}
    root = issue("Test Root CA", ca=True, **valid)
    intermediate = issue("Test Intermediate CA", issuer=root, ca=True, **valid)
    leaf = issue(
        "www.example.test",
        issuer=intermediate,
        dns=("www.example.test", "*.shop.example.test"),
        ips=("198.18.0.100",),
        **valid,
    )
    return Hierarchy(root=root, intermediate=intermediate, leaf=leaf)
