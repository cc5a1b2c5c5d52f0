"""Virtual service pages: add one, see and edit one (sections + live real servers), delete.

Each change is an edit from ``bascule.model.edits`` planned through ``changes.propose`` and
shown on ``/preview`` before it is applied; a change the model refuses comes back here with
every problem beside its field and nothing saved. The real servers table is refreshed by
htmx from ``/virtual-services/{name}/live`` every 2 s.

The settings show only the fields that apply (``fields.applicable``); when a choice that
decides them changes, htmx posts the form to ``.../fields``, which answers the sections again
with what was typed, swapped in place. The service's content rules (pages/rules.py) and its
sub-services (pages/sub_services.py, one tab each) are on the same page.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from bascule.daemon.accounts import WebSession
from bascule.daemon.results import VirtualServiceStatus
from bascule.errors import NotFound
from bascule.model import VirtualService, edits
from bascule.model.access import Permission
from bascule.web.auth import Configurer, Reader
from bascule.web.changes import config_edit, propose, propose_form
from bascule.web.fields import (
    ESSENTIAL,
    MORE,
    NEW_SERVICE_FIELDS,
    SECTIONS,
    SERVICE_FIELDS,
    FormContext,
    Section,
    shown_sections,
    without_empty_tls,
)
from bascule.web.forms import (
    NO_ERRORS,
    FormErrors,
    parse,
    posted_fields,
    typed_values,
    values,
)
from bascule.web.header_rows import (
    HEADER_LISTS,
    OPERATION_CHOICES,
    ROW_ACTION,
    HeaderRow,
    error_names,
    header_changes,
    posted_rows,
    row_errors,
    shown_lists,
    stored_rows,
    with_row_action,
)
from bascule.web.option_fields import (
    GROUP_ERROR_NAMES,
    NAMED_CHOICES,
    group_changes,
    group_errors,
    option_values,
    replaced_groups,
    with_option_defaults,
)
from bascule.web.rule_form import rule_summary
from bascule.web.services import Services, WebServices
from bascule.web.templating import render

router = APIRouter()


def service_document(services: WebServices, name: str) -> tuple[int, dict[str, Any]]:
    """The index and the stored form of virtual service ``name`` (NotFound if none)."""
    _, document = services.config.document()
    for index, vs in enumerate(document.get("virtual_services", [])):
        if vs.get("name") == name:
            return index, dict(vs)
    raise NotFound(f"there is no virtual service named {name!r}")


def _new_defaults() -> dict[str, Any]:
    """The add form's starting values: the model's defaults, type auto, mode automatic."""
    defaults = VirtualService.model_validate(
        {"name": "new", "address": "198.18.0.1", "port": 80}
    ).model_dump(mode="json")
    defaults.update(name="", address="", port="", type="auto", mode="")
    defaults["check"] = {**defaults["check"], "type": ""}
    return defaults


def derived_name(address: object, port: object) -> str:
    """A name for a service added without one: ``198-18-0-100-80``."""
    text = re.sub(r"[^a-z0-9]+", "-", f"{address}-{port}".lower()).strip("-")
    return text[:63].strip("-") or "service"


def fields_part(
    sections: tuple[Section, ...],
    shown: Mapping[str, Any],
    *,
    refresh_url: str,
    editable: bool = True,
    fixed: tuple[str, ...] = (),
    inherited: Mapping[str, Any] | None = None,
    named: Mapping[str, tuple[str, ...]] | None = None,
    header_rows: Mapping[str, list[HeaderRow]] | None = None,
) -> dict[str, Any]:
    """What ``virtual_services/_fields.html`` prints: the sections whose fields apply to
    the choices in ``shown``, and the names the form shows (``fixed``: its fields outside
    the swapped part). ``named``: the names offered by the fields that pick from the store
    or the document (``option_fields.NAMED_CHOICES``); ``header_rows``: the header
    operations an http service's editors show."""
    context = FormContext.of(shown, inherited=inherited)
    applying = shown_sections(sections, context, named)
    names = [*fixed, *(s.field.name for _, _, fields in applying for s in fields)]
    editors = []
    if header_rows is not None and context.reads_http:
        for list_name, title in HEADER_LISTS:
            names.append(list_name)
            editors.append(
                {
                    "name": list_name,
                    "title": title,
                    "rows": header_rows.get(list_name, []),
                    "operations": OPERATION_CHOICES,
                }
            )
    return {
        "sections": applying,
        "shown_names": names,
        "refresh_url": refresh_url,
        "editable": editable,
        "header_editors": editors,
    }


