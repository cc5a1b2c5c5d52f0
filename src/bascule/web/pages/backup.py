"""Backup and restore: the configuration as a file, and a file made current again.

Both ends of the flow of a change: the download is the current revision's document as YAML
(first line ``# bascule revision N``, the file ``bascule export`` writes); an uploaded file is
read (daemon/backup.py), planned as a change (``changes.propose``: validated, checked by the
engines, diffed against the current configuration), shown on ``/preview`` and applied only
when the person clicks Apply, as a new revision "restore from backup". A file that cannot be
read or whose document is invalid is refused beside the upload field, and nothing changes.
Users and API tokens are not part of a backup. The certificate store is: its certificates in
every download, their private keys only in the download an administrator seals with a
passphrase, which the restore form asks for again (daemon/backup.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from bascule.daemon.backup import (
    CERTIFICATE_STORE,
    MAX_BACKUP_BYTES,
    backup_filename,
    backup_of,
    backup_revision,
    read_backup,
    restore_backup,
)
from bascule.daemon.changes import ChangeRequest
from bascule.daemon.results import ApplyResult
from bascule.errors import EngineError, FieldError, InvalidConfiguration
from bascule.model.access import Permission
from bascule.web.auth import Administrator, Configurer, Reader
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
    passphrase_problem: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    revision, document = services.config.document()
    certificates = services.certificates
    store_count = len(certificates.entries()) if certificates is not None else 0
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
            "store_count": store_count,
            "passphrase_problem": passphrase_problem,
        },
        status_code=status_code,
    )


@router.get("/backup", response_class=HTMLResponse)
async def backup_page(request: Request, session: Reader, services: Services) -> HTMLResponse:
    return _backup_page(request, services)


def _download(services: Services, passphrase: str | None) -> Response:
    revision, text = backup_of(
        services.config,
        certificates=services.certificates,
        pages=services.pages,
        http_users=services.http_users,
        passphrase=passphrase,
    )
    return Response(
        text,
        media_type="application/yaml",
        headers={
            "Content-Disposition": f'attachment; filename="{backup_filename(revision)}"',
        },
    )


@router.get("/backup/download")
async def download(session: Reader, services: Services) -> Response:
    return _download(services, None)


@router.post("/backup/download", response_class=HTMLResponse)
async def download_with_keys(
    request: Request,
    session: Administrator,
    services: Services,
    passphrase: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """The backup with the certificate store's private keys sealed by ``passphrase``."""
    try:
        return await asyncio.to_thread(_download, services, passphrase)
    except InvalidConfiguration as exc:
        return _backup_page(
            request,
            services,
            passphrase_problem=exc.errors[0].message if exc.errors else str(exc),
            status_code=422,
        )


def _describe(error: FieldError) -> str:
    return str(error) if error.path else error.message


@router.post("/backup/restore", response_class=HTMLResponse)
async def upload(
    request: Request,
    session: Configurer,
    services: Services,
    file: Annotated[UploadFile | None, File()] = None,
    passphrase: Annotated[str, Form(max_length=1024)] = "",
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
        return await restore_backup(
            config,
            services.certificates,
            document,
            change_request,
            passphrase=passphrase or None,
            pages=services.pages,
            http_users=services.http_users,
        )

    source = f"{filename} (revision {taken_from})" if taken_from else filename
    change = PendingChange(
        title=f"Restore the configuration from {source}{_store_words(document)}",
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


def _store_words(content: dict[str, Any]) -> str:
    """What the backup's certificate store section holds, for the preview's title."""
    store = content.get(CERTIFICATE_STORE)
    if not isinstance(store, dict):
        return ""
    count = len(store.get("entries") or [])
    keys = "with its sealed private keys" if store.get("keys") else "without private keys"
    plural = "entry" if count == 1 else "entries"
    return f", and {count} certificate store {plural} {keys}"
