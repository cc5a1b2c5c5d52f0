"""/certificates and /ca-bundles: the certificate store (``bascule cert ...``), administrators only.

Beside the flow of a change: the configuration document names certificates
(``tls.certificates``, ``client_ca``, ``server_ca``); their bytes live here. Every route needs
the ``administer`` permission and goes through the one ``CertificateService``
(daemon/certificates.py), which checks what comes in (a refusal is 422 ``invalid_configuration``
whose field names the input: ``cert``, ``key``, ``chain``, ``pkcs12``, ``password``, ``ca``,
``name``, ``dns``, ``ip``), writes the engines' files, swaps a replaced certificate into the
running engines without a reload, and records every change in the audit log.

No route returns a private key, nor takes one back out: answers carry the public facts of a
certificate (subject, names, issuer, dates, key type, serial, fingerprint) and where it is
used. Keys come in as PEM text (or inside a base64 PKCS#12 file) and go to the store only.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Request, Response
from pydantic import BaseModel, Field

from bascule.api.bodies import OffLoopRoute
from bascule.api.deps import Administrator, get_services
from bascule.api.schemas import ErrorOut
from bascule.daemon.acme import DEFAULT_DIRECTORY, AcmeService
from bascule.daemon.certificates import CertificateChange, CertificateDetails, CertificateService
from bascule.errors import InvalidCertificate, NotApplicable
from bascule.pki.describe import CertificateInfo
from bascule.pki.selfsigned import DEFAULT_DAYS, MAX_DAYS, KeyKind
from bascule.store.acme import AcmeOrder
from bascule.store.certificates import EntryKind, Source

router = APIRouter(tags=["certificates"], route_class=OffLoopRoute)

#: A PEM file is a few KiB; a CA bundle at most a few hundred (pki.MAX_INPUT_BYTES is 1 MiB).
MAX_PEM = 1024 * 1024

CertificateName = Annotated[
    str, Path(min_length=1, max_length=63, description="The entry's name in the store")
]
Pem = Annotated[str, Field(max_length=MAX_PEM)]


def get_certificates(request: Request) -> CertificateService:
    certificates = get_services(request).certificates
    if certificates is None:
        raise NotApplicable("this daemon has no certificate store")
    return certificates


CertificateServiceDep = Annotated[CertificateService, Depends(get_certificates)]


def get_acme(request: Request) -> AcmeService:
    acme = get_services(request).acme
    if acme is None:
        raise NotApplicable("this daemon runs no ACME client")
    return acme


AcmeServiceDep = Annotated[AcmeService, Depends(get_acme)]


def _orders(request: Request) -> Callable[[str], AcmeOrder | None]:
    acme = get_services(request).acme
    return (lambda _name: None) if acme is None else acme.order


OrderOf = Annotated[Callable[[str], AcmeOrder | None], Depends(_orders)]


class CertificateInfoOut(BaseModel):
    subject: str
    dns_names: list[str]
    ip_addresses: list[str]
    issuer: str
    not_before: datetime
    not_after: datetime
    days_left: int
    key_type: str
    serial: str
    fingerprint: str = Field(description="SHA-256 of the DER certificate")
    self_signed: bool
    is_ca: bool

    @classmethod
    def of(cls, info: CertificateInfo) -> CertificateInfoOut:
        return cls(
            subject=info.subject,
            dns_names=list(info.dns_names),
            ip_addresses=list(info.ip_addresses),
            issuer=info.issuer,
            not_before=info.not_before,
            not_after=info.not_after,
            days_left=info.days_left,
            key_type=info.key_type,
            serial=info.serial,
            fingerprint=info.fingerprint,
            self_signed=info.self_signed,
            is_ca=info.is_ca,
        )


class CertificateOut(BaseModel):
    name: str
    kind: EntryKind
    source: Source
    has_key: bool = Field(description="false only for a certificate restored without its key")
    used_by: list[str] = Field(description="the virtual services of the current revision")
    expiry: str = Field(description="ok, warning (30 days), critical (7 days) or expired")
    not_after: datetime
    certificate: CertificateInfoOut = Field(description="the leaf, or a bundle's first CA")
    chain: list[CertificateInfoOut] = Field(description="intermediates, or the other CAs")
    created_at: datetime
    updated_at: datetime
    acme: AcmeOut | None = Field(default=None, description="its ACME order, if it has one")

    @classmethod
    def of(cls, details: CertificateDetails, order: AcmeOrder | None = None) -> CertificateOut:
        return cls(
            name=details.name,
            kind=details.kind,
            source=details.source,
            has_key=details.has_key,
            used_by=list(details.used_by),
            expiry=details.expiry.value,
            not_after=details.not_after,
            certificate=CertificateInfoOut.of(details.certificate),
            chain=[CertificateInfoOut.of(info) for info in details.chain],
            created_at=details.created_at,
            updated_at=details.updated_at,
            acme=None if order is None else AcmeOut.of(order),
        )


class AcmeOut(BaseModel):
    """How ACME keeps the entry issued: its order and the last attempt's outcome."""

    directory: str
    email: str
    domains: list[str]
    state: str = Field(description="pending, valid or failed")
    last_error: str = Field(description="the CA's own words when the last attempt failed")
    failures: int
    next_attempt: datetime | None

    @classmethod
    def of(cls, order: AcmeOrder) -> AcmeOut:
        return cls(
            directory=order.directory,
            email=order.email,
            domains=list(order.domains),
            state=order.state.value,
            last_error=order.last_error,
            failures=order.failures,
            next_attempt=order.next_attempt,
        )


