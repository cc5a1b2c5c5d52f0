"""Request logs: the lines HAProxy writes for every request (L7), read back with filters.

Outside the flow of a change, like ``bascule logs``: the daemon keeps HAProxy's lines on disk
(daemon/request_logs.py); this page (any role) shows the newest ones, of one service or all,
since a number of minutes, holding a text (a client address, a status, a path), newest first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from bascule.web.auth import Reader
from bascule.web.services import Services
from bascule.web.templating import render

router = APIRouter()

#: How many lines the page shows at most, and the choices of its "since" filter (minutes).
LIMITS = (50, 200, 1000)
SINCE_MINUTES = (5, 60, 24 * 60)


@router.get("/request-logs", response_class=HTMLResponse)
async def request_logs_page(
    request: Request,
    session: Reader,
    services: Services,
    vs: Annotated[str | None, Query(max_length=63)] = None,
    text: Annotated[str | None, Query(max_length=200)] = None,
    # minutes, or empty (the form's "any time"): a string, which an int parameter refuses
    since: Annotated[str | None, Query(pattern=r"^(|[1-9][0-9]{0,3})$")] = None,
    limit: Annotated[int, Query(ge=1, le=max(LIMITS))] = LIMITS[1],
) -> HTMLResponse:
    vs, text = vs or None, text or None
    minutes = int(since) if since else None
    lines = []
    if services.request_logs is not None:
        after = None if minutes is None else datetime.now(UTC) - timedelta(minutes=minutes)
        # the filter on text reads more lines than it shows: keep the newest that hold it
        read = services.request_logs.read(service=vs, since=after, limit=max(LIMITS) * 5)
        lines = [line for line in read if text is None or text in line.text][-limit:]
    return render(
        request,
        "request_logs/index.html",
        {
            "page": "request_logs",
            "title": "Request logs",
            "lines": list(reversed(lines)),
            "available": services.request_logs is not None,
            "vs_filter": vs or "",
            "text_filter": text or "",
            "since_filter": since or "",
            "limit": limit,
            "service_choices": [
                ("", "every service"),
                *(s.name for s in services.config.desired().virtual_services),
            ],
            "since_choices": [
                ("", "any time"),
                *((str(m), f"the last {_minutes(m)}") for m in SINCE_MINUTES),
            ],
            "limit_choices": [str(n) for n in LIMITS],
        },
    )


def _minutes(minutes: int) -> str:
    if minutes % (24 * 60) == 0:
        days = minutes // (24 * 60)
        return "day" if days == 1 else f"{days} days"
    if minutes % 60 == 0:
        hours = minutes // 60
        return "hour" if hours == 1 else f"{hours} hours"
    return f"{minutes} minutes"
