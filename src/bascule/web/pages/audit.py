"""The audit log: every change, login and account change, who did it, when, from where.

Outside the flow of a change, looking back at all of it: ``ConfigService`` records every
configuration change (committed or refused, with its diff) and ``AccountService`` every login,
user and token change; this page (administrators only) reads them back a page at a time,
newest first, optionally filtered by who or by action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from bascule.reconcile.diff import diff_from_json
from bascule.store.audit import AuditEntry
from bascule.web.auth import Administrator
from bascule.web.pages.history import DiffRow, diff_rows
from bascule.web.services import Services
from bascule.web.templating import render

router = APIRouter()

PAGE_SIZE = 50
#: The actions the filter offers (the audit log's vocabulary, see daemon/audit.py).
ACTIONS = (
    "config.apply",
    "config.edit",
    "config.restore",
    "config.rollback",
    "real_server.state",
    "login",
    "logout",
    "user.create",
    "user.password",
    "user.role",
    "user.delete",
    "token.create",
    "token.revoke",
    "persistence.clear",
    "access.denied",
)


@dataclass(frozen=True, kw_only=True)
class AuditRow:
    """An entry and its diff as the page shows it."""

    entry: AuditEntry
    rows: list[DiffRow]


def _rows(entry: AuditEntry) -> list[DiffRow]:
    try:
        return diff_rows(diff_from_json(list(entry.diff)))
    except ValueError:  # written by an older release in another shape: show nothing
        return []


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(
    request: Request,
    session: Administrator,
    services: Services,
    offset: Annotated[int, Query(ge=0)] = 0,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    actor = actor or None
    action = action or None
    entries, total = services.audit.page(offset, PAGE_SIZE, actor=actor, action=action)
    filters = {k: v for k, v in (("actor", actor), ("action", action)) if v}

    def page_url(at: int) -> str:
        query = urlencode({**filters, **({"offset": at} if at else {})})
        return "/audit" + (f"?{query}" if query else "")

    return render(
        request,
        "audit/index.html",
        {
            "page": "audit",
            "title": "Audit log",
            "audit_rows": [AuditRow(entry=e, rows=_rows(e)) for e in entries],
            "total": total,
            "first": offset + 1,
            "last": offset + len(entries),
            "newer": page_url(max(0, offset - PAGE_SIZE)) if offset > 0 else None,
            "older": page_url(offset + PAGE_SIZE) if offset + PAGE_SIZE < total else None,
            "actor_filter": actor or "",
            "action_filter": action or "",
            "actions": ACTIONS,
        },
    )
