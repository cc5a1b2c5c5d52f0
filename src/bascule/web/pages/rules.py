"""Content rule pages: add a rule to a virtual service, edit it, move it, delete it.

Rules are tried in order and the first that matches decides (model/rules.py), so their order
is part of the configuration: a rule moves one place up or down (``move_rule``). Each change
is an edit of ``bascule.model.edits`` shown on ``/preview`` first, like every change of the
WUI; a rule the model refuses (a bad regular expression, no condition, an unknown
sub-service) comes back with each problem beside its input and nothing saved. The action's
inputs follow the chosen action: htmx posts the form to ``/rule-fields`` and swaps them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from bascule.daemon.accounts import WebSession
from bascule.errors import NotFound
from bascule.model import edits
from bascule.model.access import Permission
from bascule.web.auth import Configurer
from bascule.web.changes import PendingChange, config_edit, propose_form, propose_or_say
from bascule.web.fields import SERVICE_FIELDS, FormContext, shown_sections
from bascule.web.forms import NO_ERRORS, FormErrors, values
from bascule.web.option_fields import POOL_LIMITS
from bascule.web.pages.virtual_services import named_choices, service_document, service_tabs
from bascule.web.rule_form import (
    ACTION_KIND,
    ERROR_NAMES,
    KIND,
    MATCH_FIELDS,
    NAME,
    action_fields,
    action_kind,
    edited_rule,
    rule_document,
    rule_errors,
    rule_values,
)
from bascule.web.services import Services, WebServices
from bascule.web.templating import render

router = APIRouter()


def _rules(stored: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [rule for rule in stored.get("rules") or [] if isinstance(rule, dict)]


def _rule(services: WebServices, name: str, rule: str) -> tuple[int, int, dict[str, Any]]:
    """Indexes of the service and of its rule ``rule``, and the rule as stored."""
    index, stored = service_document(services, name)
    for position, found in enumerate(_rules(stored)):
        if found.get("name") == rule:
            return index, position, found
    raise NotFound(f"virtual service {name!r} has no rule named {rule!r}")


# -- add ------------------------------------------------------------------------------------


@router.get("/virtual-services/{name}/new-rule", response_class=HTMLResponse)
async def new_rule_form(
    request: Request, name: str, session: Configurer, services: Services
) -> HTMLResponse:
    _, stored = service_document(services, name)
    subs = service_tabs(stored)
    shown = {ACTION_KIND: "use" if subs else "redirect", "action.code": "302"}
    return _form(
        request, name, stored, None, shown, NO_ERRORS, named=named_choices(services, shown)
    )


@router.post("/virtual-services/{name}/new-rule", response_class=HTMLResponse)
async def add_rule(
    request: Request, name: str, session: Configurer, services: Services
) -> Response:
    index, stored = service_document(services, name)
    form = await request.form()
    rule = rule_document(form)
    change = config_edit(
        services,
        session,
        title=f"Add rule {rule['name']} to {name}",
        edit=functools.partial(edits.add_rule, service=name, rule=rule),
        message=f"add rule {rule['name']} to {name}",
        permission=Permission.configure,
        return_to=f"/virtual-services/{name}/new-rule",
        done_to=f"/virtual-services/{name}",
    )
    position = len(_rules(stored))
    return await _propose(
        request,
        session,
        change,
        (index, position),
        stored,
        None,
        form,
        named_choices(services, dict(form)),
    )


# -- edit, move, delete ------------------------------------------------------------------------


@router.get("/virtual-services/{name}/rules/{rule}", response_class=HTMLResponse)
async def rule_page(
    request: Request, name: str, rule: str, session: Configurer, services: Services
) -> HTMLResponse:
    _, stored = service_document(services, name)
    _, _, found = _rule(services, name, rule)
    shown = rule_values(found)
    return _form(
        request, name, stored, rule, shown, NO_ERRORS, named=named_choices(services, shown)
    )


@router.post("/virtual-services/{name}/rules/{rule}", response_class=HTMLResponse)
async def edit_rule(
    request: Request, name: str, rule: str, session: Configurer, services: Services
) -> Response:
    index, position, found = _rule(services, name, rule)
    _, stored = service_document(services, name)
    form = await request.form()
    changed = edited_rule(found, form)
    change = config_edit(
        services,
        session,
        title=f"Change rule {rule} of {name}",
        edit=functools.partial(edits.replace_rule, service=name, name=rule, rule=changed),
        message=f"change rule {rule} of {name}",
        permission=Permission.configure,
        return_to=f"/virtual-services/{name}/rules/{rule}",
        done_to=f"/virtual-services/{name}",
    )
    return await _propose(
        request,
        session,
        change,
        (index, position),
        stored,
        rule,
        form,
        named_choices(services, dict(form)),
    )


async def _propose(
    request: Request,
    session: WebSession,
    change: PendingChange,
    where: tuple[int, int],
    stored: Mapping[str, Any],
    rule: str | None,
    form: FormData,
    named: Mapping[str, tuple[str, ...]],
) -> Response:
    """Preview the change of a rule at ``where`` (the service's and the rule's indexes), or
    show the form again with the model's errors beside their fields."""
    index, position = where
    errors = await propose_form(
        request,
        session,
        change,
        prefix=f"virtual_services[{index}].rules[{position}]",
        names=ERROR_NAMES,
    )
    if isinstance(errors, FormErrors):
        name = str(stored.get("name"))
        shown = dict(form)
        return _form(
            request, name, stored, rule, shown, rule_errors(errors), named=named, status_code=422
        )
    return errors