class CertificatesOut(BaseModel):
    items: list[CertificateOut]


class CertificateChangeOut(BaseModel):
    certificate: CertificateOut | None
    swapped: list[str] = Field(description="engines that serve the new one already (no reload)")
    message: str

    @classmethod
    def of(cls, change: CertificateChange) -> CertificateChangeOut:
        return cls(
            certificate=None if change.details is None else CertificateOut.of(change.details),
            swapped=list(change.swapped),
            message=change.message,
        )


class CertificateIn(BaseModel):
    """A certificate with its key: PEM (``cert``, ``key``, ``chain``), or a PKCS#12 file."""

    cert: Pem | None = Field(
        default=None, description="PEM: the certificate, optionally its chain and key after it"
    )
    key: Pem | None = Field(default=None, description="PEM private key (if not in cert)")
    chain: Pem | None = Field(default=None, description="PEM intermediates, issuer first")
    pkcs12: str | None = Field(
        default=None, max_length=2 * MAX_PEM, description="a PKCS#12 (.p12, .pfx) file, base64"
    )
    password: str | None = Field(
        default=None, max_length=1024, description="of the PKCS#12 file or the encrypted key"
    )


class NamedCertificateIn(CertificateIn):
    name: str = Field(min_length=1, max_length=63)


class SelfSignedIn(BaseModel):
    name: str = Field(min_length=1, max_length=63)
    dns: list[Annotated[str, Field(max_length=253)]] = Field(default_factory=list, max_length=100)
    ips: list[Annotated[str, Field(max_length=45)]] = Field(default_factory=list, max_length=100)
    key_type: KeyKind = KeyKind.ecdsa_p256
    days: int = Field(default=DEFAULT_DAYS, ge=1, le=MAX_DAYS)
    replace: bool = Field(default=False, description="replace the entry of that name")


class AcmeIn(BaseModel):
    name: str = Field(min_length=1, max_length=63)
    domains: list[Annotated[str, Field(max_length=253)]] = Field(min_length=1, max_length=100)
    email: str = Field(min_length=3, max_length=320)
    directory: str = Field(default=DEFAULT_DIRECTORY, max_length=2048)
    ca_bundle: Pem | None = Field(
        default=None, description="PEM: the CA that signed the directory's HTTPS certificate"
    )


class CaBundleIn(BaseModel):
    pem: Pem = Field(description="PEM: one or more CA certificates")


class NamedCaBundleIn(CaBundleIn):
    name: str = Field(min_length=1, max_length=63)


