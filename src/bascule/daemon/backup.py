"""Backup and restore of the configuration: the document as a file, and a file made current.

Both ends of the flow of a change as an administrator sees them: a backup is the current
revision's document written as YAML with a first line ``# bascule revision N`` (the same file
``bascule export`` writes), and a restore reads such a file (YAML or JSON) and hands it to the
one service layer as a change like any other (validated, checked by the engines, committed as a
new revision "restore from backup", applied). The API (``/api/v1/backup``, ``/restore``) and
the WUI (``/backup``) both use these functions, so they write and read the same files.

Users and API tokens are not in a backup: they carry secrets (password hashes) and belong to
the appliance, not to the configuration.

The certificate store travels in the same file, under ``certificate_store`` (when it has
entries): the certificates always, their private keys only sealed with a passphrase the
administrator gives (``store/certificates.py``, ``pki/keyset.py``); a restore asks for it, and
a backup without keys says so. Such a file is restored with ``bascule restore`` (or the API,
or the WUI), which puts the store back first and then the document that names it.

The page store (the pages ``not_available.respond.body_file`` names) travels the same way,
under ``page_store`` (when it has pages): every page with its content. A restore puts the
pages back first (a page of the same name is replaced, the others kept), then the document.

The HTTP user store (the users services' ``authentication`` names) travels only in a sealed
backup, under ``http_user_store``: the names and times in clear, the yescrypt hashes sealed
with the passphrase as the keys are (store/http_users.py, ``seal_rows``); never a password.
A restore opens them with the passphrase and puts the users back first (a user of the same
name takes the backup's hash, the others are kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

from bascule import safeyaml
from bascule.daemon.certificates import CertificateService
from bascule.daemon.changes import ChangeRequest
from bascule.daemon.http_users import HttpUserService
from bascule.daemon.pages import PAGE_STORE, PageService
from bascule.daemon.results import ApplyResult
from bascule.daemon.service import ConfigService
from bascule.errors import FieldError, InvalidConfiguration, NotApplicable
from bascule.store.http_users import BACKUP_SECTION as HTTP_USER_STORE

RESTORE_MESSAGE = "restore from backup"
RESTORE_ACTION = "config.restore"
REVISION_LINE = re.compile(r"^#\s*bascule revision (\d{1,18})\s*$")  # an SQLite INTEGER
#: A backup larger than this is not a configuration document (200 services of 10 servers
#: each are well under 1 MiB).
MAX_BACKUP_BYTES = 16 * 1024 * 1024


CERTIFICATE_STORE = "certificate_store"


def backup_text(
    revision: int | None,
    document: Mapping[str, Any],
    certificates: Mapping[str, Any] | None = None,
    pages: list[dict[str, str]] | None = None,
    http_users: Mapping[str, Any] | None = None,
) -> str:
    """The document as YAML, first line ``# bascule revision N`` (0 before the first), with
    the certificate store's export (``CertificateService.export``) when it has entries, the
    page store's (``PageService.export``) when it has pages and the HTTP user store's
    (``HttpUserService.export``: sealed backups only) when it has users."""
    content = dict(document)
    if certificates is not None and certificates.get("entries"):
        content[CERTIFICATE_STORE] = dict(certificates)
    if pages:
        content[PAGE_STORE] = list(pages)
    if http_users:
        content[HTTP_USER_STORE] = dict(http_users)
    body = yaml.safe_dump(content, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return f"# bascule revision {revision or 0}\n{body}"


def backup_of(
    config: ConfigService,
    *,
    certificates: CertificateService | None,
    pages: PageService | None,
    http_users: HttpUserService | None,
    passphrase: str | None,
) -> tuple[int | None, str]:
    """The current revision and its backup file (``backup_text``), the stores' sections
    included; with ``passphrase``, the private keys and the HTTP users' hashes sealed. Runs
    PyYAML and scrypt: call it in a worker thread."""
    revision, document = config.document()
    return revision, backup_text(
        revision,
        document,
        certificates.export(passphrase) if certificates is not None else None,
        pages.export() if pages is not None else None,
        http_users=http_users.export(passphrase) if http_users is not None else None,
    )


def split_backup(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A backup's configuration document and its certificate store section (None: none)."""
    document = dict(data)
    store = document.pop(CERTIFICATE_STORE, None)
    if store is not None and not isinstance(store, dict):
        raise InvalidConfiguration(
            [FieldError(path=CERTIFICATE_STORE, message="must be a mapping (a store export)")]
        )
    return document, store


