"""Certificates (administrators only): the store that SSL offload names, and its expiry.

Beside the flow of a change: a virtual service's ``tls`` names entries of the certificate
store; this page adds them (upload or paste PEM, a PKCS#12 file, a self-signed one, a CA
bundle, or a request to an ACME CA), shows each with its expiry in colour and where it is
used, replaces it (the services using it serve the new one without a reload) and deletes it
(refused while used). Every action goes through the daemon's ``CertificateService``, which
checks the input, writes the engines' files and the audit log; a refusal comes back beside
the field at fault and nothing changes. No page shows or takes back a private key.

Store changes are not configuration revisions: they apply at once, like users and tokens
(the configuration's preview is for documents).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bascule.daemon.accounts import WebSession
from bascule.daemon.acme import DEFAULT_DIRECTORY
from bascule.daemon.certificates import CertificateChange, CertificateService
from bascule.errors import AcmeFailed, FieldError, InvalidConfiguration, NotApplicable
from bascule.pki.expiry import ExpiryLevel
from bascule.pki.selfsigned import DEFAULT_DAYS, KeyKind
from bascule.store.acme import AcmeOrder
from bascule.store.certificates import EntryKind
from bascule.web.auth import Administrator
from bascule.web.pages.users import split_errors
from bascule.web.services import Services, WebServices
from bascule.web.state import flash
from bascule.web.templating import render

router = APIRouter()

#: A PEM paste or a file: bounded like the API's (a CA bundle is at most a few hundred KiB).
MAX_UPLOAD = 1024 * 1024
Pem = Annotated[str, Form(max_length=MAX_UPLOAD)]
Text = Annotated[str, Form(max_length=4096)]
Upload = Annotated[UploadFile | None, File()]

#: the status badge colour of each expiry level (macros.html status_badge classes)
EXPIRY_BADGES: Mapping[ExpiryLevel, str] = {
    ExpiryLevel.ok: "up",
    ExpiryLevel.warning: "degraded",
    ExpiryLevel.critical: "down",
    ExpiryLevel.expired: "apply_error",
}
KEY_TYPES = tuple((kind.value, kind.value) for kind in KeyKind)

# Each form's inputs, by the service's field names (pki's InvalidCertificate paths), and the
# inputs that carry another name on the page (one page, several forms, unique ids).
IMPORT_FIELDS = ("name", "cert", "key", "chain", "pkcs12", "password")
SELF_SIGNED_FIELDS = ("name", "dns", "ip", "days", "key_type")
CA_FIELDS = ("name", "ca")
ACME_FIELDS = ("name", "domain", "email", "directory", "ca")
RENAMED = {
    "self-signed": {"name": "ss_name"},
    "ca": {"name": "ca_name"},
    "acme": {"name": "acme_name", "ca": "acme_ca"},
}


def certificates_of(services: WebServices) -> CertificateService:
    if services.certificates is None:
        raise NotApplicable("this daemon has no certificate store")
    return services.certificates


def _page(
    request: Request,
    services: Services,
    *,
    form: str = "",
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    general: list[str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    entries = certificates_of(services).entries()
    return render(
        request,
        "certificates/index.html",
        {
            "page": "certificates",
            "title": "Certificates",
            "certificates": entries,
            "badges": EXPIRY_BADGES,
            "form": form,
            "values": {
                "days": DEFAULT_DAYS,
                "key_type": KeyKind.ecdsa_p256.value,
                **(values or {}),
            },
            "errors": errors or {},
            "general": general or [],
            "key_types": KEY_TYPES,
            "orders": _orders(services),
            "acme_on": services.acme is not None,
            "default_directory": DEFAULT_DIRECTORY,
        },
        status_code=status_code,
    )


def _orders(services: WebServices) -> dict[str, AcmeOrder]:
    return {} if services.acme is None else {o.name: o for o in services.acme.orders()}


def _detail(
    request: Request,
    services: Services,
    name: str,
    *,
    errors: Mapping[str, str] | None = None,
    general: list[str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    details = certificates_of(services).show(name)
    return render(
        request,
        "certificates/detail.html",
        {
            "page": "certificates",
            "title": f"Certificate {name}",
            "entry": details,
            "order": _orders(services).get(name),
            "badges": EXPIRY_BADGES,
            "errors": errors or {},
            "general": general or [],
        },
        status_code=status_code,
    )


@router.get("/certificates", response_class=HTMLResponse)
async def certificates_page(
    request: Request, session: Administrator, services: Services
) -> HTMLResponse:
    return _page(request, services)


@router.get("/certificates/{name}", response_class=HTMLResponse)
async def certificate_page(
    request: Request, name: str, session: Administrator, services: Services
) -> HTMLResponse:
    return _detail(request, services, name)


async def _read(upload: UploadFile | None) -> bytes | None:
    if upload is None or not upload.filename:
        return None
    return await upload.read(MAX_UPLOAD + 1)


async def _pem_or_file(paste: str, upload: UploadFile | None) -> bytes | None:
    """What the person gave for one input: the uploaded file, else the pasted text."""
    data = await _read(upload)
    if data is not None:
        return data
    return paste.encode() if paste.strip() else None


class PostedCertificate:
    """What the import and replace forms post: pasted PEM or uploaded files (certificate,
    key, chain), or a PKCS#12 file, and the password of either (a FastAPI dependency)."""

    def __init__(
        self,
        cert: Pem = "",
        key: Pem = "",
        chain: Pem = "",
        password: Text = "",
        cert_file: Upload = None,
        key_file: Upload = None,
        chain_file: Upload = None,
        pkcs12_file: Upload = None,
    ) -> None:
        self.pasted = {"cert": cert, "key": key, "chain": chain}
        self.files = {"cert": cert_file, "key": key_file, "chain": chain_file}
        self.pkcs12_file = pkcs12_file
        self.password = password

    async def save(
        self,
        certificates: CertificateService,
        session: WebSession,
        name: str,
        *,
        replace: bool,
    ) -> CertificateChange:
        secret = self.password.encode() if self.password else None
        pkcs12 = await _read(self.pkcs12_file)
        if pkcs12 is not None:
            return await certificates.import_pkcs12(
                name, pkcs12, password=secret, actor=session.actor, replace=replace
            )
        given = {k: await _pem_or_file(self.pasted[k], self.files[k]) for k in self.pasted}
        if given["cert"] is None:
            raise _form_error("cert", "paste or upload the certificate (PEM), or a PKCS#12 file")
        return await certificates.import_pem(
            name,
            given["cert"],
            given["key"],
            given["chain"],
            password=secret,
            actor=session.actor,
            replace=replace,
        )


