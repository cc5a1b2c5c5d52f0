"""``bascule apply`` and ``bascule export``: the whole configuration document as a file.

``export`` writes the document with a first line ``# bascule revision N``; ``apply`` reads that
line back and sends ``If-Match: "N"`` so an edit of a stale export is refused with a conflict
instead of silently overwriting someone else's change (``--force`` skips the check).
"""

from __future__ import annotations

import enum
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from bascule.cli import output
from bascule.cli.errors import CliError
from bascule.cli.session import JsonFlag, Session

REVISION_LINE = re.compile(r"^#\s*bascule revision (\d{1,18})\s*$")  # an SQLite INTEGER
#: A larger file is not a configuration document (the daemon reads 17 MiB at most).
MAX_DOCUMENT_CHARACTERS = 32 * 1024 * 1024


class Format(enum.StrEnum):
    yaml = "yaml"
    json = "json"


def revision_line(revision: int) -> str:
    return f"# bascule revision {revision}"


def read_document(source: str) -> tuple[Any, int | None]:
    """The parsed document in ``source`` (a path, or ``-`` for stdin) and its base revision."""
    name = "stdin" if source == "-" else source
    try:
        if source == "-":
            content = sys.stdin.read(MAX_DOCUMENT_CHARACTERS + 1)
        else:
            with Path(source).open(encoding="utf-8") as file:
                content = file.read(MAX_DOCUMENT_CHARACTERS + 1)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CliError(f"cannot read {name}: {reason}") from exc
    if len(content) > MAX_DOCUMENT_CHARACTERS:
        raise CliError(
            f"{name} is larger than {MAX_DOCUMENT_CHARACTERS // (1024 * 1024)} MiB: "
            "not a configuration document (the daemon would refuse it)"
        )
    first_line = content.split("\n", 1)[0]
    match = REVISION_LINE.match(first_line)
    base = int(match[1]) if match else None
    import yaml  # only the commands that read or write YAML pay for it

    from bascule import safeyaml

    try:
        document = safeyaml.load(content)  # no aliases (billion laughs), bounded depth
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name} line {mark.line + 1}" if mark is not None else name
        raise CliError(f"{where}: {exc.problem or exc.context or 'invalid YAML'}") from exc
    except yaml.YAMLError as exc:
        raise CliError(f"{name}: {exc}") from exc
    return ({} if document is None else document), base


def apply(
    ctx: typer.Context,
    file: Annotated[
        str, typer.Option("--file", "-f", help="YAML or JSON document; - reads stdin.")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan, change nothing.")
    ] = False,
    message: Annotated[
        str, typer.Option("--message", "-m", help="Why: recorded in the history.")
    ] = "",
    force: Annotated[
        bool,
        typer.Option("--force", help="Apply even if the file was exported from an older revision."),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Apply a whole configuration document (what `export` writes)."""
    session = Session.of(ctx, json=as_json)
    document, base = read_document(file)
    with session.client() as api:
        result = api.put_config(
            document, dry_run=dry_run, message=message, base=None if force else base
        )
    output.print_change(result, as_json=session.json)


def export(
    ctx: typer.Context,
    format: Annotated[
        Format, typer.Option("--format", help="yaml (default) or json.")
    ] = Format.yaml,
    out: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Print the current configuration document, ready to edit and apply."""
    session = Session.of(ctx, json=as_json)
    with session.client() as api:
        answer = api.get_config()
    if session.json:
        content = output.json_text(answer) + "\n"
    else:
        content = render(answer.get("document") or {}, answer.get("revision"), format)
    if out is None:
        sys.stdout.write(content)
        return
    try:
        out.write_text(content, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror or exc}") from exc


def render(document: Any, revision: int | None, format: Format) -> str:
    """The document as YAML (with its revision line) or as plain JSON.

    JSON has no comments, so a JSON export carries no revision: applying it is not checked
    against concurrent edits.
    """
    if format is Format.json:
        return output.json_text(document) + "\n"
    import yaml

    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return body if revision is None else f"{revision_line(revision)}\n{body}"
