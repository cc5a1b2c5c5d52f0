"""Real server pages: add one to a virtual service, edit one, change its state, delete it.

Operators may enable, disable and drain a real server and change its weight; everything else
needs ``configure`` (model/access.py). Like every change, each is planned and shown on
``/preview`` first. The state buttons live in the virtual service page's real servers table.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from bascule.errors import NotFound
from bascule.model import RealServer, RealServerState, edits
from bascule.model.access import OPERATE_FIELDS, Permission
from bascule.web.auth import Configurer, Operator, Reader, refusal
from bascule.web.changes import config_edit, propose, propose_form
from bascule.web.fields import ALL_REAL_SERVER_FIELDS, REAL_SERVER_FIELDS, REAL_SERVER_MORE
from bascule.web.forms import NO_ERRORS, Field, FormErrors, parse, values
from bascule.web.pages.virtual_services import service_document
from bascule.web.services import Services, WebServices
from bascule.web.templating import render

router = APIRouter()

_NAMES = [f.name for f in ALL_REAL_SERVER_FIELDS]
# What an operator may change from the edit form: the weight, and the state (enable,
# disable, drain) like the buttons of the table.
_OPERATE = OPERATE_FIELDS | {"state"}
_STATE_WORDS = {"enabled": "enable", "disabled": "disable", "drain": "drain"}


def _server(services: WebServices, name: str, key: str) -> tuple[int, int, dict[str, Any]]:
    """Indexes of the service and the server, and the server's stored form."""
    index, stored = service_document(services, name)
    wanted = edits.normalise_key(key)
    for rs_index, rs in enumerate(stored.get("real_servers", [])):
        if edits.server_key(rs.get("address"), rs.get("port")) == wanted:
            return index, rs_index, dict(rs)
    raise NotFound(f"virtual service {name!r} has no real server {wanted}")


# -- add ----------------------------------------------------------------------------------


@router.get("/virtual-services/{name}/real-servers/new", response_class=HTMLResponse)
async def new_server_form(
    request: Request, name: str, session: Configurer, services: Services
) -> HTMLResponse:
    _, stored = service_document(services, name)
    defaults = RealServer.model_validate({"address": "198.18.0.1", "port": 1}).model_dump(
        mode="json"
    )
    defaults.update(address="", port=stored.get("port", ""))
    return _new_form(request, name, values(defaults, ALL_REAL_SERVER_FIELDS), NO_ERRORS)


@router.post("/virtual-services/{name}/real-servers/new", response_class=HTMLResponse)
async def add_server(
    request: Request, name: str, session: Configurer, services: Services
) -> Response:
    index, stored = service_document(services, name)
    form = await request.form()
    server = parse(form, ALL_REAL_SERVER_FIELDS)
    if server.get("forwarding") is None:
        server.pop("forwarding", None)
    key = edits.server_key(server.get("address"), server.get("port"))
    change = config_edit(
        services,
        session,
        title=f"Add real server {key} to {name}",
        edit=functools.partial(edits.add_real_server, service=name, server=server),
        message=f"add real server {key} to {name}",
        permission=Permission.configure,
        return_to=f"/virtual-services/{name}/real-servers/new",
        done_to=f"/virtual-services/{name}",
    )
    position = len(stored.get("real_servers", []))
    errors = await propose_form(
        request,
        session,
        change,
        prefix=f"virtual_services[{index}].real_servers[{position}]",
        names=_NAMES,
    )
    if not isinstance(errors, FormErrors):
        return errors
    shown = {n: form.get(n) for n in _NAMES}
    return _new_form(request, name, shown, errors, status_code=422)


def _new_form(
    request: Request,
    name: str,
    shown: Mapping[str, Any],
    errors: FormErrors,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "real_servers/form.html",
        {
            "title": f"Add a real server to {name}",
            "page": "dashboard",
            "name": name,
            "key": None,
            "action": f"/virtual-services/{name}/real-servers/new",
            "fields": REAL_SERVER_FIELDS,
            "more": REAL_SERVER_MORE,
            "values": shown,
            "errors": errors.fields,
            "general": errors.general,
            "open_more": any(f.name in errors.fields for f in REAL_SERVER_MORE),
            "editable": set(_NAMES),
        },
        status_code=status_code,
    )


# -- edit, state, delete ----------------------------------------------------------------------


