"""The ``tls`` section of a virtual service, and the cipher sets it names (pure model).

SSL offload: the load balancer terminates TLS with certificates of the store (named, never
held: the document carries no secret), optionally asks clients for certificates, and may
encrypt again towards the real servers. Every name here is the issue's (LoadMaster's words in
snake_case). ``CIPHER_SETS`` is the one table of what each ``cipher_set`` means; every engine
that speaks TLS (HAProxy, the STARTTLS component) renders from it.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from bascule.model.types import Name
from bascule.model.types import bounded as _bounded


class TlsVersion(enum.StrEnum):
    """Protocol versions, in order: comparisons use ``rank``."""

    tls1_0 = "tls1.0"
    tls1_1 = "tls1.1"
    tls1_2 = "tls1.2"
    tls1_3 = "tls1.3"

    @property
    def rank(self) -> int:
        return _VERSION_ORDER.index(self)


_VERSION_ORDER = tuple(TlsVersion)


class CipherSet(enum.StrEnum):
    modern = "modern"
    intermediate = "intermediate"
    old = "old"
    fips = "fips"


class ClientCertificate(enum.StrEnum):
    none = "none"
    optional = "optional"
    required = "required"


class VerifyServer(enum.StrEnum):
    none = "none"
    required = "required"


@dataclass(frozen=True, kw_only=True)
class CipherProfile:
    """What a cipher set allows, in OpenSSL's names (which HAProxy, nginx and stunnel take)."""

    min_version: TlsVersion  # the lowest version whose ciphers the set lists
    ciphers: tuple[str, ...]  # TLS 1.2 and below, in preference order ("" list = none)
    ciphersuites: tuple[str, ...]  # TLS 1.3
    curves: tuple[str, ...]  # key exchange groups
    server_preference: bool  # the server's order wins (Mozilla: only for "old")
    # OpenSSL 3 refuses TLS 1.0/1.1 (SHA-1 signatures) at its default security level;
    # Mozilla's generator lowers it with "@SECLEVEL=0" for "old" (state.js, guideline 5.7).
    legacy_security_level: int | None
    source: str


_MOZILLA = "Mozilla Server Side TLS guidelines 5.7 (ssl-config.mozilla.org/guidelines/5.7.json)"
_TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
_INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-CHACHA20-POLY1305",
)
_MOZILLA_CURVES = ("X25519", "prime256v1", "secp384r1")

CIPHER_SETS: dict[CipherSet, CipherProfile] = {
    CipherSet.modern: CipherProfile(
        min_version=TlsVersion.tls1_3,
        ciphers=(),
        ciphersuites=_TLS13_SUITES,
        curves=_MOZILLA_CURVES,
        server_preference=False,
        legacy_security_level=None,
        source=_MOZILLA,
    ),
    CipherSet.intermediate: CipherProfile(
        min_version=TlsVersion.tls1_2,
        ciphers=_INTERMEDIATE_CIPHERS,
        ciphersuites=_TLS13_SUITES,
        curves=_MOZILLA_CURVES,
        server_preference=False,
        legacy_security_level=None,
        source=_MOZILLA,
    ),
    CipherSet.old: CipherProfile(
        min_version=TlsVersion.tls1_0,
        ciphers=(
            *_INTERMEDIATE_CIPHERS,
            "ECDHE-ECDSA-AES128-SHA256",
            "ECDHE-RSA-AES128-SHA256",
            "ECDHE-ECDSA-AES128-SHA",
            "ECDHE-RSA-AES128-SHA",
            "ECDHE-ECDSA-AES256-SHA384",
            "ECDHE-RSA-AES256-SHA384",
            "ECDHE-ECDSA-AES256-SHA",
            "ECDHE-RSA-AES256-SHA",
            "DHE-RSA-AES128-SHA256",
            "DHE-RSA-AES256-SHA256",
            "AES128-GCM-SHA256",
            "AES256-GCM-SHA384",
            "AES128-SHA256",
            "AES256-SHA256",
            "AES128-SHA",
            "AES256-SHA",
            "DES-CBC3-SHA",
        ),
        ciphersuites=_TLS13_SUITES,
        curves=_MOZILLA_CURVES,
        server_preference=True,
        legacy_security_level=0,
        source=_MOZILLA,
    ),
    # NIST SP 800-52 Rev. 2 (sections 3.3.1 and 3.3.1.2): ECDHE with AES-GCM only, NIST curves,
    # no ChaCha20 and no X25519. It selects FIPS-approved algorithms; whether the OpenSSL in
    # use is a FIPS 140-validated module is the system's matter, not the document's.
    CipherSet.fips: CipherProfile(
        min_version=TlsVersion.tls1_2,
        ciphers=(
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-RSA-AES256-GCM-SHA384",
        ),
        ciphersuites=("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"),
        curves=("prime256v1", "secp384r1"),
        server_preference=True,
        legacy_security_level=None,
        source="NIST SP 800-52 Rev. 2",
    ),
}

#: HSTS max-age: up to ten years (browsers cap it lower anyway).
MAX_HSTS = 315_360_000