Posted = Annotated[PostedCertificate, Depends()]


def _form_error(field: str, message: str) -> InvalidConfiguration:
    return InvalidConfiguration([FieldError(path=field, message=message)])


def _done(request: Request, change: CertificateChange, verb: str, to: str) -> Response:
    entry = change.details
    if entry is not None:
        text = f"Certificate {entry.name} {verb}."
        if change.swapped:
            text += f" Served now by {', '.join(change.swapped)}, without a reload."
        flash(request, text)
    if change.message:
        flash(request, change.message, "error")
    return RedirectResponse(to, status_code=303)


@router.post("/certificates/import", response_class=HTMLResponse)
async def import_certificate(
    request: Request,
    session: Administrator,
    services: Services,
    posted: Posted,
    name: Text = "",
) -> Response:
    try:
        change = await posted.save(certificates_of(services), session, name.strip(), replace=False)
    except InvalidConfiguration as exc:
        return _refused(request, services, "import", IMPORT_FIELDS, exc, {"name": name})
    return _done(request, change, "added", f"/certificates/{name.strip()}")


@router.post("/certificates/self-signed", response_class=HTMLResponse)
async def make_self_signed(
    request: Request,
    session: Administrator,
    services: Services,
    ss_name: Text = "",
    dns: Text = "",
    ip: Text = "",
    key_type: Text = KeyKind.ecdsa_p256.value,
    days: Text = str(DEFAULT_DAYS),
) -> Response:
    name = ss_name
    values = {"name": name, "dns": dns, "ip": ip, "key_type": key_type, "days": days}
    try:
        kind = KeyKind(key_type)
        number = int(days)
    except ValueError:
        exc = _form_error("days", "must be a whole number of days (1 to 3650)")
        if key_type not in {k.value for k in KeyKind}:
            exc = _form_error("key_type", "choose one of the key types offered")
        return _refused(request, services, "self-signed", SELF_SIGNED_FIELDS, exc, values)
    try:
        change = await certificates_of(services).self_signed(
            name.strip(),
            dns=_split(dns),
            ips=_split(ip),
            key_kind=kind,
            days=number,
            actor=session.actor,
        )
    except InvalidConfiguration as exc:
        return _refused(request, services, "self-signed", SELF_SIGNED_FIELDS, exc, values)
    return _done(request, change, "made", f"/certificates/{name.strip()}")


