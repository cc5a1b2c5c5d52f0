"""PEM and PKCS#12 in, a checked certificate with its key and chain out, or a clear refusal.

Every refusal is an ``InvalidCertificate`` whose field names the input at fault, so each door
(CLI option, API field, WUI form field) can put the message beside it:

=========  =================================================================================
field      refused when
=========  =================================================================================
cert       not PEM, no certificate in it, expired or not yet valid (for new use)
key        not PEM, encrypted without the right password, not matching the certificate,
           RSA under 2048 bits, a key type TLS servers do not use
chain      not PEM, out of order, not leading to the certificate, a member expired
pkcs12     wrong password or not PKCS#12, no certificate or no key inside
ca         not PEM, no certificate in it, a member expired or not yet valid
=========  =================================================================================

What is kept is normalised: the key as unencrypted PKCS#8 PEM (the store protects it, see
``store/certificates.py``), the certificates as PEM, leaf first.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from bascule.errors import InvalidCertificate

#: Larger inputs are not certificates (a long chain is a few KiB; a big CA bundle ~250 KiB).
MAX_INPUT_BYTES = 1024 * 1024
MIN_RSA_BITS = 2048

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
_CERTIFICATE_LABELS = {b"CERTIFICATE", b"TRUSTED CERTIFICATE", b"X509 CERTIFICATE"}
_KEY_LABELS = {b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"ENCRYPTED PRIVATE KEY"}


#: The curves a server certificate may use, as shown to a person.
_CURVES: dict[str, str] = {
    ec.SECP256R1.name: "ECDSA P-256",
    ec.SECP384R1.name: "ECDSA P-384",
    ec.SECP521R1.name: "ECDSA P-521",
}

ServerKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True, kw_only=True)
class CertificateBundle:
    """A server certificate, its private key and the intermediates that lead to it, checked."""

    certificate: x509.Certificate
    key: ServerKey
    chain: tuple[x509.Certificate, ...]

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    @property
    def key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM: handle as a secret."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def engine_pem(self) -> bytes:
        """Certificate, chain, then key in one PEM: what HAProxy's ``crt`` and ``set ssl
        cert`` take (configuration.txt, "crt"). A secret: write it 0600 only."""
        return self.certificate_pem + self.chain_pem + self.key_pem


@dataclass(frozen=True, kw_only=True)
class CaBundle:
    """Certificates trusted to verify clients (``client_ca``) or real servers (``server_ca``)."""

    certificates: tuple[x509.Certificate, ...]

    @property
    def pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.certificates)


def load_certificate(
    cert: bytes,
    key: bytes | None = None,
    chain: bytes | None = None,
    *,
    now: datetime.datetime,
    password: bytes | None = None,
) -> CertificateBundle:
    """A certificate from PEM files: ``cert`` (leaf first; more certificates after it are the
    chain, as in a ``fullchain.pem``), ``key`` (or a key inside ``cert``) and ``chain``.

    ``password`` opens an encrypted private key. Raises ``InvalidCertificate``.
    """
    certificates = _certificates(cert, "cert")
    leaf, *rest = certificates
    if chain is not None:
        rest.extend(_certificates(chain, "chain"))
    key_source = key if key is not None else cert
    key_field = "key" if key is not None else "cert"
    blocks = _blocks(key_source, key_field, labels=_KEY_LABELS)
    if not blocks:
        raise InvalidCertificate(
            "key", "no private key given (a PEM block -----BEGIN PRIVATE KEY-----)"
        )
    if len(blocks) > 1:
        raise InvalidCertificate(key_field, "holds more than one private key: give only one")
    private_key = _private_key(blocks[0], key_field, password)
    return checked_bundle(leaf, private_key, tuple(rest), now=now)


def load_pkcs12(
    data: bytes, password: bytes | None, *, now: datetime.datetime
) -> CertificateBundle:
    """A certificate, its key and chain from a PKCS#12 (``.p12``, ``.pfx``) file."""
    _size(data, "pkcs12")
    try:
        loaded = pkcs12.load_pkcs12(data, password or None)
    except ValueError:
        raise InvalidCertificate(
            "pkcs12", "cannot open the PKCS#12 file: wrong password, or not a PKCS#12 file"
        ) from None
    except UnsupportedAlgorithm as exc:
        raise InvalidCertificate(
            "pkcs12", f"the PKCS#12 file uses an algorithm this system refuses: {exc}"
        ) from None
    if loaded.cert is None:
        raise InvalidCertificate("pkcs12", "the PKCS#12 file holds no certificate with its key")
    if loaded.key is None:
        raise InvalidCertificate("pkcs12", "the PKCS#12 file holds no private key")
    private_key = _server_key(loaded.key, "pkcs12")
    # PKCS#12 does not promise an order for the other certificates: put them in issuing order.
    chain = _issuing_order(
        loaded.cert.certificate, [c.certificate for c in loaded.additional_certs]
    )
    return checked_bundle(loaded.cert.certificate, private_key, chain, now=now)