# A DNS name as SNI carries it: no port, no trailing dot, no IP literal (RFC 6066 section 3).
_SNI = re.compile(
    r"^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)


def _server_name(value: str) -> str:
    """The SNI sent to real servers: a DNS name, or "" for the client's own Host."""
    if value and not _SNI.fullmatch(value):
        raise ValueError(
            "must be a DNS name such as www.example.com (no port, no IP address: TLS sends "
            'no address as SNI), or "" for the host the client asked for'
        )
    return value.lower()


def _unique(names: list[str]) -> list[str]:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise ValueError(f"[{index}]: {name} is listed twice")
        seen.add(name)
    return names


def _version(value: Any) -> Any:
    # YAML reads `min_version: 1.2` as a number; take it as the version the user meant.
    if isinstance(value, float):
        return f"tls{value:.1f}"
    return value


Version = Annotated[TlsVersion, BeforeValidator(_version)]


class Tls(BaseModel):
    """SSL offload of a virtual service: its certificates, versions, ciphers and options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Names in the certificate store. SNI picks among them; the first is the default for a
    # client that sends no name, or one no certificate covers.
    certificates: Annotated[list[Name], AfterValidator(_unique), Field(min_length=1)]
    min_version: Version | None = None  # default: the cipher set's own minimum
    max_version: Version = TlsVersion.tls1_3
    cipher_set: CipherSet = CipherSet.intermediate
    http2: bool = False
    hsts: _bounded(0, MAX_HSTS) = 0  # type: ignore[valid-type]
    redirect_http: bool = False
    client_certificate: ClientCertificate = ClientCertificate.none
    client_ca: Name | None = None
    reencrypt: bool = False
    verify_server: VerifyServer = VerifyServer.none
    server_ca: Name | None = None
    server_sni: Annotated[str, AfterValidator(_server_name)] = ""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        floor = CIPHER_SETS[self.cipher_set].min_version
        if self.min_version is not None and self.min_version.rank < floor.rank:
            raise ValueError(
                f"min_version: {self.min_version.value} is below what cipher_set "
                f"{self.cipher_set.value} has ciphers for (from {floor.value}); raise "
                "min_version or choose cipher_set old"
            )
        if self.effective_min_version.rank > self.max_version.rank:
            lowest = (
                f"min_version {self.min_version.value}"
                if self.min_version is not None
                else f"what cipher_set {self.cipher_set.value} allows ({floor.value})"
            )
            raise ValueError(f"max_version: {self.max_version.value} is below {lowest}")
        if self.client_certificate is ClientCertificate.none:
            if self.client_ca is not None:
                raise ValueError(
                    "client_ca: only used with client_certificate optional or required"
                )
        elif self.client_ca is None:
            raise ValueError(
                f"client_ca: client_certificate {self.client_certificate.value} needs the CA "
                "bundle that issued the clients' certificates (a name in the store)"
            )
        if not self.reencrypt:
            for field in ("server_sni", "server_ca"):
                if getattr(self, field):
                    raise ValueError(f"{field}: only used with reencrypt: true")
            if self.verify_server is not VerifyServer.none:
                raise ValueError("verify_server: only used with reencrypt: true")
        if self.verify_server is VerifyServer.required and self.server_ca is None:
            raise ValueError(
                "server_ca: verify_server required needs the CA bundle that issued the real "
                "servers' certificates (a name in the store)"
            )
        if self.verify_server is VerifyServer.none and self.server_ca is not None:
            raise ValueError("server_ca: only used with verify_server: required")
        return self

    @property
    def effective_min_version(self) -> TlsVersion:
        """``min_version``, or the cipher set's lowest when not given."""
        return self.min_version or CIPHER_SETS[self.cipher_set].min_version

    @property
    def profile(self) -> CipherProfile:
        return CIPHER_SETS[self.cipher_set]

    @property
    def store_names(self) -> tuple[str, ...]:
        """Every name of the certificate store this section uses (certificates, CA bundles)."""
        names = [*self.certificates, self.client_ca, self.server_ca]
        return tuple(name for name in names if name is not None)


# -- the STARTTLS relay ---------------------------------------------------------------------


def starttls_relay(name: str, port: int) -> tuple[str, int]:
    """Where the STARTTLS front hands a service's plain sessions to the proxy: a loopback
    address of its own (derived from the service's name) on the service's port.

    Both engines of a ``type: starttls`` service read it here, the one place they share
    (engines never import each other): the STARTTLS front (``engines/stunnel``) connects to
    it, HAProxy listens on it and schedules and checks the real servers as for any service.
    Linux routes all of 127.0.0.0/8 to the loopback interface, so no address is added; the
    addresses avoid 127.0.0.0/24 (127.0.0.1 and HAProxy's local peer). The document refuses
    two services whose relays would meet (model/offload.py).
    """
    digest = hashlib.sha256(name.encode()).digest()
    return f"127.{1 + digest[0] % 254}.{digest[1]}.{1 + digest[2] % 254}", port
