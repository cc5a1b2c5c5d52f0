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
) -> dict[str, Any]:
    """What ``virtual_services/_fields.html`` prints: the sections whose fields apply to
    the choices in ``shown``, and the names the form shows (``fixed``: its fields outside
    the swapped part)."""
    applying = shown_sections(sections, FormContext.of(shown, inherited=inherited))
    names = [*fixed, *(s.field.name for _, _, fields in applying for s in fields)]
    return {
        "sections": applying,
        "shown_names": names,
        "refresh_url": refresh_url,
        "editable": editable,
    }


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
    return await _service_page(request, services, name, values(stored, SERVICE_FIELDS), NO_ERRORS)


@router.post("/virtual-services/{name}", response_class=HTMLResponse)
async def edit_service(
    request: Request, name: str, session: Configurer, services: Services
) -> Response:
    index, stored = service_document(services, name)
    form = await request.form()
    changes = without_empty_tls(parse(form, posted_fields(form, SERVICE_FIELDS)))
    new_name = str(changes.get("name") or name)
    change = config_edit(
        services,
        session,
        title=f"Change virtual service {name}",
        edit=functools.partial(edits.update_virtual_service, name=name, changes=changes),
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
        names=[f.name for f in SERVICE_FIELDS],
    )
    if not isinstance(errors, FormErrors):
        return errors
    shown = typed_values(form, SERVICE_FIELDS, values(stored, SERVICE_FIELDS))
    return await _service_page(request, services, name, shown, errors, status_code=422)


@router.post("/virtual-services/{name}/fields", response_class=HTMLResponse)
async def service_fields(
    request: Request, name: str, session: Configurer, services: Services
) -> HTMLResponse:
    """The settings' sections again, for the choices typed so far (htmx swaps them in)."""
    _, stored = service_document(services, name)
    form = await request.form()
    shown = typed_values(form, SERVICE_FIELDS, values(stored, SERVICE_FIELDS))
    return render(
        request,
        "virtual_services/_fields.html",
        {
            "values": shown,
            "errors": {},
            **fields_part(SECTIONS, shown, refresh_url=f"/virtual-services/{name}/fields"),
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
    return render(request, "virtual_services/live.html", await _live(services, name))


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
        "rate": latest.get(shown),
        "rate_label": {"requests_per_s": "req/s", "packets_per_s": "pkt/s"}.get(shown, "conn/s"),
        "sparkline": services.statistics.sparkline(name),
    }


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
                SECTIONS, shown, refresh_url=f"/virtual-services/{name}/fields", editable=editable
            ),
            "title": f"Virtual service {name}",
            "page": "dashboard",
            "values": shown,
            "errors": errors.fields,
            "general": errors.general,
            "rules": [rule_summary(rule) for rule in rules],
            "http": stored.get("type", "http") == "http",
            "tabs": service_tabs(stored),
            "tab": "",
        },
        status_code=status_code,
    )