@router.post("/certificates/ca", response_class=HTMLResponse)
async def add_ca_bundle(
    request: Request,
    session: Administrator,
    services: Services,
    ca_name: Text = "",
    ca: Pem = "",
    ca_file: Upload = None,
) -> Response:
    name = ca_name
    values = {"name": name}
    data = await _pem_or_file(ca, ca_file)
    try:
        if data is None:
            raise _form_error("ca", "paste or upload the CA certificates (PEM)")
        change = await certificates_of(services).import_ca(name.strip(), data, actor=session.actor)
    except InvalidConfiguration as exc:
        return _refused(request, services, "ca", CA_FIELDS, exc, values)
    return _done(request, change, "added", f"/certificates/{name.strip()}")


@router.post("/certificates/acme", response_class=HTMLResponse)
async def request_acme(
    request: Request,
    session: Administrator,
    services: Services,
    acme_name: Text = "",
    domains: Text = "",
    email: Text = "",
    directory: Text = "",
    acme_ca: Pem = "",
    acme_ca_file: Upload = None,
) -> Response:
    name = acme_name.strip()
    values = {"name": name, "domains": domains, "email": email, "directory": directory}
    if services.acme is None:
        raise NotApplicable("this daemon runs no ACME client")
    try:
        change = await services.acme.request(
            name,
            domains=_split(domains),
            email=email.strip(),
            directory=directory.strip() or DEFAULT_DIRECTORY,
            ca_bundle=await _pem_or_file(acme_ca, acme_ca_file),
            actor=session.actor,
        )
    except InvalidConfiguration as exc:
        return _refused(request, services, "acme", ACME_FIELDS, exc, values)
    except AcmeFailed as exc:
        # the order is kept (and retried with backoff): its page shows the CA's words
        if services.acme.order(name) is not None and services.certificates is not None:
            flash(request, f"The CA did not issue {name}: {exc}", "error")
            if services.certificates.store.entry(name) is not None:
                return RedirectResponse(f"/certificates/{name}", status_code=303)
        return _page(
            request,
            services,
            form="acme",
            values=values,
            general=[str(exc)],
            status_code=502,
        )
    return _done(request, change, "issued", f"/certificates/{name}")


@router.post("/certificates/{name}/renew", response_class=HTMLResponse)
async def renew_acme(
    request: Request, name: str, session: Administrator, services: Services
) -> Response:
    if services.acme is None:
        raise NotApplicable("this daemon runs no ACME client")
    try:
        change = await services.acme.renew(name, actor=session.actor)
    except AcmeFailed as exc:
        flash(request, f"The CA did not renew {name}: {exc}", "error")
        return RedirectResponse(f"/certificates/{name}", status_code=303)
    return _done(request, change, "renewed", f"/certificates/{name}")


@router.post("/certificates/{name}/replace", response_class=HTMLResponse)
async def replace_certificate(
    request: Request,
    name: str,
    session: Administrator,
    services: Services,
    posted: Posted,
    ca: Pem = "",
    ca_file: Upload = None,
) -> Response:
    certificates = certificates_of(services)
    change: CertificateChange
    try:
        if certificates.show(name).kind is EntryKind.ca_bundle:
            data = await _pem_or_file(ca, ca_file)
            if data is None:
                raise _form_error("ca", "paste or upload the CA certificates (PEM)")
            change = await certificates.import_ca(name, data, actor=session.actor, replace=True)
        else:
            change = await posted.save(certificates, session, name, replace=True)
    except InvalidConfiguration as exc:
        errors, general = split_errors(exc, (*IMPORT_FIELDS, "ca"))
        return _detail(request, services, name, errors=errors, general=general, status_code=422)
    return _done(request, change, "replaced", f"/certificates/{name}")


@router.post("/certificates/{name}/delete", response_class=HTMLResponse)
async def delete_certificate(
    request: Request, name: str, session: Administrator, services: Services
) -> Response:
    try:
        await certificates_of(services).delete(name, actor=session.actor)
    except InvalidConfiguration as exc:
        errors, general = split_errors(exc, ())
        return _detail(
            request, services, name, general=general or list(errors.values()), status_code=422
        )
    flash(request, f"Certificate {name} deleted.")
    return RedirectResponse("/certificates", status_code=303)


def _refused(
    request: Request,
    services: Services,
    form: str,
    fields: tuple[str, ...],
    exc: InvalidConfiguration,
    values: Mapping[str, Any],
) -> HTMLResponse:
    errors, general = split_errors(exc, fields)
    renamed = RENAMED.get(form, {})
    errors = {renamed.get(field, field): message for field, message in errors.items()}
    return _page(
        request,
        services,
        form=form,
        values=values,
        errors=errors,
        general=general,
        status_code=422,
    )


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.replace("\n", ",").split(",") if item.strip()]