@router.get("/virtual-services/{name}/real-servers/{key}", response_class=HTMLResponse)
async def server_page(
    request: Request, name: str, key: str, session: Reader, services: Services
) -> HTMLResponse:
    _, _, stored = _server(services, name, key)
    return _edit_form(request, name, stored, values(stored, ALL_REAL_SERVER_FIELDS), NO_ERRORS)


@router.post("/virtual-services/{name}/real-servers/{key}", response_class=HTMLResponse)
async def edit_server(
    request: Request, name: str, key: str, session: Operator, services: Services
) -> Response:
    index, rs_index, stored = _server(services, name, key)
    form = await request.form()
    fields: tuple[Field, ...] = ALL_REAL_SERVER_FIELDS
    if not session.actor.may(Permission.configure):
        fields = tuple(f for f in fields if f.name in _OPERATE)
    changes = parse(form, fields)
    changed = {n for n, v in changes.items() if stored.get(n) != v}
    needed = Permission.operate if changed <= _OPERATE else Permission.configure
    if not session.actor.may(needed):
        raise refusal(request, session, "Your role may change only the weight and the state.")
    current = edits.server_key(stored.get("address"), stored.get("port"))
    change = config_edit(
        services,
        session,
        title=f"Change real server {current} of {name}",
        edit=functools.partial(
            edits.update_real_server, service=name, key=current, changes=changes
        ),
        message=f"change real server {current} of {name}",
        permission=needed,
        return_to=f"/virtual-services/{name}/real-servers/{current}",
        done_to=f"/virtual-services/{name}",
    )
    errors = await propose_form(
        request,
        session,
        change,
        prefix=f"virtual_services[{index}].real_servers[{rs_index}]",
        names=_NAMES,
    )
    if not isinstance(errors, FormErrors):
        return errors
    shown = {**values(stored, ALL_REAL_SERVER_FIELDS), **{n: form.get(n) for n in changes}}
    return _edit_form(request, name, stored, shown, errors, status_code=422)


def _edit_form(
    request: Request,
    name: str,
    stored: Mapping[str, Any],
    shown: Mapping[str, Any],
    errors: FormErrors,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    key = edits.server_key(stored.get("address"), stored.get("port"))
    session = request.state.web_session
    if session.actor.may(Permission.configure):
        editable = set(_NAMES)
    elif session.actor.may(Permission.operate):
        editable = set(_OPERATE)
    else:
        editable = set()
    return render(
        request,
        "real_servers/form.html",
        {
            "title": f"Real server {key} of {name}",
            "page": "dashboard",
            "name": name,
            "key": key,
            "action": f"/virtual-services/{name}/real-servers/{key}",
            "fields": REAL_SERVER_FIELDS,
            "more": REAL_SERVER_MORE,
            "values": shown,
            "errors": errors.fields,
            "general": errors.general,
            "open_more": True,
            "editable": editable,
        },
        status_code=status_code,
    )


@router.post("/virtual-services/{name}/real-servers/{key}/state")
async def set_state(
    request: Request, name: str, key: str, session: Operator, services: Services
) -> Response:
    _, _, stored = _server(services, name, key)
    form = await request.form()
    state = str(form.get("state") or "")
    if state not in RealServerState.__members__:
        raise HTTPException(400, f"{state!r} is not a real server state (enabled, disabled, drain)")
    current = edits.server_key(stored.get("address"), stored.get("port"))
    word = _STATE_WORDS[state]
    change = config_edit(
        services,
        session,
        title=f"{word.capitalize()} real server {current} of {name}",
        edit=functools.partial(
            edits.update_real_server, service=name, key=current, changes={"state": state}
        ),
        message=f"{state} real server {current} of {name}",
        permission=Permission.operate,
        return_to=f"/virtual-services/{name}",
        done_to=f"/virtual-services/{name}",
    )
    return await propose(request, session, change)


@router.post("/virtual-services/{name}/real-servers/{key}/delete")
async def delete_server(
    request: Request, name: str, key: str, session: Configurer, services: Services
) -> Response:
    _, _, stored = _server(services, name, key)
    current = edits.server_key(stored.get("address"), stored.get("port"))
    change = config_edit(
        services,
        session,
        title=f"Delete real server {current} of {name}",
        edit=functools.partial(edits.delete_real_server, service=name, key=current),
        message=f"delete real server {current} of {name}",
        permission=Permission.configure,
        return_to=f"/virtual-services/{name}",
        done_to=f"/virtual-services/{name}",
    )
    return await propose(request, session, change)
