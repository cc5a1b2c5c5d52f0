"""/backup and /restore: the configuration document as a file to keep, and back again.

A backup is the current revision's document as YAML, headed ``# bascule revision N`` exactly
as ``bascule export`` writes it, so the same file also works with ``bascule apply -f`` (unless
it carries the certificate store: its ``certificate_store`` section, the certificates always
and their keys only sealed with a passphrase, ``POST /backup``, is restored here). A
restore enters the flow of a change at its first door like any apply: the whole document is
validated, checked by the engines, committed as a new revision ("restore from backup") and
applied; on any error nothing is changed and the errors name the document's own fields.
Users, tokens and the audit log are not in a backup: they hold secrets (password hashes,
token hashes) and who-did-what, which a configuration file must not carry around. The file
format and the restore itself are daemon/backup.py's, shared with the WUI's Backup page.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from bascule.api.answers import change_answer
from bascule.api.bodies import OffLoopRoute
from bascule.api.deps import (
    Administrator,
    ConfigServiceDep,
    ConfigureAction,
    DryRun,
    get_services,
)
from bascule.api.etags import etag
from bascule.api.schemas import ApplyResultOut
from bascule.daemon import backup as backups
from bascule.errors import FieldError, InvalidConfiguration

router = APIRouter(tags=["backup"], route_class=OffLoopRoute)

YAML_TYPE = "application/yaml"

_DOCUMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A configuration document, as GET /backup or `bascule export` writes it",
}
RESTORE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The document as YAML or JSON, or a multipart form with a `file` field "
        "(and a `passphrase` field when the backup's private keys are sealed; with a raw body, "
        "the X-Backup-Passphrase header)",
        "content": {
            YAML_TYPE: {"schema": _DOCUMENT_SCHEMA},
            "application/json": {"schema": _DOCUMENT_SCHEMA},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "passphrase": {"type": "string"},
                    },
                    "required": ["file"],
                }
            },
        },
    }
}


PASSPHRASE_HEADER = "X-Backup-Passphrase"  # noqa: S105 - a header name, not a secret


class SealedBackupIn(BaseModel):
    passphrase: str = Field(
        min_length=12,
        max_length=1024,
        description="Seals the certificate store's private keys (scrypt, AES-256-GCM); a "
        "restore asks for it",
    )


def _backup_file(config: ConfigServiceDep, request: Request, passphrase: str | None) -> Response:
    services = get_services(request)
    revision, text = backups.backup_of(
        config,
        certificates=services.certificates,
        pages=services.pages,
        http_users=services.http_users,
        passphrase=passphrase,
    )
    filename = backups.backup_filename(revision)
    # PyYAML writes in pure Python and scrypt takes a moment: the caller runs this in a
    # worker thread
    return Response(
        text,
        media_type=YAML_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "ETag": etag(revision),
        },
    )


@router.get(
    "/backup",
    summary="Download the configuration document as YAML, with the certificate store's "
    "certificates (without their private keys)",
    response_class=Response,
    responses={200: {"content": {YAML_TYPE: {"schema": _DOCUMENT_SCHEMA}}}},
)
async def backup(config: ConfigServiceDep, request: Request) -> Response:
    return await asyncio.to_thread(_backup_file, config, request, None)


@router.post(
    "/backup",
    summary="Download the backup with the certificate store's private keys sealed by a "
    "passphrase (administer)",
    response_class=Response,
    responses={200: {"content": {YAML_TYPE: {"schema": _DOCUMENT_SCHEMA}}}},
)
async def sealed_backup(
    actor: Administrator,
    config: ConfigServiceDep,
    request: Request,
    body: Annotated[SealedBackupIn, Body()],
) -> Response:
    return await asyncio.to_thread(_backup_file, config, request, body.passphrase)


@router.post(
    "/restore",
    summary="Restore a backup: validated, then applied as a new revision",
    openapi_extra=RESTORE_BODY,
    response_model=ApplyResultOut,
)
async def restore(
    request: Request,
    config: ConfigServiceDep,
    change_request: ConfigureAction,
    dry_run: DryRun = False,
) -> Response:
    data, passphrase = await _upload(request)
    # YAML is parsed in pure Python: seconds for a large file, so in a worker thread
    content = await asyncio.to_thread(backups.read_backup, data)
    result = await backups.restore_backup(
        config,
        get_services(request).certificates,
        content,
        change_request.with_dry_run(dry_run),
        passphrase=passphrase,
        pages=get_services(request).pages,
        http_users=get_services(request).http_users,
    )
    return await change_answer(result)


async def _upload(request: Request) -> tuple[bytes, str | None]:
    """The file's bytes: the request body, or the ``file`` field of a multipart form; reading
    stops past the size limit (``read_backup`` then refuses the file). And the passphrase of
    its sealed keys: the form's ``passphrase`` field, or the X-Backup-Passphrase header."""
    limit = backups.MAX_BACKUP_BYTES + 1
    passphrase = request.headers.get(PASSPHRASE_HEADER) or None
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=10) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InvalidConfiguration(
                    [FieldError(path="file", message="is required: the backup file to restore")]
                )
            given = form.get("passphrase")
            if isinstance(given, str) and given:
                passphrase = given
            return await upload.read(limit), passphrase
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) >= limit:
            break
    return bytes(received), passphrase
