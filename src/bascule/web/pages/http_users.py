"""HTTP users (administrators only): the users of services' basic authentication.

Beside the flow of a change: the users a service's ``authentication.users`` names. Every
change goes through ``HttpUserService`` (daemon/http_users.py), which hashes the password,
reloads HAProxy when a service names the user and records the change in the audit log. The
page never shows a password or a hash; a refused form keeps the name, never the password.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bascule.daemon.http_users import HttpUserService
from bascule.errors import InvalidConfiguration, NotApplicable, NotFound
from bascule.web.auth import Administrator
from bascule.web.pages.users import FormText, split_errors
from bascule.web.services import Services, WebServices
from bascule.web.state import flash
from bascule.web.templating import render

router = APIRouter()


def _service(services: WebServices) -> HttpUserService:
    if services.http_users is None:
        raise NotApplicable("this daemon has no HTTP user store")
    return services.http_users


def _page(
    request: Request,
    services: WebServices,
    *,
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    general: list[str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "http_users/index.html",
        {
            "page": "http_users",
            "title": "HTTP users",
            "users": _service(services).entries(),
            "values": {"name": "", **(values or {})},
            "errors": errors or {},
            "general": general or [],
        },
        status_code=status_code,
    )


@router.get("/http-users", response_class=HTMLResponse)
async def http_users_page(
    request: Request, session: Administrator, services: Services
) -> HTMLResponse:
    return _page(request, services)


@router.post("/http-users", response_class=HTMLResponse)
async def add_http_user(
    request: Request,
    session: Administrator,
    services: Services,
    name: FormText = "",
    password: FormText = "",
) -> Response:
    try:
        await _service(services).add(name.strip(), password, actor=session.actor)
    except InvalidConfiguration as exc:
        errors, general = split_errors(exc, ("name", "password"))
        return _page(
            request, services, values={"name": name}, errors=errors, general=general,
            status_code=422,
        )  # fmt: skip
    flash(request, f"HTTP user {name.strip()} added.")
    return RedirectResponse("/http-users", status_code=303)


@router.post("/http-users/{name}/password", response_class=HTMLResponse)
async def set_http_user_password(
    request: Request, name: str, session: Administrator, services: Services, password: FormText = ""
) -> Response:
    try:
        change = await _service(services).set_password(name, password, actor=session.actor)
    except (InvalidConfiguration, NotFound) as exc:
        flash(request, f"{name}: {exc}", "error")
    else:
        flash(request, change.message or f"The password of {name} changed.")
    return RedirectResponse("/http-users", status_code=303)


@router.post("/http-users/{name}/delete", response_class=HTMLResponse)
async def delete_http_user(
    request: Request, name: str, session: Administrator, services: Services
) -> Response:
    try:
        await _service(services).delete(name, actor=session.actor)
    except (InvalidConfiguration, NotFound) as exc:
        flash(request, str(exc), "error")
    else:
        flash(request, f"HTTP user {name} deleted.")
    return RedirectResponse("/http-users", status_code=303)
