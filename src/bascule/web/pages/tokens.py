"""API tokens (administrators only): list, create (the secret is shown once), revoke.

Beside the flow of a change: what a script or the remote CLI authenticates with
(``Authorization: Bearer bsc_<id>_<secret>``). ``AccountService`` creates the token, keeps
only a SHA-256 of its secret and records the creation in the audit log; the page shows the
secret in the answer to the form, once, and never again (it is nowhere to be read back).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bascule.daemon.accounts import WebSession
from bascule.errors import Forbidden, InvalidConfiguration, NotFound
from bascule.model.access import Role
from bascule.web.auth import Administrator
from bascule.web.pages.users import ROLE_CHOICES, FormText, parse_role, split_errors
from bascule.web.services import Services
from bascule.web.state import flash
from bascule.web.templating import render

router = APIRouter()


def _tokens_page(
    request: Request,
    services: Services,
    session: WebSession,
    *,
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    general: list[str] | None = None,
    created: tuple[Any, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    tokens = services.accounts.tokens()
    return render(
        request,
        "tokens/index.html",
        {
            "page": "tokens",
            "title": "API tokens",
            "tokens": sorted(tokens, key=lambda t: (not t.active, t.created_at)),
            "owners": [u.name for u in services.accounts.users()],
            "values": {
                "name": "",
                "role": Role.viewer.value,
                "owner": session.actor.name,
                **(values or {}),
            },
            "errors": errors or {},
            "general": general or [],
            "roles": ROLE_CHOICES,
            "created": created[0] if created else None,
            "secret": created[1] if created else "",
        },
        status_code=status_code,
    )


@router.get("/tokens", response_class=HTMLResponse)
async def tokens_page(request: Request, session: Administrator, services: Services) -> HTMLResponse:
    return _tokens_page(request, services, session)


@router.post("/tokens", response_class=HTMLResponse)
async def create_token(
    request: Request,
    session: Administrator,
    services: Services,
    name: FormText = "",
    role: FormText = "",
    owner: FormText = "",
) -> Response:
    values = {"name": name, "role": role, "owner": owner}
    try:
        info, secret = services.accounts.create_token(
            name, parse_role(role), by=session.actor, owner=owner.strip() or None
        )
    except InvalidConfiguration as exc:
        errors, general = split_errors(exc, ("name", "role", "owner"))
        return _tokens_page(
            request,
            services,
            session,
            values=values,
            errors=errors,
            general=general,
            status_code=422,
        )
    except Forbidden as exc:
        return _tokens_page(
            request, services, session, values=values, general=[str(exc)], status_code=403
        )
    # Rendered in the answer to the POST, not stored for a redirect: the secret exists in
    # this response only (Cache-Control: no-store, see app.py).
    return _tokens_page(request, services, session, created=(info, secret), status_code=200)


@router.post("/tokens/{token_id}/revoke", response_class=HTMLResponse)
async def revoke_token(
    request: Request, token_id: str, session: Administrator, services: Services
) -> Response:
    try:
        services.accounts.revoke_token(token_id, by=session.actor)
    except NotFound as exc:
        flash(request, str(exc), "error")
    except Forbidden as exc:
        return Response(str(exc), status_code=403, media_type="text/plain")
    else:
        flash(request, f"Token {token_id} revoked: it no longer opens the API.")
    return RedirectResponse("/tokens", status_code=303)