@router.post("/virtual-services/{name}/rules/{rule}/move")
async def move_rule(
    request: Request, name: str, rule: str, session: Configurer, services: Services
) -> Response:
    index, current, _ = _rule(services, name, rule)
    form = await request.form()
    position = str(form.get("position") or "")
    if not position.isdigit():
        raise HTTPException(400, "position: a rule's new place, 0 for the first")
    change = config_edit(
        services,
        session,
        title=f"Move rule {rule} of {name} from #{current + 1} to #{int(position) + 1}",
        edit=functools.partial(edits.move_rule, service=name, name=rule, position=int(position)),
        message=f"move rule {rule} of {name} to #{int(position) + 1}",
        permission=Permission.configure,
        return_to=f"/virtual-services/{name}",
        done_to=f"/virtual-services/{name}",
    )
    return await propose_or_say(request, session, change, prefix=f"virtual_services[{index}]")


@router.post("/virtual-services/{name}/rules/{rule}/delete")
async def delete_rule(
    request: Request, name: str, rule: str, session: Configurer, services: Services
) -> Response:
    index, _, _ = _rule(services, name, rule)
    change = config_edit(
        services,
        session,
        title=f"Delete rule {rule} of {name}",
        edit=functools.partial(edits.delete_rule, service=name, name=rule),
        message=f"delete rule {rule} of {name}",
        permission=Permission.configure,
        return_to=f"/virtual-services/{name}/rules/{rule}",
        done_to=f"/virtual-services/{name}",
    )
    return await propose_or_say(request, session, change, prefix=f"virtual_services[{index}]")


@router.post("/virtual-services/{name}/rule-fields", response_class=HTMLResponse)
async def rule_action_fields(
    request: Request, name: str, session: Configurer, services: Services
) -> HTMLResponse:
    """The inputs of the chosen action, with what was typed (htmx swaps them in)."""
    _, stored = service_document(services, name)
    form = await request.form()
    return render(
        request,
        "virtual_services/_rule_action.html",
        {**_action_part(name, stored, dict(form)), "values": dict(form), "errors": {}},
    )


def _action_part(name: str, stored: Mapping[str, Any], shown: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "kind_field": KIND,
        "action_fields": action_fields(action_kind(shown.get(ACTION_KIND)), service_tabs(stored)),
        "refresh_url": f"/virtual-services/{name}/rule-fields",
    }


def _form(
    request: Request,
    name: str,
    stored: Mapping[str, Any],
    rule: str | None,
    shown: Mapping[str, Any],
    errors: FormErrors,
    *,
    named: Mapping[str, tuple[str, ...]],
    status_code: int = 200,
) -> HTMLResponse:
    action = (
        f"/virtual-services/{name}/rules/{rule}" if rule else f"/virtual-services/{name}/new-rule"
    )
    context = FormContext.of(shown, inherited=values(stored, SERVICE_FIELDS))
    limits = shown_sections((("limits", "Limits", POOL_LIMITS),), context, named)
    return render(
        request,
        "virtual_services/rule.html",
        {
            "title": f"Rule {rule} of {name}" if rule else f"Add a rule to {name}",
            "page": "dashboard",
            "name": name,
            "rule": rule,
            "action": action,
            "name_field": NAME,
            "match_fields": MATCH_FIELDS,
            "limits_sections": limits,
            **_action_part(name, stored, shown),
            "values": shown,
            "errors": errors.fields,
            "general": errors.general,
            "tabs": service_tabs(stored),
            "tab": "",
            "http": True,
        },
        status_code=status_code,
    )
