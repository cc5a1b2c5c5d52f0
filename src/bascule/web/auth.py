"""Who is asking: the session cookie, the CSRF check and the permission check of every page.

Every page handler takes one of the ``Annotated`` aliases below; each resumes the session
from the ``bascule_session`` cookie through ``AccountService.resume`` (idle timeout enforced
there), refuses an unsafe request whose CSRF token (form field ``csrf_token`` or header
``X-CSRF-Token``) is missing or wrong, and refuses an actor without the permission::

    Reader        GET pages; POST only with a valid CSRF token       (Permission.read)
    Operator      enable, disable, drain, weight                     (Permission.operate)
    Configurer    structural changes                                 (Permission.configure)
    Administrator users, tokens, system                              (Permission.administer)

A request without a valid session is sent to ``/login?next=<where it was going>``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from bascule.daemon.accounts import WebSession
from bascule.daemon.audit import AuditOutcome
from bascule.model.access import Permission
from bascule.web.services import get_web_services

SESSION_COOKIE = "bascule_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginRequired(Exception):
    """No valid session: the app sends the browser to the login page (see app.py)."""

    def __init__(self, next_url: str) -> None:
        super().__init__("login required")
        self.next_url = next_url


def client_address(request: Request) -> str:
    """The remote address recorded with every change and every login."""
    return request.client.host if request.client else "unknown"


def safe_next(value: str | None) -> str:
    """A local path to go back to after login; anything else (another site) becomes ``/``.

    Control characters are refused too: browsers drop tabs and newlines from a URL, so
    ``/<TAB>/evil.example`` would become ``//evil.example``, another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(character) < 0x20 or ord(character) == 0x7F for character in value):
        return "/"
    return value


def session_of(request: Request) -> WebSession | None:
    """The session a dependency resumed for this request (templates show its actor)."""
    session: WebSession | None = getattr(request.state, "web_session", None)
    return session


async def current_session(request: Request) -> WebSession:
    """The caller's session, or LoginRequired; unsafe methods must carry the CSRF token."""
    session_id = request.cookies.get(SESSION_COOKIE)
    accounts = get_web_services(request).accounts
    # A live fragment polled by htmx is not a person's activity: it must not keep an open
    # dashboard logged in forever (the idle timeout is about people).
    polling = request.method in SAFE_METHODS and bool(request.headers.get("HX-Request"))
    session = (
        accounts.resume(session_id, remote=client_address(request), touch=not polling)
        if session_id
        else None
    )
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method not in SAFE_METHODS or request.headers.get("HX-Request"):
            # a form posted after the session expired, or a live fragment: go back to the
            # page the person was on, not to the fragment or the POST target
            target = _referring_path(request) or "/"
        raise LoginRequired(safe_next(target))
    request.state.web_session = session
    if request.method not in SAFE_METHODS:
        await _check_csrf(request, session)
    return session


async def _check_csrf(request: Request, session: WebSession) -> None:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        field = form.get(CSRF_FIELD)
        sent = field if isinstance(field, str) else None
    if not session.csrf_ok(sent):
        raise refusal(
            request,
            session,
            "This form is out of date or did not come from Bascule (CSRF check "
            "failed). Reload the page and try again.",
        )


def refusal(request: Request, session: WebSession, message: str) -> HTTPException:
    """A 403 for ``session``'s request, recorded in the audit log (``access.denied``, who
    tried what, from where) like the changes that get through."""
    get_web_services(request).audit.record(
        session.actor,
        "access.denied",
        f"{request.method} {request.url.path}",
        outcome=AuditOutcome.refused,
        detail=message,
    )
    return HTTPException(status_code=403, detail=message)


def _referring_path(request: Request) -> str | None:
    referer = request.headers.get("HX-Current-URL") or request.headers.get("Referer")
    if not referer:
        return None
    base = str(request.base_url)
    return "/" + referer[len(base) :] if referer.startswith(base) else None


def require(permission: Permission) -> Callable[[Request], Awaitable[WebSession]]:
    """A dependency: the session, refused with 403 unless its actor may ``permission``."""

    async def dependency(request: Request) -> WebSession:
        session = await current_session(request)
        if not session.actor.may(permission):
            raise refusal(
                request,
                session,
                f"Your role ({session.actor.role.value}) may not do this: it needs "
                f"the {permission.value} permission.",
            )
        return session

    return dependency


Reader = Annotated[WebSession, Depends(require(Permission.read))]
Operator = Annotated[WebSession, Depends(require(Permission.operate))]
Configurer = Annotated[WebSession, Depends(require(Permission.configure))]
Administrator = Annotated[WebSession, Depends(require(Permission.administer))]
