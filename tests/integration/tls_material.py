"""Certificates for the TLS integration tests, made with ``cryptography`` and written as files.

``Material.make(directory)`` writes, valid from now on:

- ``shop`` (ECDSA P-256) and ``shop-rsa`` (RSA 2048) for shop.test, ``api`` for api.test,
  ``www`` for www.test: server certificates with their keys, self-signed;
- ``corp`` (a CA) and ``alice`` (a client certificate it issued), ``stranger`` (a client
  certificate another CA issued);
- ``backend`` (a CA) with ``app`` (app.test, the real servers' certificate it issued), and
  ``rogue-app`` (app.test too, from another CA): for re-encryption.

Each as ``<name>.pem`` (the certificate) and ``<name>.key`` (its key).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    key: Key

    @property
    def serial(self) -> str:
        return f"{self.certificate.serial_number:X}"


def _key(kind: str) -> Key:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def issue(
    common_name: str,
    *,
    issuer: Issued | None = None,
    ca: bool = False,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    kind: str = "ec",
    client: bool = False,
    days: int = 30,
) -> Issued:
    key = _key(kind)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.certificate.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if not ca:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    signer = issuer.key if issuer else key
    return Issued(builder.sign(signer, hashes.SHA256()), key)


def write(directory: Path, name: str, issued: Issued) -> None:
    (directory / f"{name}.pem").write_bytes(
        issued.certificate.public_bytes(serialization.Encoding.PEM)
    )
    key = directory / f"{name}.key"
    key.write_bytes(
        issued.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o600)


@dataclass(frozen=True)
class Material:
    directory: Path
    issued: dict[str, Issued]

    def pem(self, name: str) -> Path:
        return self.directory / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    def serial(self, name: str) -> str:
        return self.issued[name].serial

    @classmethod
    def make(cls, directory: Path) -> Material:
        directory.mkdir(parents=True, exist_ok=True)
        corp = issue("Corp Users CA", ca=True)
        backend = issue("Backend CA", ca=True)
        rogue = issue("Rogue CA", ca=True)
        issued = {
            "shop": issue("shop.test", dns=("shop.test",)),
            "shop-rsa": issue("shop.test", dns=("shop.test",), kind="rsa"),
            "api": issue("api.test", dns=("api.test",)),
            "www": issue("www.test", dns=("www.test",)),
            "corp": corp,
            "alice": issue("alice", issuer=corp, client=True),
            "stranger": issue("stranger", issuer=rogue, client=True),
            "backend": backend,
            "app": issue("app.test", issuer=backend, dns=("app.test",)),
            "rogue-app": issue("app.test", issuer=rogue, dns=("app.test",)),
        }
        for name, item in issued.items():
            write(directory, name, item)
        return cls(directory=directory, issued=issued)
