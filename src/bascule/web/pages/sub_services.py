"""Sub-service pages (LoadMaster's SubVS): one tab of the service page each.

A sub-service is a pool of its own inside an http service (model/sub_service.py): its tab
shows its status and real servers (with their state buttons, pages/real_servers.py serves
them under ``.../sub-services/<sub>/real-servers/``) and its own scheduler, persistence and
health check, each "as the service" when left empty. Adding, changing and deleting one are
edits of ``bascule.model.edits``, shown on ``/preview`` first; what the model refuses comes
back beside its field, nothing saved.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from bascule.errors import NotFound
from bascule.model import HealthCheck, Persistence, edits
from bascule.model.access import Permission
from bascule.web.auth import Configurer, Reader
from bascule.web.changes import config_edit, propose_form, propose_or_say
from bascule.web.fields import NAME, SERVICE_FIELDS, SUB_SERVICE_FIELDS, SUB_SERVICE_SECTIONS
from bascule.web.forms import NO_ERRORS, FormErrors, parse, posted_fields, typed_values, values
from bascule.web.option_fields import (
    POOL_SECTIONS,
    limits_value,
    switched,
    with_option_defaults,
)
from bascule.web.pages.virtual_services import (
    fields_part,
    named_choices,
    service_document,
    service_tabs,
    tab_statuses,
)
from bascule.web.services import Services, WebServices
from bascule.web.templating import render

router = APIRouter()

# What an empty choice leaves to the service: the whole section, not a half-filled one.
_INHERITED = {"persistence": "persistence.method", "check": "check.type"}


def _sub_service(services: WebServices, name: str, sub: str) -> tuple[int, int, dict[str, Any]]:
    """Indexes of the service and of its sub-service ``sub``, and the sub-service as stored."""
    index, stored = service_document(services, name)
    for position, found in enumerate(stored.get("sub_services") or []):
        if isinstance(found, dict) and found.get("name") == sub:
            return index, position, found
    raise NotFound(f"virtual service {name!r} has no sub-service named {sub!r}")


#: The tab's sections: the pool's own settings, then its limits and cache.
SECTIONS = (*SUB_SERVICE_SECTIONS, *POOL_SECTIONS)
FIELDS = (*SUB_SERVICE_FIELDS, *(f for _, _, fields in POOL_SECTIONS for f in fields))


def _shown(stored_sub: Mapping[str, Any]) -> dict[str, Any]:
    """A sub-service's form values: its own settings over the model's defaults (so a
    persistence method or a check chosen now starts from them)."""
    defaults = {
        "persistence": {**Persistence().model_dump(mode="json"), "method": None},
        "check": {**HealthCheck().model_dump(mode="json"), "type": None},
    }
    own = {key: value for key, value in stored_sub.items() if value is not None}
    merged = with_option_defaults({**defaults, **own})
    return {**values(merged, FIELDS), "cache.enabled": stored_sub.get("cache") is not None}


def _changes(form: Any) -> dict[str, Any]:
    """The posted settings; an empty scheduler, persistence method or check type is null:
    the service's. The limits and the cache, when posted, replace the stored ones whole."""
    changes = parse(form, posted_fields(form, FIELDS))
    for section, choice in _INHERITED.items():
        chosen = changes.get(section)
        if isinstance(chosen, dict) and chosen.get(choice.partition(".")[2]) is None:
            changes[section] = None
    if isinstance(changes.get("cache"), dict):
        changes["cache"] = switched(changes["cache"])
    if isinstance(changes.get("limits"), dict):
        changes["limits"] = limits_value(changes["limits"])
    return changes


def _replaced(sub: str, changes: Mapping[str, Any]) -> Any:
    """The edit of a sub-service's change: its posted limits and cache first cleared (a
    merge would keep a setting the form left empty), then ``changes`` merged."""

    def edit(document: Mapping[str, Any], *, service: str) -> Any:
        cleared = {group: None for group in ("limits", "cache") if group in changes}
        document = edits.update_sub_service(document, service, sub, cleared)
        return edits.update_sub_service(document, service, sub, changes)

    return edit


# -- add -------------------------------------------------------------------------------------


@router.get("/virtual-services/{name}/new-sub-service", response_class=HTMLResponse)
async def new_sub_service_form(
    request: Request, name: str, session: Configurer, services: Services
) -> HTMLResponse:
    _, stored = service_document(services, name)
    return _new_form(request, name, stored, {"name": ""}, NO_ERRORS)


@router.post("/virtual-services/{name}/new-sub-service", response_class=HTMLResponse)
async def add_sub_service(
    request: Request, name: str, session: Configurer, services: Services
) -> Response:
    index, stored = service_document(services, name)
    form = await request.form()
    sub = parse(form, (NAME,))
    change = config_edit(
        services,
        session,
        title=f"Add sub-service {sub.get('name')} to {name}",
        edit=functools.partial(edits.add_sub_service, service=name, sub_service=sub),
        message=f"add sub-service {sub.get('name')} to {name}",
        permission=Permission.configure,
        return_to=f"/virtual-services/{name}/new-sub-service",
        done_to=f"/virtual-services/{name}/sub-services/{sub.get('name')}",
    )
    position = len(stored.get("sub_services") or [])
    errors = await propose_form(
        request, session, change, prefix=f"virtual_services[{index}].sub_services[{position}]",
        names=["name"],
    )  # fmt: skip
    if not isinstance(errors, FormErrors):
        return errors
    return _new_form(request, name, stored, {"name": form.get("name")}, errors, status_code=422)


