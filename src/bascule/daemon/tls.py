"""The HTTPS listener's certificate: generated self-signed at first start, replaceable.

Sits at the daemon's start, before the management listener opens: if neither the certificate
nor the key exists, a self-signed one is made (EC P-256, valid ten years, SAN 127.0.0.1,
localhost and the listen address); if both exist they are used as they are, so an
administrator replaces them with their own (same paths, then restart). The key is written
0600, in a directory only root reads. The certificate's SHA-256 fingerprint is logged so a
remote client can check what it connects to (``--ca-cert`` or the fingerprint).
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bascule.errors import BasculeError
from bascule.pki.describe import fingerprint
from bascule.pki.selfsigned import sign_self_signed
from bascule.store.certificates import write_file

VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True, kw_only=True)
class Certificate:
    """The listener's certificate and key files, and what the log says about them."""

    cert: Path
    key: Path
    generated: bool  # made just now
    fingerprint: str  # SHA-256 of the DER certificate, "AB:CD:..."
    not_after: datetime.datetime


def ensure_certificate(cert: Path, key: Path, *, listen_host: str) -> Certificate:
    """The certificate at ``cert``/``key``, generating a self-signed one if both are missing.

    One without the other is an error (a half-replaced pair): nothing is overwritten.
    """
    generated = False
    if not cert.exists() and not key.exists():
        _generate(cert, key, listen_host)
        generated = True
    elif not cert.exists() or not key.exists():
        missing = cert if not cert.exists() else key
        raise BasculeError(
            f"the TLS certificate and key go together: {missing} is missing "
            f"(remove both to have a self-signed pair generated)"
        )
    try:
        loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise BasculeError(f"cannot read the TLS certificate {cert}: {exc}") from exc
    return Certificate(
        cert=cert,
        key=key,
        generated=generated,
        fingerprint=fingerprint(loaded),
        not_after=loaded.not_valid_after_utc,
    )


def subject_names(listen_host: str) -> list[x509.GeneralName]:
    """127.0.0.1, ::1, localhost, the listen address (unless a wildcard) and the host name."""
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    address = ipaddress.ip_address(listen_host)
    if not address.is_unspecified and x509.IPAddress(address) not in names:
        names.append(x509.IPAddress(address))
    hostname = socket.gethostname()
    if hostname and hostname != "localhost" and hostname.isascii():
        names.append(x509.DNSName(hostname))
    return names


def _generate(cert: Path, key: Path, listen_host: str) -> None:
    private_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bascule"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"bascule {socket.gethostname()}"[:64]),
        ]
    )
    certificate = sign_self_signed(
        private_key,
        subject=name,
        names=subject_names(listen_host),
        now=datetime.datetime.now(datetime.UTC),
        days=VALIDITY.days,
    )
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        for directory in {cert.parent, key.parent}:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_file(key, key_pem, 0o600)
        write_file(cert, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    except OSError as exc:
        raise BasculeError(f"cannot write the TLS certificate {cert} or key {key}: {exc}") from exc
