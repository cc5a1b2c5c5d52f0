"""Who is calling the API, and whether they may: the first thing every request goes through.

Top of the flow of a change, before any handler: ``get_actor`` turns the request into an
``Actor`` and ``require(permission)`` refuses it unless its role has that permission. The app
puts ``require(Permission.read)`` on the whole ``/api/v1`` router (no route is reachable
without credentials) and write routes ask for more (``operate``, ``configure``,
``administer``).

The unix socket's app (``local``) trusts its caller: only root (or the daemon's user) can open
the 0600 socket, so it is a local administrator named by ``X-Bascule-Author`` (the CLI sends
``user@cli``) or ``root@local``. The HTTPS app takes, in order:

- ``Authorization: Bearer bsc_...``: an API token (a bad one is 401, never a fall-back);
- the WUI's ``bascule_session`` cookie, with ``X-CSRF-Token`` on every unsafe method (the
  cookie alone is what a cross-site request would carry, the token is what it cannot know).

No credentials: 401 with ``WWW-Authenticate: Bearer``; a role that may not: 403.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from bascule.daemon.accounts import AccountService, WebSession
from bascule.errors import Forbidden, NotAuthenticated
from bascule.model.access import Actor, Permission, Role
from bascule.text import has_control

SESSION_COOKIE = "bascule_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOCAL_ACTOR = "root@local"
LOCAL_REMOTE = "unix socket"

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token, `bsc_<id>_<secret>` (bascule token create)",
)
session_scheme = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="session",
    description="The web interface's session (POST /api/v1/auth/login); unsafe methods also "
    f"need the `{CSRF_HEADER}` header",
)


def client_address(request: Request) -> str:
    """Where the request comes from, as the audit log records it."""
    return request.client.host if request.client else "unknown"


def is_local(request: Request) -> bool:
    """Whether this is the unix socket's app (the caller trusted as a local administrator)."""
    return bool(getattr(request.app.state, "local", False))


def accounts_of(request: Request) -> AccountService:
    accounts: AccountService = request.app.state.services.accounts
    return accounts


def web_session(request: Request) -> WebSession | None:
    """The session ``get_actor`` resumed for this request (``None`` for a token or local)."""
    session: WebSession | None = getattr(request.state, "web_session", None)
    return session


async def get_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    session_id: Annotated[str | None, Depends(session_scheme)],
    x_bascule_author: Annotated[
        str | None,
        Header(
            max_length=128,
            description="On the local unix socket: who makes the change, recorded in the "
            'history (the CLI sends "user@cli"). Ignored over HTTPS: the author is the '
            "authenticated user.",
        ),
    ] = None,
) -> Actor:
    """The caller; ``NotAuthenticated`` (401) without valid credentials."""
    if is_local(request):
        name = (x_bascule_author or "").strip() or LOCAL_ACTOR
        if has_control(name):  # recorded as the author of revisions: one line, printable
            raise RequestValidationError(
                [
                    {
                        "type": "value_error",
                        "loc": ("header", "X-Bascule-Author"),
                        "msg": "must not contain control characters (newlines, tabs, ESC...)",
                        "input": name,
                    }
                ]
            )
        local = Actor(name=name, role=Role.admin, via="local", remote=LOCAL_REMOTE)
        return remember_actor(request, local)
    accounts = accounts_of(request)
    remote = client_address(request)
    if request.headers.get("Authorization") is not None:
        actor = None
        if credentials is not None:
            actor = accounts.authenticate_token(credentials.credentials, remote=remote)
        if actor is None:
            raise NotAuthenticated("the API token is unknown, revoked or malformed")
        return remember_actor(request, actor)
    if session_id:
        session = accounts.resume(session_id, remote=remote)
        if session is not None:
            remember_actor(request, session.actor)
            if request.method not in SAFE_METHODS and not session.csrf_ok(
                request.headers.get(CSRF_HEADER)
            ):
                raise Forbidden(
                    f"the {CSRF_HEADER} header is missing or wrong: send the token "
                    "POST /api/v1/auth/login returned"
                )
            request.state.web_session = session
            return session.actor
        raise NotAuthenticated("the session has expired: log in again")
    raise NotAuthenticated(
        "authentication required: send Authorization: Bearer <API token>, or log in"
    )


def remember_actor(request: Request, actor: Actor) -> Actor:
    """Remember the caller: a refusal (403) is recorded in the audit log under their name."""
    request.state.actor = actor
    return actor


def request_actor(request: Request) -> Actor | None:
    """The caller ``get_actor`` found for this request, if it got that far."""
    actor: Actor | None = getattr(request.state, "actor", None)
    return actor


def _requirement(permission: Permission) -> Callable[[Actor], Actor]:
    def dependency(actor: Annotated[Actor, Depends(get_actor)]) -> Actor:
        if not actor.may(permission):
            raise Forbidden(
                f"the role {actor.role} may not do this: it needs the {permission} permission"
            )
        return actor

    dependency.__name__ = f"require_{permission.value}"
    return dependency


# One callable per permission, so that FastAPI resolves each once per request.
_REQUIREMENTS = {permission: _requirement(permission) for permission in Permission}


def require(permission: Permission) -> Callable[[Actor], Actor]:
    """A dependency: the caller, refused (403) unless their role has ``permission``."""
    return _REQUIREMENTS[permission]


def check(actor: Actor, permission: Permission) -> None:
    """The same refusal inside a handler, when the permission depends on the request body."""
    if not actor.may(permission):
        raise Forbidden(
            f"the role {actor.role} may not do this: it needs the {permission} permission"
        )


ActorDep = Annotated[Actor, Depends(get_actor)]
Reader = Annotated[Actor, Depends(require(Permission.read))]
Operator = Annotated[Actor, Depends(require(Permission.operate))]
Configurer = Annotated[Actor, Depends(require(Permission.configure))]
Administrator = Annotated[Actor, Depends(require(Permission.administer))]