def _new_form(
    request: Request,
    name: str,
    stored: Mapping[str, Any],
    shown: Mapping[str, Any],
    errors: FormErrors,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "virtual_services/new_sub_service.html",
        {
            "title": f"Add a sub-service to {name}",
            "page": "dashboard",
            "name": name,
            "name_field": NAME,
            "values": shown,
            "errors": errors.fields,
            "general": errors.general,
            "tabs": service_tabs(stored),
            "tab": "+",
            "http": True,
        },
        status_code=status_code,
    )


# -- show, edit, delete ------------------------------------------------------------------------


@router.get("/virtual-services/{name}/sub-services/{sub}", response_class=HTMLResponse)
async def sub_service_page(
    request: Request, name: str, sub: str, session: Reader, services: Services
) -> HTMLResponse:
    _, _, found = _sub_service(services, name, sub)
    return await _page(request, services, name, sub, _shown(found), NO_ERRORS)


@router.post("/virtual-services/{name}/sub-services/{sub}", response_class=HTMLResponse)
async def edit_sub_service(
    request: Request, name: str, sub: str, session: Configurer, services: Services
) -> Response:
    index, position, found = _sub_service(services, name, sub)
    form = await request.form()
    change = config_edit(
        services,
        session,
        title=f"Change sub-service {sub} of {name}",
        edit=functools.partial(_replaced(sub, _changes(form)), service=name),
        message=f"change sub-service {sub} of {name}",
        permission=Permission.configure,
        return_to=f"/virtual-services/{name}/sub-services/{sub}",
        done_to=f"/virtual-services/{name}/sub-services/{sub}",
    )
    errors = await propose_form(
        request,
        session,
        change,
        prefix=f"virtual_services[{index}].sub_services[{position}]",
        names=[f.name for f in FIELDS],
    )
    if not isinstance(errors, FormErrors):
        return errors
    shown = typed_values(form, FIELDS, _shown(found))
    return await _page(request, services, name, sub, shown, errors, status_code=422)


@router.post("/virtual-services/{name}/sub-services/{sub}/fields", response_class=HTMLResponse)
async def sub_service_fields(
    request: Request, name: str, sub: str, session: Configurer, services: Services
) -> HTMLResponse:
    """The settings' sections again, for the choices typed so far (htmx swaps them in)."""
    _, _, found = _sub_service(services, name, sub)
    _, stored = service_document(services, name)
    form = await request.form()
    shown = typed_values(form, FIELDS, _shown(found))
    return render(
        request,
        "virtual_services/_fields.html",
        {
            "values": shown,
            "errors": {},
            **_fields(services, name, sub, stored, shown, editable=True),
        },
    )


@router.post("/virtual-services/{name}/sub-services/{sub}/delete")
async def delete_sub_service(
    request: Request, name: str, sub: str, session: Configurer, services: Services
) -> Response:
    index, _, _ = _sub_service(services, name, sub)
    change = config_edit(
        services,
        session,
        title=f"Delete sub-service {sub} of {name}",
        edit=functools.partial(edits.delete_sub_service, service=name, name=sub),
        message=f"delete sub-service {sub} of {name}",
        permission=Permission.configure,
        return_to=f"/virtual-services/{name}/sub-services/{sub}",
        done_to=f"/virtual-services/{name}",
    )
    return await propose_or_say(request, session, change, prefix=f"virtual_services[{index}]")


def _fields(
    services: WebServices,
    name: str,
    sub: str,
    stored: Mapping[str, Any],
    shown: Mapping[str, Any],
    *,
    editable: bool,
) -> dict[str, Any]:
    return fields_part(
        SECTIONS,
        shown,
        refresh_url=f"/virtual-services/{name}/sub-services/{sub}/fields",
        editable=editable,
        inherited=values(stored, SERVICE_FIELDS),
        named=named_choices(services, shown),
    )


async def _page(
    request: Request,
    services: WebServices,
    name: str,
    sub: str,
    shown: Mapping[str, Any],
    errors: FormErrors,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    _, stored = service_document(services, name)
    live = await _live(services, name, sub)
    editable = request.state.web_session.actor.may(Permission.configure)
    return render(
        request,
        "virtual_services/sub_service.html",
        {
            **_fields(services, name, sub, stored, shown, editable=editable),
            "title": f"Sub-service {sub} of {name}",
            "page": "dashboard",
            **live,
            "values": shown,
            "errors": errors.fields,
            "general": errors.general,
            "tabs": service_tabs(stored),
            "tab": sub,
            "http": True,
            "cache": _has_cache(services, f"{name}/{sub}"),
        },
        status_code=status_code,
    )


def _has_cache(services: WebServices, pool: str) -> bool:
    """Whether the sub-service ``pool`` (``site/api``) runs a cache: its own or the service's,
    as the model resolves it."""
    found = services.config.desired().pool(pool)
    return found is not None and found.cache is not None


@router.get("/virtual-services/{name}/sub-services/{sub}/live", response_class=HTMLResponse)
async def sub_service_live(
    request: Request, name: str, sub: str, session: Reader, services: Services
) -> HTMLResponse:
    """The tab's status and real servers again (htmx refreshes them every 2 s)."""
    _, stored = service_document(services, name)
    _sub_service(services, name, sub)
    tabs = {"tabs": service_tabs(stored), "tab": sub, "http": True, "tabs_oob": True}
    return render(
        request,
        "virtual_services/_sub_service_live.html",
        {**await _live(services, name, sub), **tabs},
    )


async def _live(services: WebServices, name: str, sub: str) -> dict[str, Any]:
    """The sub-service's pool as the status reports it (None before the change that added
    it is applied), and the status of every tab of the service."""
    report = await services.config.recent_status()
    status = next((vs for vs in report.virtual_services if vs.name == name), None)
    pools = {s.name: s for s in status.sub_services} if status else {}
    return {
        "name": name,
        "sub": sub,
        "pool": pools.get(f"{name}/{sub}"),
        "tab_status": tab_statuses(status),
    }
