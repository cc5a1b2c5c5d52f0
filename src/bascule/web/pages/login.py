"""Login and logout: the only pages reachable without a session.

A successful login sets the ``bascule_session`` cookie (Secure, HttpOnly, SameSite=Strict,
Path=/; the contract's flags) to the session id AccountService returned and goes back to
where the person was going (``next``, a local path only). Wrong credentials and lockouts come
from AccountService as ``AuthenticationFailed`` and ``LockedOut`` and are shown as they are
worded there. The login form itself is protected against login CSRF by a random token kept
in a short-lived cookie and echoed in the form (there is no session to bind it to yet).
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bascule.errors import AuthenticationFailed, InvalidConfiguration, LockedOut
from bascule.web.auth import SESSION_COOKIE, Reader, client_address, safe_next
from bascule.web.services import Services
from bascule.web.state import session_states
from bascule.web.templating import render

router = APIRouter()

LOGIN_CSRF_COOKIE = "bascule_login"
LOGIN_CSRF_MAX_AGE = 3600


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, services: Services, next: str = "/") -> Response:
    session_id = request.cookies.get(SESSION_COOKIE)
    remote = client_address(request)
    if session_id and services.accounts.resume(session_id, remote=remote) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    notice = "You are logged out." if request.query_params.get("bye") else ""
    return _form(request, next=safe_next(next), notice=notice)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, services: Services) -> Response:
    form = await request.form()
    username = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    next_url = safe_next(str(form.get("next") or "/"))
    sent = str(form.get("csrf_token") or "")
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
        return _form(
            request,
            next=next_url,
            username=username,
            error="This login form has expired. Please log in again.",
            status_code=403,
        )
    try:
        session = await services.accounts.login(username, password, remote=client_address(request))
    except LockedOut as exc:
        return _form(
            request,
            next=next_url,
            username=username,
            error=str(exc),
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
        )
    except AuthenticationFailed as exc:
        return _form(request, next=next_url, username=username, error=str(exc), status_code=401)
    except InvalidConfiguration as exc:
        return _form(request, next=next_url, username=username, error=str(exc), status_code=400)
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, session.id, secure=True, httponly=True, samesite="strict", path="/"
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login", secure=True, httponly=True)
    return response


@router.post("/logout")
async def logout(request: Request, session: Reader, services: Services) -> Response:
    services.accounts.logout(session.id, remote=client_address(request))
    session_states(request).forget(session.id)
    response = RedirectResponse("/login?bye=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


def _form(
    request: Request,
    *,
    next: str,
    username: str = "",
    error: str = "",
    notice: str = "",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    token = secrets.token_urlsafe(32)
    error = error[:1].upper() + error[1:]  # AccountService's messages are sentence parts
    response = render(
        request,
        "login/login.html",
        {
            "title": "Log in",
            "next": next,
            "username": username,
            "error": error,
            "notice": notice,
            "login_token": token,
        },
        status_code=status_code,
        headers=headers,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=LOGIN_CSRF_MAX_AGE,
        secure=True,
        httponly=True,
        samesite="strict",
        path="/login",
    )
    return response
