"""``bascule logs [VS] [--follow] [--since 15m]``: the request logs HAProxy writes.

Reads ``GET /api/v1/logs``; ``--follow`` asks again every second for the lines since the last
one shown, as ``tail -f`` would.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer

from bascule.cli import output
from bascule.cli.errors import CliError
from bascule.cli.session import JsonFlag, Session

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
FOLLOW_INTERVAL = 1.0


def since_of(text: str | None, now: datetime) -> datetime | None:
    """``15m`` (s, m, h, d) before ``now``, or an ISO date; None for None."""
    if text is None:
        return None
    match = _DURATION.match(text.strip())
    if match:
        return now - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(
            f"--since {text!r}: give a duration such as 15m or 2h, or an ISO date"
        ) from None
    return when if when.tzinfo is not None else when.astimezone()


def logs(
    ctx: typer.Context,
    virtual_service: Annotated[
        str | None, typer.Argument(help="Only this virtual service's requests.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    since: Annotated[
        str | None, typer.Option("--since", help="Only lines from then on: 15m, 2h, 1d or a date.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many lines.", min=1)] = 200,
    as_json: JsonFlag = False,
) -> None:
    """Show the request logs: client, date, service, server, timings, status, bytes,
    termination state and request, in HAProxy's own format."""
    session = Session.of(ctx, json=as_json)
    start = since_of(since, datetime.now().astimezone())
    with session.client() as api:
        answer = api.request_logs(virtual_service=virtual_service, since=start, limit=limit)
        if session.json and not follow:
            output.print_json(answer)
            return
        shown = _print(answer.get("lines") or [], set(), session.json)
        while follow:
            time.sleep(FOLLOW_INTERVAL)
            latest = max((line.get("time") or "" for line in shown.values()), default="")
            after = datetime.fromisoformat(latest) if latest else start
            answer = api.request_logs(virtual_service=virtual_service, since=after, limit=limit)
            shown = _print(answer.get("lines") or [], set(shown), session.json)


def _print(lines: list[dict[str, Any]], seen: set[str], as_json: bool) -> dict[str, Any]:
    """Print the lines not in ``seen``; the lines of this answer by their text."""
    out = output.console()
    for line in lines:
        text = str(line.get("line", ""))
        if text in seen:
            continue
        if as_json:
            output.print_json(line)
        else:
            out.print(output.text(text))
    return {str(line.get("line", "")): line for line in lines}
