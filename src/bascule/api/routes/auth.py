"""/auth: log in (a session cookie for browsers and scripts), log out, and who am I.

Before the flow of a change: this is where a caller becomes an ``Actor``. ``POST /auth/login``
checks a user name and password (argon2; lockout after repeated failures, 429) and sets the
``bascule_session`` cookie (``Secure; HttpOnly; SameSite=Strict; Path=/``); its answer carries
the session's CSRF token, to send as ``X-CSRF-Token`` with every unsafe request. Scripts
should rather use an API token (``Authorization: Bearer``). Login and logout are the only
routes reachable without credentials.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, Field

from bascule.api.auth import (
    CSRF_HEADER,
    SESSION_COOKIE,
    accounts_of,
    client_address,
    remember_actor,
    web_session,
)
from bascule.api.bodies import OffLoopRoute
from bascule.api.deps import Reader
from bascule.api.errors import LOCKED_RESPONSES
from bascule.errors import Forbidden
from bascule.model.access import ROLE_PERMISSIONS, Permission, Role

public = APIRouter(prefix="/auth", tags=["authentication"], route_class=OffLoopRoute)
router = APIRouter(prefix="/auth", tags=["authentication"], route_class=OffLoopRoute)


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class WhoAmIOut(BaseModel):
    name: str
    role: Role
    via: str  # session | token | local
    remote: str
    permissions: list[Permission]
    csrf_token: str | None = None  # with a session: the token unsafe requests must send
    expires_at: datetime | None = None  # with a session: when it ends if left idle


class LoginOut(WhoAmIOut):
    csrf_token: str
    expires_at: datetime


@public.post(
    "/login",
    summary="Log in: sets the session cookie, returns the CSRF token",
    responses=LOCKED_RESPONSES,
)
async def login(
    credentials: Annotated[LoginIn, Body()], request: Request, response: Response
) -> LoginOut:
    accounts = accounts_of(request)
    session = await accounts.login(
        credentials.username, credentials.password, remote=client_address(request)
    )
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        secure=True,
        httponly=True,
        samesite="strict",
        path="/",
    )
    response.headers["Cache-Control"] = "no-store"
    actor = session.actor
    return LoginOut(
        name=actor.name,
        role=actor.role,
        via=actor.via,
        remote=actor.remote,
        permissions=sorted(ROLE_PERMISSIONS[actor.role]),
        csrf_token=session.csrf_token,
        expires_at=datetime.fromtimestamp(session.expires_at, UTC),
    )


@public.post("/logout", status_code=204, summary="Log out: ends the session, clears the cookie")
async def logout(request: Request, response: Response) -> None:
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        accounts = accounts_of(request)
        remote = client_address(request)
        session = accounts.resume(session_id, remote=remote, touch=False)
        if session is not None:
            remember_actor(request, session.actor)
            if not session.csrf_ok(request.headers.get(CSRF_HEADER)):
                raise Forbidden(f"the {CSRF_HEADER} header is missing or wrong")
            accounts.logout(session_id, remote=remote)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")


@router.get("/whoami", summary="The caller: name, role, permissions (and CSRF token)")
async def whoami(actor: Reader, request: Request) -> WhoAmIOut:
    session = web_session(request)
    return WhoAmIOut(
        name=actor.name,
        role=actor.role,
        via=actor.via,
        remote=actor.remote,
        permissions=sorted(ROLE_PERMISSIONS[actor.role]),
        csrf_token=None if session is None else session.csrf_token,
        expires_at=None if session is None else datetime.fromtimestamp(session.expires_at, UTC),
    )
