"""/backup and /restore: the configuration document as a file to keep, and back again.

A backup is the current revision's document as YAML, headed ``# bascule revision N`` exactly
as ``bascule export`` writes it, so the same file also works with ``bascule apply -f``. A
restore enters the flow of a change at its first door like any apply: the whole document is
validated, checked by the engines, committed as a new revision ("restore from backup") and
applied; on any error nothing is changed and the errors name the document's own fields.
Users, tokens and the audit log are not in a backup: they hold secrets (password hashes,
token hashes) and who-did-what, which a configuration file must not carry around. The file
format and the restore itself are daemon/backup.py's, shared with the WUI's Backup page.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.datastructures import UploadFile

from bascule.api.answers import change_answer, text_off_loop
from bascule.api.bodies import OffLoopRoute
from bascule.api.deps import ConfigServiceDep, ConfigureAction, DryRun
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
        "description": "The document as YAML or JSON, or a multipart form with a `file` field",
        "content": {
            YAML_TYPE: {"schema": _DOCUMENT_SCHEMA},
            "application/json": {"schema": _DOCUMENT_SCHEMA},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


@router.get(
    "/backup",
    summary="Download the current configuration document as YAML",
    response_class=Response,
    responses={200: {"content": {YAML_TYPE: {"schema": _DOCUMENT_SCHEMA}}}},
)
async def backup(config: ConfigServiceDep) -> Response:
    revision, document = config.document()
    filename = backups.backup_filename(revision)
    # PyYAML writes in pure Python: seconds for a large document, so in a worker thread
    return await text_off_loop(
        lambda: backups.backup_text(revision, document),
        media_type=YAML_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "ETag": etag(revision),
        },
    )


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
    # YAML is parsed in pure Python: seconds for a large file, so in a worker thread
    document = await asyncio.to_thread(backups.read_backup, await _upload(request))
    result = await backups.restore(config, document, change_request.with_dry_run(dry_run))
    return await change_answer(result)


async def _upload(request: Request) -> bytes:
    """The file's bytes: the request body, or the ``file`` field of a multipart form; reading
    stops past the size limit (``read_backup`` then refuses the file)."""
    limit = backups.MAX_BACKUP_BYTES + 1
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=10) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InvalidConfiguration(
                    [FieldError(path="file", message="is required: the backup file to restore")]
                )
            return await upload.read(limit)
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) >= limit:
            break
    return bytes(received)
