"""How the CLI shows the API's answers: rich tables and coloured diffs for people, or the
API's JSON unchanged with ``--json`` for scripts.

User data (names, messages, diff paths such as ``real_servers[198.18.0.4:80]``) is always
wrapped in ``rich.text.Text`` so square brackets are never read as rich markup.

Nothing a daemon answers reaches the terminal raw: a revision message, an author, an engine's
message or a real server's banner could carry ESC sequences (which rewrite the screen, the
window title, the clipboard...) or newlines (which forge lines). ``clean`` shows every control
character as an escape (``\x1b``, ``\n``); every cell goes through it, and ``console()`` is a
``SafeConsole``, which escapes any control character left in what it prints but its own line
breaks. ``--json`` output escapes them as JSON does (``\u001b``), C1 and DEL included.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from bascule.cli.errors import CliError
from bascule.text import CONTROL_BUT_NEWLINE, escape, escape_control

STATUS_STYLES: Mapping[str, str] = {
    "up": "green",
    "degraded": "yellow",
    "down": "red",
    "sorry": "magenta",
    "disabled": "bright_black",
    "unchecked": "cyan",
    "drain": "yellow",
    "apply_error": "bold red",
}

DIFF_STYLES: Mapping[str, str] = {"+": "green", "-": "red", "~": "yellow"}


def clean(value: str) -> str:
    """``value`` with every control character shown as an escape (``bascule.text``):
    ``a\x1b[2Jb`` prints as the eight characters ``a\\x1b[2Jb``, a newline as ``\\n``."""
    return escape_control(value)


class SafeConsole(Console):
    """A rich console that escapes every control character in the text it prints, but the
    line breaks of its own layout (rich strips only a few: BEL, BS, VT, FF, CR)."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        safe = (
            segment
            if segment.control or not CONTROL_BUT_NEWLINE.search(segment.text)
            else Segment(CONTROL_BUT_NEWLINE.sub(escape, segment.text), segment.style)
            for segment in buffer
        )
        return super()._render_buffer(safe)


def console() -> Console:
    """A console on the current stdout (created per use so test runners can capture it)."""
    out = SafeConsole(highlight=False)
    if not out.is_terminal:
        # Piped or captured output has no width to respect; 80 columns would fold addresses
        # and status words mid-token. A terminal keeps its own width.
        out = SafeConsole(highlight=False, width=200)
    return out


def json_text(data: Any) -> str:
    """``data`` as indented JSON whose strings carry no raw control character: json escapes
    C0 itself; DEL, C1 and the Unicode separators and overrides are escaped here too."""
    dumped = json.dumps(data, indent=2, ensure_ascii=False)  # its own newlines stay
    return CONTROL_BUT_NEWLINE.sub(lambda match: f"\\u{ord(match[0]):04x}", dumped)


def print_json(data: Any) -> None:
    """The API's JSON, as it came, indented (control characters escaped)."""
    sys.stdout.write(json_text(data) + "\n")


def minute(value: object) -> str:
    """A timestamp to the minute: ``2026-11-26T06:45:08.201002+00:00`` -> ``2026-11-26 06:45``;
    none is a dash."""
    stamp = str(value or "")
    return stamp[:16].replace("T", " ") if stamp else "-"


def text(value: Any, style: str = "") -> Text:
    """A table cell: ``None`` shows as a dash, booleans as yes/no, control characters as
    escapes (``clean``)."""
    if value is None:
        return Text("-", style="bright_black")
    if isinstance(value, bool):
        value = "yes" if value else "no"
    return Text(clean(str(value)), style=style)


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def diff_text(diff: str) -> Text:
    """A ``format_diff`` text coloured by its first character (``+``, ``-``, ``~``)."""
    result = Text()
    for line in diff.splitlines():
        result.append(clean(line), style=DIFF_STYLES.get(line[:1], ""))
        result.append("\n")
    result.rstrip()
    return result


def print_diff(diff: str) -> None:
    if diff:
        console().print(diff_text(diff), soft_wrap=True)


def print_change(result: Mapping[str, Any], *, as_json: bool) -> None:
    """Show an ApplyResult: the diff, the engine's actions, then what happened.

    Raises ``CliError`` (exit 1) when the revision was committed but the engine could not
    apply it: the previous working state is still running and the user must act.
    """
    if as_json:
        print_json(result)
    else:
        out = console()
        print_diff(str(result.get("diff_text") or ""))
        actions = list(result.get("actions") or ())
        if actions:
            out.print(Text("actions:", style="bold"))
            for action in actions:
                out.print(Text(f"  {action}"), soft_wrap=True)
        for line in detection_lines(result.get("detections") or ()):
            out.print(Text(line), soft_wrap=True)
        out.print(Text(outcome(result)), soft_wrap=True)
    if not result.get("dry_run") and result.get("changed") and not result.get("applied", True):
        raise CliError(
            f"revision {result.get('revision')} is committed but the engine could not apply it "
            f"(the previous working state is still running): {result.get('message') or '?'}"
        )


def detection_lines(detections: Iterable[Mapping[str, Any]]) -> list[str]:
    """``web: detected: http — "HTTP/1.1 200" from 198.18.0.11:80``, then its notes."""
    lines: list[str] = []
    for detection in detections:
        name = detection.get("virtual_service", "?")
        lines.append(f"{name}: {detection.get('evidence', '')}")
        lines.extend(f"{name}: note: {note}" for note in detection.get("notes") or ())
    return lines


def outcome(result: Mapping[str, Any]) -> str:
    """One line: ``revision 7 applied``, ``no change``, or what a dry run would do."""
    revision = result.get("revision")
    if result.get("dry_run"):
        if not result.get("changed"):
            return "dry run: no change"
        return f"dry run: nothing was changed (the current revision is still {revision})"
    if not result.get("changed"):
        return "no change" if revision is None else f"no change (revision {revision})"
    if result.get("applied"):
        return f"revision {revision} applied"
    return f"revision {revision} committed, not applied"


def table(*columns: str, title: str | None = None) -> Table:
    grid = Table(title=title, title_justify="left", header_style="bold", box=None, pad_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    return grid


def properties(rows: Iterable[tuple[str, Any]]) -> Table:
    """A two-column ``key  value`` list."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(Text(key), text(value))
    return grid


def flatten(document: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested mappings as dotted keys (``check.interval``), as ``vs set`` accepts them."""
    rows: list[tuple[str, Any]] = []
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows.extend(flatten(value, f"{name}."))
        elif isinstance(value, list | dict):
            rows.append((name, json.dumps(value, ensure_ascii=False)))
        else:
            rows.append((name, value))
    return rows
