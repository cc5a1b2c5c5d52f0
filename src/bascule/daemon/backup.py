"""Backup and restore of the configuration: the document as a file, and a file made current.

Both ends of the flow of a change as an administrator sees them: a backup is the current
revision's document written as YAML with a first line ``# bascule revision N`` (the same file
``bascule export`` writes), and a restore reads such a file (YAML or JSON) and hands it to the
one service layer as a change like any other (validated, checked by the engines, committed as a
new revision "restore from backup", applied). The API (``/api/v1/backup``, ``/restore``) and
the WUI (``/backup``) both use these functions, so they write and read the same files.

Users and API tokens are not in a backup: they carry secrets (password hashes) and belong to
the appliance, not to the configuration.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

from bascule import safeyaml
from bascule.daemon.changes import ChangeRequest
from bascule.daemon.results import ApplyResult
from bascule.daemon.service import ConfigService
from bascule.errors import FieldError, InvalidConfiguration

RESTORE_MESSAGE = "restore from backup"
RESTORE_ACTION = "config.restore"
REVISION_LINE = re.compile(r"^#\s*bascule revision (\d{1,18})\s*$")  # an SQLite INTEGER
#: A backup larger than this is not a configuration document (200 services of 10 servers
#: each are well under 1 MiB).
MAX_BACKUP_BYTES = 16 * 1024 * 1024


def backup_text(revision: int | None, document: Mapping[str, Any]) -> str:
    """The document as YAML, first line ``# bascule revision N`` (0 before the first)."""
    body = yaml.safe_dump(
        dict(document), sort_keys=False, default_flow_style=False, allow_unicode=True
    )
    return f"# bascule revision {revision or 0}\n{body}"


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