def stored_values(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored service as its settings form shows it."""
    return {**values(with_option_defaults(stored), SERVICE_FIELDS), **option_values(stored)}


def named_choices(services: WebServices, shown: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """What the fields that pick names offer: the document's access lists, the HTTP users
    and the pages of the stores, and any name the form holds already (a list deleted since
    stays visible, and the model says what is wrong with it)."""
    _, document = services.config.document()
    found: dict[str, set[str]] = {
        "access_lists": set(document.get("access_lists") or {}),
        "http_users": {u.name for u in services.http_users.entries()}
        if services.http_users
        else set(),
        "pages": {p.name for p in services.pages.entries()} if services.pages else set(),
    }
    for field, source in NAMED_CHOICES.items():
        held = shown.get(field)
        found[source].update(str(v) for v in (held if isinstance(held, list) else [held]) if v)
    return {source: tuple(sorted(names)) for source, names in found.items()}


def _header_rows(form: Any, stored: Mapping[str, Any]) -> dict[str, list[HeaderRow]]:
    """The header operations a form shows: as typed where the form showed them, as stored
    otherwise; after the row action a refresh asks for."""
    posted = shown_lists(form) if form is not None else ()
    rows = {
        name: posted_rows(form, name) if name in posted else stored_rows(stored, name)
        for name, _ in HEADER_LISTS
    }
    return with_row_action(rows, form.get(ROW_ACTION) if form is not None else None)


def _update(document: Mapping[str, Any], name: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The service's edit: the option groups it posts replace the stored ones whole (a
    not-available choice changed leaves nothing of the old one), the rest merges."""
    cleared = edits.update_virtual_service(document, name, replaced_groups(changes))
    return edits.update_virtual_service(cleared, name, changes)


# -- add -----------------------------------------------------------------------------------


@router.get("/virtual-services/new", response_class=HTMLResponse)
async def new_service_form(request: Request, session: Configurer) -> HTMLResponse:
    return _new_form(request, values(_new_defaults(), NEW_SERVICE_FIELDS), NO_ERRORS)


@router.post("/virtual-services/new", response_class=HTMLResponse)
async def add_service(request: Request, session: Configurer, services: Services) -> Response:
    form = await request.form()
    service = without_empty_tls(parse(form, posted_fields(form, NEW_SERVICE_FIELDS)))
    if not service.get("name") and service.get("address") and service.get("port"):
        service["name"] = derived_name(service["address"], service["port"])
    _, document = services.config.document()
    index = len(document.get("virtual_services", []))
    name = str(service.get("name") or "")
    change = config_edit(
        services,
        session,
        title=f"Add virtual service {name}",
        edit=functools.partial(edits.add_virtual_service, service=service),
        message=f"add virtual service {name}",
        permission=Permission.configure,
        return_to="/virtual-services/new",
        done_to=f"/virtual-services/{name}",
    )
    errors = await propose_form(
        request,
        session,
        change,
        prefix=f"virtual_services[{index}]",
        names=[f.name for f in NEW_SERVICE_FIELDS],
    )
    if not isinstance(errors, FormErrors):
        return errors
    shown = typed_values(form, NEW_SERVICE_FIELDS, values(_new_defaults(), NEW_SERVICE_FIELDS))
    shown["name"] = name
    return _new_form(request, shown, errors, status_code=422)


@router.post("/virtual-services/new/fields", response_class=HTMLResponse)
async def new_service_fields(request: Request, session: Configurer) -> HTMLResponse:
    """The add form's folded sections again, for the choices typed so far (htmx)."""
    form = await request.form()
    shown = typed_values(form, NEW_SERVICE_FIELDS, values(_new_defaults(), NEW_SERVICE_FIELDS))
    return render(
        request,
        "virtual_services/_fields.html",
        {"values": shown, "errors": {}, **_new_fields(shown)},
    )


def _new_fields(shown: Mapping[str, Any]) -> dict[str, Any]:
    return fields_part(
        MORE,
        shown,
        refresh_url="/virtual-services/new/fields",
        fixed=tuple(f.name for f in ESSENTIAL),
    )


def _new_form(
    request: Request, shown: Mapping[str, Any], errors: FormErrors, *, status_code: int = 200
) -> HTMLResponse:
    more_has_errors = any(f.name in errors.fields for _, _, fs in MORE for f in fs)
    return render(
        request,
        "virtual_services/new.html",
        {
            "title": "Add virtual service",
            "page": "dashboard",
            "essential": ESSENTIAL,
            "context_names": ("protocol", "type"),
            **_new_fields(shown),
            "values": shown,
            "errors": errors.fields,
            "general": errors.general,
            "open_more": more_has_errors,
        },
        status_code=status_code,
    )


# -- show and edit ------------------------------------------------------------------------------


@router.get("/virtual-services/{name}", response_class=HTMLResponse)
async def service_page(
    request: Request, name: str, session: Reader, services: Services
) -> HTMLResponse:
    _, stored = service_document(services, name)
    return await _service_page(
        request, services, name, stored_values(stored), NO_ERRORS, _header_rows(None, stored)
    )


@router.post("/virtual-services/{name}", response_class=HTMLResponse)
async def edit_service(
    request: Request, name: str, session: Configurer, services: Services
) -> Response:
    index, stored = service_document(services, name)
    form = await request.form()
    changes = without_empty_tls(parse(form, posted_fields(form, SERVICE_FIELDS)))
    changes = {**group_changes(changes, stored), **header_changes(form)}
    new_name = str(changes.get("name") or name)
    rows = _header_rows(form, stored)
    change = config_edit(
        services,
        session,
        title=f"Change virtual service {name}",
        edit=functools.partial(_update, name=name, changes=changes),
        message=f"change virtual service {name}",
        permission=Permission.configure,
        return_to=f"/virtual-services/{name}",
        done_to=f"/virtual-services/{new_name}",
    )
    errors = await propose_form(
        request,
        session,
        change,
        prefix=f"virtual_services[{index}]",
        names=[*(f.name for f in SERVICE_FIELDS), *error_names(rows), *GROUP_ERROR_NAMES],
    )
    if not isinstance(errors, FormErrors):
        return errors
    shown = typed_values(form, SERVICE_FIELDS, stored_values(stored))
    errors = group_errors(row_errors(errors), [f.name for f in posted_fields(form, SERVICE_FIELDS)])
    return await _service_page(request, services, name, shown, errors, rows, status_code=422)


@router.post("/virtual-services/{name}/fields", response_class=HTMLResponse)
async def service_fields(
    request: Request, name: str, session: Configurer, services: Services
) -> HTMLResponse:
    """The settings' sections again, for the choices typed so far (htmx swaps them in)."""
    _, stored = service_document(services, name)
    form = await request.form()
    shown = typed_values(form, SERVICE_FIELDS, stored_values(stored))
    return render(
        request,
        "virtual_services/_fields.html",
        {
            "values": shown,
            "errors": {},
            **fields_part(
                SECTIONS,
                shown,
                refresh_url=f"/virtual-services/{name}/fields",
                named=named_choices(services, shown),
                header_rows=_header_rows(form, stored),
            ),
        },
    )


@router.post("/virtual-services/{name}/delete")
async def delete_service(
    request: Request, name: str, session: Configurer, services: Services
) -> Response:
    service_document(services, name)
    change = config_edit(
        services,
        session,
        title=f"Delete virtual service {name}",
        edit=functools.partial(edits.delete_virtual_service, name=name),
        message=f"delete virtual service {name}",
        permission=Permission.configure,
        return_to=f"/virtual-services/{name}",
        done_to="/",
    )
    return await propose(request, session, change)


@router.get("/virtual-services/{name}/live", response_class=HTMLResponse)
async def service_live(
    request: Request, name: str, session: Reader, services: Services
) -> HTMLResponse:
    _, stored = service_document(services, name)
    live = await _live(services, name)
    tabs = {"tabs": service_tabs(stored), "tab": "", "http": _http(stored), "tabs_oob": True}
    return render(request, "virtual_services/live.html", {**live, **tabs})


async def _live(services: WebServices, name: str) -> dict[str, Any]:
    report = await services.config.recent_status()
    status = next((vs for vs in report.virtual_services if vs.name == name), None)
    if status is None:
        raise NotFound(f"there is no virtual service named {name!r}")
    latest = services.statistics.latest(name)
    main = services.statistics.main(name)
    shown = "packets_per_s" if status.mode == "l4" else main
    return {
        "name": name,
        "status": status,
        "tab_status": tab_statuses(status),
        "rate": latest.get(shown),
        "rate_label": {"requests_per_s": "req/s", "packets_per_s": "pkt/s"}.get(shown, "conn/s"),
        "sparkline": services.statistics.sparkline(name),
    }


def _http(stored: Mapping[str, Any]) -> bool:
    """Whether the service is of type http (it has rules and sub-services)."""
    return bool(stored.get("type", "http") == "http")


def _limits_clients(stored: Mapping[str, Any]) -> bool:
    """Whether the service limits each client (then its limits view lists them)."""
    limits = stored.get("limits")
    per_client = limits.get("per_client") if isinstance(limits, Mapping) else None
    return isinstance(per_client, Mapping) and any(
        value is not None for key, value in per_client.items() if key != "bandwidth"
    )


def tab_statuses(status: VirtualServiceStatus | None) -> dict[str, str]:
    """Each sub-service's status by its name (the tabs show it), from a service's status."""
    subs = status.sub_services if status is not None else ()
    return {sub.name.rpartition("/")[2]: sub.status.value for sub in subs}


def service_tabs(stored: Mapping[str, Any]) -> list[str]:
    """The names of the service's sub-services, one tab each after the service's own."""
    subs = stored.get("sub_services") or []
    return [str(sub.get("name")) for sub in subs if isinstance(sub, dict)]


async def _service_page(
    request: Request,
    services: WebServices,
    name: str,
    shown: Mapping[str, Any],
    errors: FormErrors,
    header_rows: Mapping[str, list[HeaderRow]],
    *,
    status_code: int = 200,
) -> HTMLResponse:
    live = await _live(services, name)
    _, stored = service_document(services, name)
    session: WebSession = request.state.web_session
    editable = session.actor.may(Permission.configure)
    rules = [rule for rule in stored.get("rules") or [] if isinstance(rule, dict)]
    return render(
        request,
        "virtual_services/show.html",
        {
            **live,
            **fields_part(
                SECTIONS,
                shown,
                refresh_url=f"/virtual-services/{name}/fields",
                editable=editable,
                named=named_choices(services, shown),
                header_rows=header_rows,
            ),
            "title": f"Virtual service {name}",
            "page": "dashboard",
            "values": shown,
            "errors": errors.fields,
            "general": errors.general,
            "rules": [rule_summary(rule) for rule in rules],
            "http": _http(stored),
            "cache": stored.get("cache") is not None,
            "client_limits": _limits_clients(stored),
            "tabs": service_tabs(stored),
            "tab": "",
        },
        status_code=status_code,
    )
