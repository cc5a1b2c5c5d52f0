"""What a person is shown about a certificate, and whether its names cover a host (pure).

``describe`` gives the columns of ``bascule cert list`` and the Certificates page (subject,
names, issuer, not-after, days left, key type, serial, fingerprint). ``covers`` matches a host
name or address against the certificate's names as a TLS client does (RFC 6125: the subject
alternative names, a wildcard only as the whole left-most label; the common name only when
there are no DNS names, as OpenSSL's ``X509_check_host`` still does).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from bascule.errors import InvalidCertificate
from bascule.pki.certificates import key_description

_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True, kw_only=True)
class CertificateInfo:
    """A certificate as shown to a person; nothing secret."""

    subject: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    issuer: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    days_left: int  # whole days until not_after; negative once expired
    key_type: str  # "ECDSA P-256", "RSA 2048"
    serial: str  # hexadecimal, as `openssl x509 -serial` prints it
    fingerprint: str  # SHA-256 of the DER certificate, "AB:CD:..."
    self_signed: bool
    is_ca: bool

    @property
    def names(self) -> tuple[str, ...]:
        """The DNS names then the addresses (the subject alternative names)."""
        return (*self.dns_names, *self.ip_addresses)


def describe(certificate: x509.Certificate, *, now: datetime.datetime) -> CertificateInfo:
    dns_names, ip_addresses = _alternative_names(certificate)
    return CertificateInfo(
        subject=certificate.subject.rfc4514_string(),
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        issuer=certificate.issuer.rfc4514_string(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        days_left=days_left(certificate.not_valid_after_utc, now=now),
        key_type=key_description(certificate),
        serial=f"{certificate.serial_number:X}",
        fingerprint=fingerprint(certificate),
        self_signed=certificate.subject == certificate.issuer,
        is_ca=_is_ca(certificate),
    )


def fingerprint(certificate: x509.Certificate) -> str:
    """The SHA-256 fingerprint of the DER certificate, ``AB:CD:...``."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def days_left(not_after: datetime.datetime, *, now: datetime.datetime) -> int:
    """Whole days from ``now`` to ``not_after``, rounded down; negative once past."""
    return (not_after - now) // _DAY


def covers(certificate: x509.Certificate, host: str) -> bool:
    """Whether a client connecting to ``host`` (a name or an address) accepts the names."""
    dns_names, ip_addresses = _alternative_names(certificate)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        return str(address) in ip_addresses
    wanted = host.rstrip(".").lower()
    if not dns_names and not ip_addresses:
        dns_names = tuple(
            str(a.value).lower()
            for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        )
    return any(_dns_match(pattern, wanted) for pattern in dns_names)


def check_covers(certificate: x509.Certificate, host: str, *, field: str = "server_sni") -> None:
    """Refuse a certificate whose names do not cover ``host`` (``InvalidCertificate``)."""
    if not covers(certificate, host):
        dns_names, ip_addresses = _alternative_names(certificate)
        names = ", ".join((*dns_names, *ip_addresses)) or "none"
        raise InvalidCertificate(field, f"{host!r} is not among the certificate's names ({names})")


def _dns_match(pattern: str, host: str) -> bool:
    pattern = pattern.rstrip(".").lower()
    if pattern.startswith("*."):
        # RFC 6125 6.4.3: the wildcard stands for exactly one whole label, never a dot.
        label, _, rest = host.partition(".")
        return bool(label) and bool(rest) and rest == pattern[2:]
    return pattern == host


def _alternative_names(certificate: x509.Certificate) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return (), ()
    dns_names = tuple(extension.value.get_values_for_type(x509.DNSName))
    ip_addresses = tuple(str(a) for a in extension.value.get_values_for_type(x509.IPAddress))
    return dns_names, ip_addresses


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca
