"""Real server pages: add one to a pool, edit one, change its state, delete it.

A pool is a virtual service's own real servers (``/virtual-services/web/real-servers/...``)
or a sub-service's (``/virtual-services/site/sub-services/api/real-servers/...``, the pool
``site/api`` of the model's edits). Operators may enable, disable and drain a real server and
change its weight; everything else needs ``configure`` (model/access.py). Like every change,
each is planned and shown on ``/preview`` first. The state buttons live in the pool's real
servers table (the service page or the sub-service's tab).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from bascule.errors import NotFound
from bascule.model import RealServer, RealServerState, edits
from bascule.model.access import OPERATE_FIELDS, Permission
from bascule.model.sub_service import pool_name
from bascule.web.auth import Configurer, Operator, Reader, refusal
from bascule.web.changes import config_edit, propose, propose_form
from bascule.web.fields import ALL_REAL_SERVER_FIELDS, REAL_SERVER_FIELDS, REAL_SERVER_MORE
from bascule.web.forms import NO_ERRORS, Field, FormErrors, parse, values
from bascule.web.pages.virtual_services import service_document
from bascule.web.services import Services, WebServices
from bascule.web.templating import path_part, render

router = APIRouter()

_NAMES = [f.name for f in ALL_REAL_SERVER_FIELDS]
# What an operator may change from the edit form: the weight, and the state (enable,
# disable, drain) like the buttons of the table.
_OPERATE = OPERATE_FIELDS | {"state"}
_STATE_WORDS = {"enabled": "enable", "disabled": "disable", "drain": "drain"}


@dataclass(frozen=True, kw_only=True)
class Pool:
    """The real servers of a service, or of one of its sub-services (``sub``)."""

    service: str
    sub: str
    prefix: str  # its model path: virtual_services[0] or virtual_services[0].sub_services[1]
    stored: dict[str, Any]

    @property
    def name(self) -> str:
        """The model's pool name: ``web`` or ``site/api``."""
        return pool_name(self.service, self.sub) if self.sub else self.service

    @property
    def url(self) -> str:
        base = f"/virtual-services/{path_part(self.service)}"
        return f"{base}/sub-services/{path_part(self.sub)}" if self.sub else base


def _pool(services: WebServices, name: str, sub: str) -> Pool:
    index, stored = service_document(services, name)
    prefix = f"virtual_services[{index}]"
    if not sub:
        return Pool(service=name, sub="", prefix=prefix, stored=stored)
    for sub_index, found in enumerate(stored.get("sub_services") or []):
        if isinstance(found, dict) and found.get("name") == sub:
            prefix = f"{prefix}.sub_services[{sub_index}]"
            return Pool(service=name, sub=sub, prefix=prefix, stored=found)
    raise NotFound(f"virtual service {name!r} has no sub-service named {sub!r}")


def _server(pool: Pool, key: str) -> tuple[int, dict[str, Any]]:
    """Index of the server in its pool, and its stored form."""
    wanted = edits.normalise_key(key)
    for rs_index, rs in enumerate(pool.stored.get("real_servers", [])):
        if edits.server_key(rs.get("address"), rs.get("port")) == wanted:
            return rs_index, dict(rs)
    raise NotFound(f"{pool.name} has no real server {wanted}")


_SUB = "/virtual-services/{name}/sub-services/{sub}"


# -- add ----------------------------------------------------------------------------------


@router.get("/virtual-services/{name}/real-servers/new", response_class=HTMLResponse)
@router.get(_SUB + "/real-servers/new", response_class=HTMLResponse)
async def new_server_form(
    request: Request, name: str, session: Configurer, services: Services, sub: str = ""
) -> HTMLResponse:
    pool = _pool(services, name, sub)
    _, stored = service_document(services, name)
    defaults = RealServer.model_validate({"address": "198.18.0.1", "port": 1}).model_dump(
        mode="json"
    )
    defaults.update(address="", port=stored.get("port", ""))
    return _new_form(request, pool, values(defaults, ALL_REAL_SERVER_FIELDS), NO_ERRORS)


@router.post("/virtual-services/{name}/real-servers/new", response_class=HTMLResponse)
@router.post(_SUB + "/real-servers/new", response_class=HTMLResponse)
async def add_server(
    request: Request, name: str, session: Configurer, services: Services, sub: str = ""
) -> Response:
    pool = _pool(services, name, sub)
    form = await request.form()
    server = parse(form, ALL_REAL_SERVER_FIELDS)
    if server.get("forwarding") is None:
        server.pop("forwarding", None)
    key = edits.server_key(server.get("address"), server.get("port"))
    change = config_edit(
        services,
        session,
        title=f"Add real server {key} to {pool.name}",
        edit=functools.partial(edits.add_real_server, service=pool.name, server=server),
        message=f"add real server {key} to {pool.name}",
        permission=Permission.configure,
        return_to=f"{pool.url}/real-servers/new",
        done_to=pool.url,
    )
    position = len(pool.stored.get("real_servers", []))
    errors = await propose_form(
        request,
        session,
        change,
        prefix=f"{pool.prefix}.real_servers[{position}]",
        names=_NAMES,
    )
    if not isinstance(errors, FormErrors):
        return errors
    shown = {n: form.get(n) for n in _NAMES}
    return _new_form(request, pool, shown, errors, status_code=422)


def _new_form(
    request: Request,
    pool: Pool,
    shown: Mapping[str, Any],
    errors: FormErrors,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "real_servers/form.html",
        {
            "title": f"Add a real server to {pool.name}",
            "page": "dashboard",
            "name": pool.name,
            "back": pool.url,
            "key": None,
            "action": f"{pool.url}/real-servers/new",
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
@router.get(_SUB + "/real-servers/{key}", response_class=HTMLResponse)
async def server_page(
    request: Request, name: str, key: str, session: Reader, services: Services, sub: str = ""
) -> HTMLResponse:
    pool = _pool(services, name, sub)
    _, stored = _server(pool, key)
    return _edit_form(request, pool, stored, values(stored, ALL_REAL_SERVER_FIELDS), NO_ERRORS)


@router.post("/virtual-services/{name}/real-servers/{key}", response_class=HTMLResponse)
@router.post(_SUB + "/real-servers/{key}", response_class=HTMLResponse)
async def edit_server(
    request: Request, name: str, key: str, session: Operator, services: Services, sub: str = ""
) -> Response:
    pool = _pool(services, name, sub)
    rs_index, stored = _server(pool, key)
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
        title=f"Change real server {current} of {pool.name}",
        edit=functools.partial(
            edits.update_real_server, service=pool.name, key=current, changes=changes
        ),
        message=f"change real server {current} of {pool.name}",
        permission=needed,
        return_to=f"{pool.url}/real-servers/{path_part(current)}",
        done_to=pool.url,
    )
    errors = await propose_form(
        request,
        session,
        change,
        prefix=f"{pool.prefix}.real_servers[{rs_index}]",
        names=_NAMES,
    )
    if not isinstance(errors, FormErrors):
        return errors
    shown = {**values(stored, ALL_REAL_SERVER_FIELDS), **{n: form.get(n) for n in changes}}
    return _edit_form(request, pool, stored, shown, errors, status_code=422)


def _edit_form(
    request: Request,
    pool: Pool,
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
            "title": f"Real server {key} of {pool.name}",
            "page": "dashboard",
            "name": pool.name,
            "back": pool.url,
            "key": key,
            "action": f"{pool.url}/real-servers/{path_part(key)}",
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
@router.post(_SUB + "/real-servers/{key}/state")
async def set_state(
    request: Request, name: str, key: str, session: Operator, services: Services, sub: str = ""
) -> Response:
    pool = _pool(services, name, sub)
    _, stored = _server(pool, key)
    form = await request.form()
    state = str(form.get("state") or "")
    if state not in RealServerState.__members__:
        raise HTTPException(400, f"{state!r} is not a real server state (enabled, disabled, drain)")
    current = edits.server_key(stored.get("address"), stored.get("port"))
    word = _STATE_WORDS[state]
    change = config_edit(
        services,
        session,
        title=f"{word.capitalize()} real server {current} of {pool.name}",
        edit=functools.partial(
            edits.update_real_server, service=pool.name, key=current, changes={"state": state}
        ),
        message=f"{state} real server {current} of {pool.name}",
        permission=Permission.operate,
        return_to=pool.url,
        done_to=pool.url,
    )
    return await propose(request, session, change)


@router.post("/virtual-services/{name}/real-servers/{key}/delete")
@router.post(_SUB + "/real-servers/{key}/delete")
async def delete_server(
    request: Request, name: str, key: str, session: Configurer, services: Services, sub: str = ""
) -> Response:
    pool = _pool(services, name, sub)
    _, stored = _server(pool, key)
    current = edits.server_key(stored.get("address"), stored.get("port"))
    change = config_edit(
        services,
        session,
        title=f"Delete real server {current} of {pool.name}",
        edit=functools.partial(edits.delete_real_server, service=pool.name, key=current),
        message=f"delete real server {current} of {pool.name}",
        permission=Permission.configure,
        return_to=pool.url,
        done_to=pool.url,
    )
    return await propose(request, session, change)
