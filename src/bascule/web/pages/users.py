"""Users (administrators only) and one's own account (everyone logged in).

Beside the flow of a change: who may make changes. ``/users`` lists the users and adds one
(name, role, first password); ``/users/{name}`` changes a role, resets a password or deletes
the user; ``/account`` lets anyone change their own password (giving the current one). Every
change goes through ``AccountService``, which checks the rules (the last administrator stays,
passwords are long enough), hashes passwords and writes the audit log; a refused field comes
back beside its field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bascule.errors import FieldError, Forbidden, InvalidConfiguration, LockedOut, NotApplicable
from bascule.model.access import Role
from bascule.web.auth import Administrator, Reader
from bascule.web.forms import errors_for
from bascule.web.services import Services
from bascule.web.state import flash
from bascule.web.templating import render

router = APIRouter()

ROLE_CHOICES = [
    (Role.admin.value, "admin: everything"),
    (Role.operator.value, "operator: enable, disable, drain, weights"),
    (Role.viewer.value, "viewer: read only"),
]

FormText = Annotated[str, Form(max_length=4096)]


def split_errors(
    exc: InvalidConfiguration, fields: Iterable[str]
) -> tuple[dict[str, str], list[str]]:
    """Field errors by form field (shown beside it) and the rest (shown above the form)."""
    found = errors_for(exc, prefix="", names=fields)
    return dict(found.fields), list(found.general)


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidConfiguration(
            [FieldError(path="role", message="choose admin, operator or viewer")]
        ) from None


def _forbidden(exc: Forbidden) -> Response:
    # The page's dependency already checked the role; the service refusing is a race.
    return Response(str(exc), status_code=403, media_type="text/plain")


# -- the list and adding ----------------------------------------------------------------------


def _users_page(
    request: Request,
    services: Services,
    *,
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    general: list[str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "users/index.html",
        {
            "page": "users",
            "title": "Users",
            "users": services.accounts.users(),
            "values": {"name": "", "role": Role.viewer.value, **(values or {})},
            "errors": errors or {},
            "general": general or [],
            "roles": ROLE_CHOICES,
        },
        status_code=status_code,
    )


@router.get("/users", response_class=HTMLResponse)
async def users_page(request: Request, session: Administrator, services: Services) -> HTMLResponse:
    return _users_page(request, services)


@router.post("/users", response_class=HTMLResponse)
async def add_user(
    request: Request,
    session: Administrator,
    services: Services,
    name: FormText = "",
    role: FormText = "",
    password: FormText = "",
) -> Response:
    name = name.strip()
    try:
        await services.accounts.create_user(name, parse_role(role), password, by=session.actor)
    except InvalidConfiguration as exc:
        errors, general = split_errors(exc, ("name", "role", "password"))
        return _users_page(
            request,
            services,
            values={"name": name, "role": role},
            errors=errors,
            general=general,
            status_code=422,
        )
    except Forbidden as exc:
        return _forbidden(exc)
    flash(request, f"User {name} added with the role {role}.")
    return RedirectResponse("/users", status_code=303)


# -- one user ---------------------------------------------------------------------------------


def _user_page(
    request: Request,
    services: Services,
    name: str,
    *,
    errors: Mapping[str, str] | None = None,
    general: list[str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    user = services.accounts.user(name)  # NotFound -> 404 page
    return render(
        request,
        "users/user.html",
        {
            "page": "users",
            "title": f"User {name}",
            "user": user,
            "tokens": [t for t in services.accounts.tokens(owner=name) if t.active],
            "errors": errors or {},
            "general": general or [],
            "roles": ROLE_CHOICES,
        },
        status_code=status_code,
    )


@router.get("/users/{name}", response_class=HTMLResponse)
async def user_page(
    request: Request, name: str, session: Administrator, services: Services
) -> HTMLResponse:
    return _user_page(request, services, name)


@router.post("/users/{name}/role", response_class=HTMLResponse)
async def change_role(
    request: Request, name: str, session: Administrator, services: Services, role: FormText = ""
) -> Response:
    try:
        user = services.accounts.set_role(name, parse_role(role), by=session.actor)
    except InvalidConfiguration as exc:
        errors, general = split_errors(exc, ("role",))
        return _user_page(request, services, name, errors=errors, general=general, status_code=422)
    except NotApplicable as exc:  # the last administrator
        return _user_page(request, services, name, errors={"role": str(exc)}, status_code=422)
    except Forbidden as exc:
        return _forbidden(exc)
    flash(request, f"{name} is now {user.role.value}.")
    return RedirectResponse(f"/users/{name}", status_code=303)


@router.post("/users/{name}/password", response_class=HTMLResponse)
async def reset_password(
    request: Request,
    name: str,
    session: Administrator,
    services: Services,
    password: FormText = "",
) -> Response:
    try:
        await services.accounts.set_password(name, password, by=session.actor)
    except InvalidConfiguration as exc:
        errors, general = split_errors(exc, ("password",))
        return _user_page(request, services, name, errors=errors, general=general, status_code=422)
    except Forbidden as exc:
        return _forbidden(exc)
    if name == session.actor.name:
        # a new password ends every session of its user, this one included
        return RedirectResponse("/login", status_code=303)
    flash(
        request,
        f"The password of {name} was changed; their sessions were ended and their API tokens "
        "revoked.",
    )
    return RedirectResponse(f"/users/{name}", status_code=303)


@router.post("/users/{name}/delete", response_class=HTMLResponse)
async def delete_user(
    request: Request, name: str, session: Administrator, services: Services
) -> Response:
    try:
        services.accounts.delete_user(name, by=session.actor)
    except NotApplicable as exc:  # the last administrator
        flash(request, str(exc), "error")
        return RedirectResponse(f"/users/{name}", status_code=303)
    except Forbidden as exc:
        return _forbidden(exc)
    if name == session.actor.name:
        return RedirectResponse("/login", status_code=303)
    flash(request, f"User {name} deleted; their API tokens were revoked.")
    return RedirectResponse("/users", status_code=303)


# -- one's own account --------------------------------------------------------------------------


def _account_page(
    request: Request,
    *,
    errors: Mapping[str, str] | None = None,
    general: list[str] | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    return render(
        request,
        "users/account.html",
        {
            "page": "account",
            "title": "Your account",
            "errors": errors or {},
            "general": general or [],
        },
        status_code=status_code,
        headers=headers,
    )


@router.get("/account", response_class=HTMLResponse)
async def account_page(request: Request, session: Reader) -> HTMLResponse:
    return _account_page(request)


@router.post("/account/password", response_class=HTMLResponse)
async def change_own_password(
    request: Request,
    session: Reader,
    services: Services,
    current_password: FormText = "",
    password: FormText = "",
    password_confirm: FormText = "",
) -> Response:
    if password != password_confirm:
        return _account_page(
            request,
            errors={"password_confirm": "does not match the new password"},
            status_code=422,
        )
    try:
        await services.accounts.set_password(
            session.actor.name, password, by=session.actor, current=current_password
        )
    except InvalidConfiguration as exc:
        errors, general = split_errors(exc, ("current_password", "password", "password_confirm"))
        return _account_page(request, errors=errors, general=general, status_code=422)
    except LockedOut as exc:  # the password guard: the same lock as the login's
        return _account_page(
            request,
            errors={"current_password": str(exc)},
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
        )
    except Forbidden as exc:
        return _forbidden(exc)
    # the new password ended every session of this user: log in again with it
    return RedirectResponse("/login", status_code=303)