def checked_bundle(
    leaf: x509.Certificate,
    key: ServerKey,
    chain: tuple[x509.Certificate, ...],
    *,
    now: datetime.datetime,
) -> CertificateBundle:
    """The refusals common to every way a certificate comes in."""
    _check_validity(leaf, "cert", now)
    if not key_matches(leaf, key):
        raise InvalidCertificate(
            "key",
            "the private key does not match the certificate "
            f"(subject {leaf.subject.rfc4514_string() or '(empty)'})",
        )
    _check_chain(leaf, chain, now)
    return CertificateBundle(certificate=leaf, key=key, chain=chain)


def load_ca_bundle(data: bytes, *, now: datetime.datetime) -> CaBundle:
    """CA certificates (PEM, one or more) to verify clients or real servers with."""
    certificates = _certificates(data, "ca")
    for position, certificate in enumerate(certificates, start=1):
        _check_validity(certificate, "ca", now, position=position)
    return CaBundle(certificates=tuple(certificates))


def key_description(certificate: x509.Certificate) -> str:
    """``ECDSA P-256`` or ``RSA 3072``; other key types by their algorithm's name."""
    public = certificate.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        return f"RSA {public.key_size}"
    if isinstance(public, ec.EllipticCurvePublicKey):
        return _CURVES.get(public.curve.name, f"ECDSA {public.curve.name}")
    return type(public).__name__.removeprefix("_").removesuffix("PublicKey")


def key_matches(certificate: x509.Certificate, key: object) -> bool:
    """Whether ``key`` is the private key of ``certificate``'s public key."""
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return False
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return certificate.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)


def issues(issuer: x509.Certificate, subject: x509.Certificate) -> bool:
    """Whether ``issuer``'s key signed ``subject`` (and the names agree)."""
    try:
        subject.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


# -- helpers -------------------------------------------------------------------------------


def _size(data: bytes, field: str) -> None:
    if len(data) > MAX_INPUT_BYTES:
        raise InvalidCertificate(field, f"is larger than {MAX_INPUT_BYTES // 1024} KiB")
    if not data.strip():
        raise InvalidCertificate(field, "is empty")


def _blocks(data: bytes, field: str, *, labels: set[bytes]) -> list[bytes]:
    _size(data, field)
    return [m.group(0) for m in _PEM_BLOCK.finditer(data) if m.group(1) in labels]


def _certificates(data: bytes, field: str) -> list[x509.Certificate]:
    blocks = _blocks(data, field, labels=_CERTIFICATE_LABELS)
    if not blocks:
        if data.lstrip().startswith(b"0"):
            hint = " (it looks like DER: convert it with `openssl x509 -inform der`)"
        else:
            hint = ""
        raise InvalidCertificate(
            field, f"is not PEM: no -----BEGIN CERTIFICATE----- block found{hint}"
        )
    certificates: list[x509.Certificate] = []
    for position, block in enumerate(blocks, start=1):
        try:
            certificates.append(x509.load_pem_x509_certificate(block))
        except ValueError as exc:
            raise InvalidCertificate(
                field, f"certificate {position} is damaged and cannot be read: {exc}"
            ) from None
    return certificates


