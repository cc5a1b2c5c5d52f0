"""Backup and restore: the configuration as a file, and a file made current again.

Both ends of the flow of a change: the download is the current revision's document as YAML
(first line ``# bascule revision N``, the file ``bascule export`` writes); an uploaded file is
read (daemon/backup.py), planned as a change (``changes.propose``: validated, checked by the
engines, diffed against the current configuration), shown on ``/preview`` and applied only
when the person clicks Apply, as a new revision "restore from backup". A file that cannot be
read or whose document is invalid is refused beside the upload field, and nothing changes.
Users and API tokens are not part of a backup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from bascule.daemon.backup import (
    MAX_BACKUP_BYTES,
    backup_filename,
    backup_revision,
    backup_text,
    read_backup,
    restore,
)
from bascule.daemon.changes import ChangeRequest
from bascule.daemon.results import ApplyResult
from bascule.errors import EngineError, FieldError, InvalidConfiguration
from bascule.model.access import Permission
from bascule.web.auth import Configurer, Reader
from bascule.web.changes import PendingChange, new_request, propose
from bascule.web.services import Services
from bascule.web.templating import render

router = APIRouter()


def _backup_page(
    request: Request,
    services: Services,
    *,
    problems: Sequence[str] = (),
    filename: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    revision, document = services.config.document()
    return render(
        request,
        "backup/index.html",
        {
            "page": "backup",
            "title": "Backup and restore",
            "revision": revision,
            "services_count": len(document.get("virtual_services") or []),
            "download_name": backup_filename(revision),
            "problems": list(problems),
            "filename": filename,
        },
        status_code=status_code,
    )


@router.get("/backup", response_class=HTMLResponse)
async def backup_page(request: Request, session: Reader, services: Services) -> HTMLResponse:
    return _backup_page(request, services)


@router.get("/backup/download")
async def download(session: Reader, services: Services) -> Response:
    revision, document = services.config.document()
    return Response(
        backup_text(revision, document),
        media_type="application/yaml",
        headers={
            "Content-Disposition": f'attachment; filename="{backup_filename(revision)}"',
        },
    )


def _describe(error: FieldError) -> str:
    return str(error) if error.path else error.message


@router.post("/backup/restore", response_class=HTMLResponse)
async def upload(
    request: Request,
    session: Configurer,
    services: Services,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Read the uploaded file and plan it; the preview applies it.

    The file is a parameter (not read from ``request.form()``) so that FastAPI parses the
    form before the session's CSRF check and closes the uploaded file after the response.
    """
    upload = file
    if upload is None or not upload.filename:
        return _backup_page(
            request, services, problems=["choose a backup file to upload"], status_code=422
        )
    filename = upload.filename
    data = await upload.read(MAX_BACKUP_BYTES + 1)
    config = services.config
    try:
        document = await asyncio.to_thread(read_backup, data)  # seconds of YAML for a big file
    except InvalidConfiguration as exc:
        problems = [_describe(e) for e in exc.errors]
        return _backup_page(
            request, services, problems=problems, filename=filename, status_code=422
        )
    taken_from = backup_revision(data.decode("utf-8-sig", "replace"))

    async def run(change_request: ChangeRequest) -> ApplyResult:
        return await restore(config, document, change_request)

    source = f"{filename} (revision {taken_from})" if taken_from else filename
    change = PendingChange(
        title=f"Restore the configuration from {source}",
        request=new_request(services, session),
        run=run,
        permission=Permission.configure,
        return_to="/backup",
        done_to="/history",
    )
    try:
        return await propose(request, session, change)
    except InvalidConfiguration as exc:
        problems = [_describe(e) for e in exc.errors]
    except EngineError as exc:
        problems = [str(exc)]
    return _backup_page(request, services, problems=problems, filename=filename, status_code=422)
