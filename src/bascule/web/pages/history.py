"""History: the revisions of the configuration, each one's diff, and rollback.

The end of the flow of a change as a person sees it afterwards: every committed revision with
who made it, when, why and what changed (``/history``, ``/history/{n}``). A rollback is a
change like any other: the button plans it (``changes.propose``: the document of revision n,
validated, checked, diffed against the current one), ``/preview`` shows the diff, and Apply
commits it through ``ConfigService.rollback`` as a new revision.

``diff_rows`` turns diff items into what a person reads ("real server 198.18.0.4:80 of web:
weight 1000 → 500"); the audit log page shows its diffs the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from bascule.daemon.changes import ChangeRequest
from bascule.daemon.results import ApplyResult
from bascule.errors import EngineError, InvalidConfiguration
from bascule.model.access import Permission
from bascule.reconcile.diff import DiffItem, DiffOp, parse_path
from bascule.web.auth import Configurer, Reader
from bascule.web.changes import PendingChange, new_request, propose
from bascule.web.services import Services
from bascule.web.state import flash
from bascule.web.templating import render

router = APIRouter()

PAGE_SIZE = 25

#: Keyed lists of the document and how one item reads: ``virtual_services[web]`` is
#: "virtual service web".
_ITEM_NOUNS = {"virtual_services": "virtual service", "real_servers": "real server"}
_OPS = {DiffOp.ADD: "+", DiffOp.REMOVE: "-", DiffOp.CHANGE: "~"}
_MAX_VALUE = 400  # characters of a value shown inline; longer ones are cut


@dataclass(frozen=True, kw_only=True)
class DiffRow:
    """One diff item as the page shows it."""

    op: str  # add | remove | change (the CSS class diff-<op>)
    sign: str  # + - ~
    where: str  # "real server 198.18.0.4:80 of web", "" for the document itself
    field: str  # "weight", "check.interval", "" when the whole object was added or removed
    old: str
    new: str
    path: str  # the raw path, for the title attribute and the tests


def readable_path(path: str) -> tuple[str, str]:
    """``virtual_services[web].real_servers[198.18.0.4:80].weight`` ->
    (``real server 198.18.0.4:80 of web``, ``weight``)."""
    try:
        segments = list(parse_path(path))
    except ValueError:
        return "", path
    objects: list[str] = []
    fields: list[str] = []
    index = 0
    while index < len(segments):
        segment = segments[index]
        noun = _ITEM_NOUNS.get(segment)
        if noun is not None and not fields and index + 1 < len(segments):
            objects.append(f"{noun} {segments[index + 1]}")
            index += 2
            continue
        fields.append(segment)
        index += 1
    return " of ".join(reversed(objects)), ".".join(fields)


def show_value(value: Any) -> str:
    """A value in one line: strings as they are, everything else as compact JSON."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


def diff_rows(items: Iterable[DiffItem]) -> list[DiffRow]:
    rows = []
    for item in items:
        where, field = readable_path(item.path)
        rows.append(
            DiffRow(
                op=item.op.value,
                sign=_OPS[item.op],
                where=where,
                field=field,
                old="" if item.op is DiffOp.ADD else show_value(item.old),
                new="" if item.op is DiffOp.REMOVE else show_value(item.new),
                path=item.path,
            )
        )
    return rows


# -- pages ------------------------------------------------------------------------------------


@router.get("/history", response_class=HTMLResponse)
async def history_page(
    request: Request,
    session: Reader,
    services: Services,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    config = services.config
    # One row more than shown tells whether there is an older page.
    rows = config.history(limit=PAGE_SIZE + 1, before=before)
    head, _ = config.document()
    return render(
        request,
        "history/index.html",
        {
            "page": "history",
            "title": "History",
            "revisions": rows[:PAGE_SIZE],
            "older": rows[PAGE_SIZE - 1].number if len(rows) > PAGE_SIZE else None,
            "newest": before is None,
            "head": head,
        },
    )


@router.get("/history/{number}", response_class=HTMLResponse)
async def revision_page(
    request: Request, number: int, session: Reader, services: Services
) -> HTMLResponse:
    config = services.config
    revision = config.revision(number)  # NotFound -> 404 page
    head, _ = config.document()
    return render(
        request,
        "history/revision.html",
        {
            "page": "history",
            "title": f"Revision {number}",
            "revision": revision,
            "rows": diff_rows(revision.diff),
            "head": head,
        },
    )


@router.post("/history/{number}/rollback", response_class=HTMLResponse)
async def rollback(
    request: Request, number: int, session: Configurer, services: Services
) -> RedirectResponse:
    """Plan the rollback to revision ``number`` and show it on ``/preview``."""
    config = services.config
    config.revision(number)  # NotFound -> 404 page, before anything is planned

    async def run(change_request: ChangeRequest) -> ApplyResult:
        return await config.rollback(number, change_request)

    change = PendingChange(
        title=f"Roll back to revision {number}",
        request=new_request(services, session),
        run=run,
        permission=Permission.configure,
        return_to=f"/history/{number}",
        done_to="/history",
    )
    try:
        return await propose(request, session, change)
    except (InvalidConfiguration, EngineError) as exc:
        # an old document may no longer fit the machine (a VIP, an engine): say why here
        flash(request, f"Revision {number} cannot be made current again: {exc}", "error")
        return RedirectResponse(f"/history/{number}", status_code=303)