async def _save(
    service: CertificateService,
    actor: Administrator,
    name: str,
    body: CertificateIn,
    *,
    replace: bool,
) -> CertificateChange:
    password = body.password.encode() if body.password is not None else None
    if body.pkcs12 is not None:
        if body.cert is not None or body.key is not None or body.chain is not None:
            raise InvalidCertificate("pkcs12", "give either a PKCS#12 file or PEM, not both")
        try:
            data = base64.b64decode(body.pkcs12, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidCertificate("pkcs12", "must be the file in base64") from None
        return await service.import_pkcs12(
            name, data, password=password, actor=actor, replace=replace
        )
    if body.cert is None:
        raise InvalidCertificate("cert", "give the certificate (PEM) or a PKCS#12 file")
    return await service.import_pem(
        name,
        body.cert.encode(),
        None if body.key is None else body.key.encode(),
        None if body.chain is None else body.chain.encode(),
        password=password,
        actor=actor,
        replace=replace,
    )


@router.get("/certificates", summary="Every certificate and CA bundle of the store (administer)")
async def list_certificates(
    actor: Administrator, certificates: CertificateServiceDep, order_of: OrderOf
) -> CertificatesOut:
    return CertificatesOut(
        items=[CertificateOut.of(d, order_of(d.name)) for d in certificates.entries()]
    )


@router.post("/certificates", status_code=201, summary="Add a certificate with its key")
async def add_certificate(
    actor: Administrator,
    certificates: CertificateServiceDep,
    body: Annotated[NamedCertificateIn, Body()],
) -> CertificateChangeOut:
    return CertificateChangeOut.of(await _save(certificates, actor, body.name, body, replace=False))


@router.post(
    "/certificates/self-signed",
    status_code=201,
    summary="Make a self-signed certificate (add, or replace with replace: true)",
)
async def self_signed(
    actor: Administrator,
    certificates: CertificateServiceDep,
    body: Annotated[SelfSignedIn, Body()],
) -> CertificateChangeOut:
    change = await certificates.self_signed(
        body.name,
        dns=body.dns,
        ips=body.ips,
        key_kind=body.key_type,
        days=body.days,
        actor=actor,
        replace=body.replace,
    )
    return CertificateChangeOut.of(change)


@router.post(
    "/certificates/acme",
    status_code=201,
    summary="Request a certificate from an ACME CA (HTTP-01), kept renewed (administer)",
    responses={502: {"model": ErrorOut, "description": "the CA refused, in its own words"}},
)
async def request_acme(
    actor: Administrator, acme: AcmeServiceDep, body: Annotated[AcmeIn, Body()]
) -> CertificateChangeOut:
    change = await acme.request(
        body.name,
        domains=body.domains,
        email=body.email,
        directory=body.directory,
        ca_bundle=None if body.ca_bundle is None else body.ca_bundle.encode(),
        actor=actor,
    )
    return CertificateChangeOut.of(change)


@router.post(
    "/certificates/{name}/renew",
    summary="Renew an ACME certificate now (administer)",
    responses={502: {"model": ErrorOut, "description": "the CA refused, in its own words"}},
)
async def renew_acme(
    name: CertificateName, actor: Administrator, acme: AcmeServiceDep
) -> CertificateChangeOut:
    return CertificateChangeOut.of(await acme.renew(name, actor=actor))


@router.get("/certificates/{name}", summary="One entry of the store (administer)")
async def read_certificate(
    name: CertificateName,
    actor: Administrator,
    certificates: CertificateServiceDep,
    order_of: OrderOf,
) -> CertificateOut:
    return CertificateOut.of(certificates.show(name), order_of(name))


@router.put(
    "/certificates/{name}",
    summary="Replace a certificate; services using it serve the new one without a reload",
)
async def replace_certificate(
    name: CertificateName,
    actor: Administrator,
    certificates: CertificateServiceDep,
    body: Annotated[CertificateIn, Body()],
) -> CertificateChangeOut:
    return CertificateChangeOut.of(await _save(certificates, actor, name, body, replace=True))


@router.delete(
    "/certificates/{name}",
    status_code=204,
    summary="Delete an entry (refused while a virtual service uses it)",
)
async def delete_certificate(
    name: CertificateName, actor: Administrator, certificates: CertificateServiceDep
) -> Response:
    await certificates.delete(name, actor=actor)
    return Response(status_code=204)


@router.post("/ca-bundles", status_code=201, summary="Add a CA bundle (client_ca, server_ca)")
async def add_ca_bundle(
    actor: Administrator,
    certificates: CertificateServiceDep,
    body: Annotated[NamedCaBundleIn, Body()],
) -> CertificateChangeOut:
    change = await certificates.import_ca(body.name, body.pem.encode(), actor=actor)
    return CertificateChangeOut.of(change)


@router.put("/ca-bundles/{name}", summary="Replace a CA bundle (swapped in without a reload)")
async def replace_ca_bundle(
    name: CertificateName,
    actor: Administrator,
    certificates: CertificateServiceDep,
    body: Annotated[CaBundleIn, Body()],
) -> CertificateChangeOut:
    change = await certificates.import_ca(name, body.pem.encode(), actor=actor, replace=True)
    return CertificateChangeOut.of(change)
