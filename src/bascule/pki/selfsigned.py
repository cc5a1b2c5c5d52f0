"""Self-signed server certificates for ``bascule cert self-signed NAME --dns a,b --ip ...``.

ECDSA P-256 unless told otherwise (fast handshakes, accepted by every current client); RSA
2048, 3072 or 4096 for clients that need RSA. The first DNS name (else the first address) is
the common name; every name and address is a subject alternative name, which is what clients
check. Pure: ``now`` is passed in.
"""

from __future__ import annotations

import datetime
import enum
import ipaddress
import re
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bascule.errors import InvalidCertificate
from bascule.pki.certificates import CertificateBundle, ServerKey

DEFAULT_DAYS = 365
MAX_DAYS = 3650
# A DNS name, optionally with a wildcard as the whole left-most label.
_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)(?:\*\.)?(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)


class KeyKind(enum.StrEnum):
    """The key a generated certificate gets (``--key-type``)."""

    ecdsa_p256 = "ecdsa-p256"
    rsa_2048 = "rsa-2048"
    rsa_3072 = "rsa-3072"
    rsa_4096 = "rsa-4096"


_RSA_BITS = {KeyKind.rsa_2048: 2048, KeyKind.rsa_3072: 3072, KeyKind.rsa_4096: 4096}


def self_signed(
    *,
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
    key_kind: KeyKind = KeyKind.ecdsa_p256,
    days: int = DEFAULT_DAYS,
    now: datetime.datetime,
) -> CertificateBundle:
    """A new key and a self-signed certificate naming ``dns`` and ``ips``."""
    names = _names(dns, ips)
    if not 1 <= days <= MAX_DAYS:
        raise InvalidCertificate("days", f"must be between 1 and {MAX_DAYS}")
    key = _new_key(key_kind)
    common_name = dns[0] if dns else str(ipaddress.ip_address(ips[0]))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    certificate = sign_self_signed(key, subject=subject, names=names, now=now, days=days)
    return CertificateBundle(certificate=certificate, key=key, chain=())


def sign_self_signed(
    key: ServerKey,
    *,
    subject: x509.Name,
    names: Sequence[x509.GeneralName],
    now: datetime.datetime,
    days: int,
) -> x509.Certificate:
    """A self-signed server certificate for ``key`` (names already checked by the caller)."""
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        # A few minutes back, so a client whose clock is a little behind accepts it at once.
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _names(dns: Sequence[str], ips: Sequence[str]) -> list[x509.GeneralName]:
    if not dns and not ips:
        raise InvalidCertificate("dns", "give at least one DNS name or IP address")
    names: list[x509.GeneralName] = []
    for value in dns:
        if not _DNS_NAME.fullmatch(value):
            raise InvalidCertificate(
                "dns", f"{value!r} is not a DNS name such as www.example.com or *.example.com"
            )
        names.append(x509.DNSName(value.lower()))
    for value in ips:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            raise InvalidCertificate("ip", f"{value!r} is not an IPv4 or IPv6 address") from None
    return names


def _new_key(kind: KeyKind) -> ServerKey:
    if kind is KeyKind.ecdsa_p256:
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[kind])