async def restore_backup(
    config: ConfigService,
    certificates: CertificateService | None,
    data: Mapping[str, Any],
    request: ChangeRequest,
    *,
    passphrase: str | None = None,
    pages: PageService | None = None,
    http_users: HttpUserService | None = None,
) -> ApplyResult:
    """Restore a backup file's content: its HTTP user store, its page store and its
    certificate store first (each all or nothing), then its document (``restore``). A dry
    run opens the sealed hashes and keys, checks the pages and plans the document as if the
    stores' entries were there, and changes nothing. The stores' outcomes ("this backup
    carries no private keys"...) are added to the result's message."""
    content = dict(data)
    page_section = content.pop(PAGE_STORE, None)
    user_section = content.pop(HTTP_USER_STORE, None)
    if page_section is not None and pages is None:
        raise NotApplicable("this daemon has no page store to restore into")
    if user_section is not None and http_users is None:
        raise NotApplicable("this daemon has no HTTP user store to restore into")
    said: list[str] = []
    with contextlib.ExitStack() as planned:
        if request.dry_run:
            if user_section is not None and http_users is not None:
                # the passphrase first: the likeliest mistake, before anything else is read
                names = await asyncio.to_thread(http_users.check_backup, user_section, passphrase)
                said.append(f"{len(names)} HTTP user{'' if len(names) == 1 else 's'} in the backup")
                planned.enter_context(http_users.restoring(names))
            if page_section is not None and pages is not None:
                checked = await asyncio.to_thread(pages.check_backup, page_section)
                said.append(
                    f"{len(checked)} page{'' if len(checked) == 1 else 's'} of the page store"
                )
                planned.enter_context(pages.restoring(frozenset(checked)))
        else:
            if user_section is not None and http_users is not None:
                said.append(await http_users.restore(user_section, passphrase, actor=request.actor))
            if page_section is not None and pages is not None:
                said.append(await pages.restore(page_section, actor=request.actor))
        result = await _restore_certificates(
            config, certificates, content, request, passphrase=passphrase
        )
    message = "; ".join(part for part in (result.message, *said) if part)
    return dataclasses.replace(result, message=message)


async def _restore_certificates(
    config: ConfigService,
    certificates: CertificateService | None,
    data: Mapping[str, Any],
    request: ChangeRequest,
    *,
    passphrase: str | None,
) -> ApplyResult:
    document, store = split_backup(data)
    if store is None:
        return await restore(config, document, request)
    if certificates is None:
        raise NotApplicable("this daemon has no certificate store to restore into")
    if request.dry_run:
        said = await asyncio.to_thread(certificates.check_backup, store, passphrase)
        with certificates.restoring(store):
            result = await restore(config, document, request)
    else:
        report = await certificates.restore(store, passphrase, actor=request.actor)
        said = report.message
        result = await restore(config, document, request)
    message = "; ".join(part for part in (result.message, said) if part)
    return dataclasses.replace(result, message=message)


def backup_filename(revision: int | None) -> str:
    """The name a download is saved under: ``bascule-revision-7.yaml``."""
    return f"bascule-revision-{revision or 0}.yaml"


def backup_revision(text: str) -> int | None:
    """The revision a backup says it was taken from (its first line), if it says so."""
    first = text.split("\n", 1)[0].strip()
    match = REVISION_LINE.match(first)
    return int(match.group(1)) if match else None


def read_backup(data: bytes | str) -> dict[str, Any]:
    """The configuration document in a backup file (YAML or JSON).

    Raises ``InvalidConfiguration`` with one ``FieldError`` of path ``""`` when the file is
    not a document at all (empty, not UTF-8, not YAML, not a mapping, an alias, nested too
    deep: bascule.safeyaml); the document itself is validated by the service layer when it is
    restored. Parsing 16 MiB of YAML takes seconds: callers on the event loop run this in a
    worker thread.
    """
    if len(data) > MAX_BACKUP_BYTES:
        raise _unreadable(f"the file is larger than {MAX_BACKUP_BYTES // (1024 * 1024)} MiB")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise _unreadable("the file is not text (UTF-8): is it a Bascule backup?") from None
    else:
        text = data
    if not text.strip():
        raise _unreadable("the file is empty")
    try:
        document = safeyaml.load(text)  # aliases bounded by their expansion, bounded depth
    except yaml.YAMLError as exc:
        raise _unreadable(f"the file is not YAML or JSON: {_yaml_problem(exc)}") from None
    if not isinstance(document, dict):
        raise _unreadable(
            "the file does not hold a configuration document (a mapping with virtual_services)"
        )
    try:
        json.dumps(document, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _unreadable(f"the file holds values a configuration cannot: {exc}") from None
    return document


async def restore(
    config: ConfigService, document: Mapping[str, Any], request: ChangeRequest
) -> ApplyResult:
    """Make ``document`` the configuration, as a new revision "restore from backup".

    ``request.base`` is the revision the restore was planned on: a change by someone else
    between the plan (a dry run) and the restore is refused with ``Conflict``. Nothing is
    changed when the document is invalid or an engine refuses it.
    """
    restored = dict(document)
    return await config.edit(
        lambda _current: restored,
        request.with_default_message(RESTORE_MESSAGE),
        action=RESTORE_ACTION,
    )


def _unreadable(message: str) -> InvalidConfiguration:
    return InvalidConfiguration([FieldError(path="", message=message)])


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "unreadable"
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(problem)
