"""The preview: the pending change's diff and plan, Apply or Cancel, then the result.

The change itself is kept server-side under the session (state.py), never taken from the
browser: Apply runs exactly what was planned, against the revision it was planned on. A
change someone else made meanwhile is refused (``Conflict``) and the person plans again; the
permission is checked again at Apply. The result shows the new revision, the actions the
engines took, and whether the change was applied or the engine's error.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bascule.errors import Conflict, EngineError, InvalidConfiguration
from bascule.reconcile.diff import DiffItem, DiffOp
from bascule.web.auth import Reader, refusal
from bascule.web.pages.history import readable_path
from bascule.web.state import flash, session_states
from bascule.web.templating import render

router = APIRouter()


@dataclass(frozen=True, kw_only=True)
class PreviewRow:
    """One change as the preview shows it; an added or removed object comes with its
    fields as YAML (``detail``) under a one-line summary."""

    op: str  # add | remove | change (CSS class diff-<op>)
    sign: str
    path: str  # the raw path (data-path, for the tests)
    where: str  # "real server 198.18.0.4:80 of web"
    field: str  # "weight", "" for a whole object
    old: str
    new: str
    detail: str  # YAML of an added/removed mapping or list, "" for a plain value


_SIGNS = {DiffOp.ADD: "+", DiffOp.REMOVE: "-", DiffOp.CHANGE: "~"}


def _expanded(diff: Iterable[DiffItem]) -> Iterable[DiffItem]:
    # The first service of an empty configuration comes as the whole list: show each
    # service as added, by name, like every later one.
    for item in diff:
        if item.path == "virtual_services" and item.op is DiffOp.ADD and item.old is None:
            services = (
                [vs for vs in item.new if isinstance(vs, dict)]
                if isinstance(item.new, list)
                else []
            )
            if services and all(isinstance(vs.get("name"), str) for vs in services):
                for vs in services:
                    yield DiffItem(
                        op=DiffOp.ADD, path=f"virtual_services[{vs['name']}]", old=None, new=vs
                    )
                continue
        yield item


def _one_line(value: Any) -> str:
    if isinstance(value, dict):
        return f"{len(value)} fields"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _detail(value: Any) -> str:
    if isinstance(value, dict) or (
        isinstance(value, list) and value and isinstance(value[0], dict)
    ):
        return yaml.safe_dump(value, sort_keys=False, default_flow_style=False).rstrip()
    return ""


def preview_rows(diff: Iterable[DiffItem]) -> list[PreviewRow]:
    rows = []
    for item in _expanded(diff):
        where, field = readable_path(item.path)
        value = item.new if item.op is DiffOp.ADD else item.old
        rows.append(
            PreviewRow(
                op=item.op.value,
                sign=_SIGNS[item.op],
                path=item.path,
                where=where,
                field=field,
                old="" if item.op is DiffOp.ADD else _one_line(item.old),
                new="" if item.op is DiffOp.REMOVE else _one_line(item.new),
                detail="" if item.op is DiffOp.CHANGE else _detail(value),
            )
        )
    return rows


@router.get("/preview", response_class=HTMLResponse)
async def preview(request: Request, session: Reader) -> HTMLResponse:
    pending = session_states(request).pending(session.id)
    context: dict[str, Any] = {"title": "Preview", "page": "", "pending": pending}
    if pending is not None:
        shown_result = pending.result or pending.plan
        context["diff"] = preview_rows(shown_result.diff) if shown_result else []
        context["may_apply"] = session.actor.may(pending.permission)
    return render(request, "preview/preview.html", context)


@router.post("/preview/apply")
async def apply(request: Request, session: Reader) -> Response:
    states = session_states(request)
    pending = states.pending(session.id)
    if pending is None or pending.result is not None:
        flash(request, "There is no change waiting to be applied.", "info")
        return RedirectResponse("/preview", status_code=303)
    if not session.actor.may(pending.permission):
        raise refusal(
            request,
            session,
            f"Your role ({session.actor.role.value}) may not apply this change: it needs the "
            f"{pending.permission.value} permission.",
        )
    try:
        result = await pending.apply()
    except Conflict:
        states.set_pending(session.id, None)
        flash(
            request,
            "The configuration changed since this preview (someone else applied a change). "
            "Nothing was applied: please make your change again.",
            "error",
        )
        return RedirectResponse(pending.return_to, status_code=303)
    except (InvalidConfiguration, EngineError) as exc:
        states.set_pending(session.id, None)
        flash(request, f"Nothing was applied: {exc}", "error")
        return RedirectResponse(pending.return_to, status_code=303)
    states.set_pending(session.id, dataclasses.replace(pending, result=result))
    return RedirectResponse("/preview", status_code=303)


@router.post("/preview/cancel")
async def cancel(request: Request, session: Reader) -> Response:
    states = session_states(request)
    pending = states.pending(session.id)
    states.set_pending(session.id, None)
    if pending is None:
        return RedirectResponse("/", status_code=303)
    if pending.result is None:
        flash(request, "Cancelled: nothing was changed.", "info")
        return RedirectResponse(pending.return_to, status_code=303)
    return RedirectResponse(pending.done_to or pending.return_to, status_code=303)