def _private_key(block: bytes, field: str, password: bytes | None) -> ServerKey:
    try:
        loaded = serialization.load_pem_private_key(block, password or None)
    except TypeError:
        # cryptography: "Password was not given but private key is encrypted", or the reverse,
        # in which case the password (given for a PKCS#12 or out of habit) is not needed.
        if password:
            return _private_key(block, field, None)
        raise InvalidCertificate(field, "the private key is encrypted: give its password") from None
    except ValueError:
        if password and b"ENCRYPTED" in block:
            raise InvalidCertificate(
                field, "cannot decrypt the private key: wrong password"
            ) from None
        raise InvalidCertificate(
            field, "is not a readable private key (damaged PEM or an unknown format)"
        ) from None
    except UnsupportedAlgorithm as exc:
        raise InvalidCertificate(field, f"uses an algorithm this system refuses: {exc}") from None
    return _server_key(loaded, field)


def _server_key(key: object, field: str) -> ServerKey:
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise InvalidCertificate(
                field,
                f"RSA keys must have at least {MIN_RSA_BITS} bits; this one has {key.key_size}",
            )
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in _CURVES:
            raise InvalidCertificate(
                field, f"the curve {key.curve.name} is not one clients accept: use P-256 or P-384"
            )
        return key
    name = type(key).__name__.removeprefix("_").removesuffix("PrivateKey")
    raise InvalidCertificate(
        field, f"{name} keys are not accepted: use an RSA (2048 bits or more) or ECDSA key"
    )


def _check_validity(
    certificate: x509.Certificate, field: str, now: datetime.datetime, *, position: int = 0
) -> None:
    which = f"certificate {position} ({_subject(certificate)})" if position else "the certificate"
    not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if now < not_before:
        raise InvalidCertificate(
            field, f"{which} is not valid yet: it starts on {not_before:%Y-%m-%d %H:%M} UTC"
        )
    if now > not_after:
        raise InvalidCertificate(field, f"{which} expired on {not_after:%Y-%m-%d %H:%M} UTC")


def _check_chain(
    leaf: x509.Certificate, chain: tuple[x509.Certificate, ...], now: datetime.datetime
) -> None:
    """Each certificate must be issued by the next one, starting from the leaf."""
    previous = leaf
    for position, certificate in enumerate(chain, start=1):
        if not issues(certificate, previous):
            issuer = next((c for c in chain if issues(c, previous)), None)
            what = "the certificate" if previous is leaf else f"chain certificate {position - 1}"
            if issuer is not None:
                raise InvalidCertificate(
                    "chain",
                    f"the chain is out of order: certificate {position} "
                    f"({_subject(certificate)}) did not issue {what}; put the issuer of "
                    "each certificate right after it (leaf, its issuer, that one's issuer...)",
                )
            raise InvalidCertificate(
                "chain",
                f"the chain does not lead to the certificate: nothing in it issued {what} "
                f"({_subject(previous)}, issued by {previous.issuer.rfc4514_string()})",
            )
        _check_validity(certificate, "chain", now, position=position)
        previous = certificate


def _issuing_order(
    leaf: x509.Certificate, others: list[x509.Certificate]
) -> tuple[x509.Certificate, ...]:
    ordered: list[x509.Certificate] = []
    remaining = list(others)
    previous = leaf
    while remaining:
        issuer = next((c for c in remaining if issues(c, previous)), None)
        if issuer is None:
            break
        ordered.append(issuer)
        remaining.remove(issuer)
        previous = issuer
    # What does not chain is kept after, so _check_chain names it.
    return (*ordered, *remaining)


def _subject(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(empty subject)"
