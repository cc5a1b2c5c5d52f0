"""Errors at the API's edge: every failure leaves as one JSON shape, ``ErrorOut``.

The service layer raises the hierarchy of bascule/errors.py; here each error becomes a status
code and a ``kind`` that says who is at fault, so clients switch on ``kind`` and show
``message`` and ``fields``::

    InvalidConfiguration   422  invalid_configuration  fields: the document's own paths
    EngineRejected         422  engine_rejected        message: the engine checker's words
    NotFound               404  not_found
    NotApplicable          422  not_applicable         e.g. DSR help for a NAT service
    Conflict               409  conflict               current_revision, and its ETag
    NotTheActive           409  not_active             a write on an HA standby: names the active
    DaemonUnavailable      502  peer_unreachable       the HA pair's peer did not answer
    ApplyFailed, EngineError 500 apply_failed
    StoreError             500  store_error
    NotAuthenticated       401  unauthorized           with WWW-Authenticate: Bearer
    LockedOut              429  locked_out             with Retry-After (too many failed logins)
    Forbidden              403  forbidden              the role may not; or a CSRF token is wrong
                                                       (recorded in the audit log: access.denied)
    request validation     422  bad_request            fields: query.limit, header.If-Match, body
    unreadable body        400  bad_request            not UTF-8 where JSON was expected
    no such route / method 404 not_found / 405 bad_request

Bad input never yields a 500; anything unexpected does, as ``internal_error``, and is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from bascule.api.auth import client_address, request_actor
from bascule.api.etags import etag
from bascule.api.schemas import ErrorDetail, ErrorKind, ErrorOut, FieldProblem
from bascule.daemon.audit import AuditOutcome
from bascule.errors import (
    AcmeFailed,
    ApplyFailed,
    BasculeError,
    Conflict,
    DaemonUnavailable,
    EngineError,
    EngineRejected,
    Forbidden,
    InvalidConfiguration,
    LockedOut,
    NotApplicable,
    NotAuthenticated,
    NotFound,
    NotTheActive,
    StoreError,
)

log = logging.getLogger("bascule.api")

#: For OpenAPI: the error responses every route may give.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The request body could not be read (not UTF-8)"},
    401: {"model": ErrorOut, "description": "No valid credentials (token or session)"},
    403: {"model": ErrorOut, "description": "The caller's role may not do this"},
    404: {"model": ErrorOut, "description": "Not found"},
    409: {"model": ErrorOut, "description": "The If-Match revision is stale"},
    422: {"model": ErrorOut, "description": "Invalid configuration, request, or engine refusal"},
    500: {"model": ErrorOut, "description": "The engine or the store failed"},
}
#: For OpenAPI: the routes that check a password (login, one's own password change).
LOCKED_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorOut,
        "description": "Too many failed password checks for this account or from this address "
        "(Retry-After says for how long)",
    },
}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BasculeError, _bascule_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


def error_response(
    status: int,
    kind: ErrorKind,
    message: str,
    *,
    fields: Sequence[FieldProblem] = (),
    current_revision: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorOut(
        error=ErrorDetail(
            kind=kind, message=message, fields=list(fields), current_revision=current_revision
        )
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


async def _bascule_error(request: Request, exc: Exception) -> JSONResponse:
    match exc:
        case InvalidConfiguration():
            fields = [FieldProblem(path=e.path, message=e.message) for e in exc.errors]
            return error_response(422, "invalid_configuration", str(exc), fields=fields)
        case NotFound():
            return error_response(404, "not_found", str(exc))
        case NotApplicable():
            return error_response(422, "not_applicable", str(exc))
        case Conflict():
            return error_response(
                409,
                "conflict",
                str(exc),
                current_revision=exc.current,
                headers={"ETag": etag(exc.current)},
            )
        case NotTheActive():
            return error_response(409, "not_active", str(exc))
        case DaemonUnavailable():
            return error_response(502, "peer_unreachable", str(exc))
        case EngineRejected():
            return error_response(422, "engine_rejected", exc.checker_message)
        case LockedOut():
            return error_response(
                429, "locked_out", str(exc), headers={"Retry-After": str(exc.retry_after)}
            )
        case NotAuthenticated():
            return error_response(
                401, "unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"}
            )
        case Forbidden():
            _record_refusal(request, str(exc))
            return error_response(403, "forbidden", str(exc))
        case ApplyFailed() | EngineError():
            log.error("engine failure", extra={"error": str(exc), "path": request.url.path})
            return error_response(500, "apply_failed", str(exc))
        case StoreError():
            log.error("store failure", extra={"error": str(exc), "path": request.url.path})
            return error_response(500, "store_error", str(exc))
        case AcmeFailed():
            return error_response(502, "acme_failed", str(exc))
    return await _unexpected(request, exc)


def _record_refusal(request: Request, detail: str) -> None:
    """A request refused for its role or its CSRF token is in the audit log, like the
    changes that get through: who tried what, from where."""
    services = getattr(request.app.state, "services", None)
    audit = getattr(services, "audit", None)
    if audit is None:
        return
    actor = request_actor(request)
    audit.record(
        actor,
        "access.denied",
        f"{request.method} {request.url.path}",
        remote=actor.remote if actor else client_address(request),
        outcome=AuditOutcome.refused,
        detail=detail,
    )


async def _request_invalid(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    fields = [_field_problem(error) for error in errors]
    message = "the request is invalid: " + "; ".join(f"{f.path}: {f.message}" for f in fields)
    return error_response(422, "bad_request", message, fields=fields)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, HTTPException):  # pragma: no cover (registered for HTTPException)
        return await _unexpected(request, exc)
    if exc.status_code == 404:
        message = f"there is no API resource at {request.url.path}"
        return error_response(404, "not_found", message, headers=exc.headers)
    if exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
        return error_response(405, "bad_request", message, headers=exc.headers)
    kind: ErrorKind = "bad_request" if exc.status_code < 500 else "internal_error"
    return error_response(exc.status_code, kind, str(exc.detail), headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc, extra={"path": request.url.path})
    return error_response(500, "internal_error", f"internal error: {type(exc).__name__}: {exc}")


# -- request validation, in readable words ------------------------------------------------------

_MESSAGES: dict[str, str] = {
    "missing": "is required",
    "dict_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
}


def _field_problem(error: Mapping[str, Any]) -> FieldProblem:
    location = tuple(error.get("loc", ()))
    kind = str(error.get("type", ""))
    context: Mapping[str, Any] = error.get("ctx") or {}
    if kind == "json_invalid":
        # loc is ("body", <character offset>): the body as a whole is at fault.
        detail = context.get("error", "")
        where = f" at character {location[1]}" if len(location) > 1 else ""
        return FieldProblem(path="body", message=f"is not valid JSON ({detail}{where})")
    if kind == "greater_than_equal":
        message = f"must be at least {context.get('ge')}"
    elif kind == "less_than_equal":
        message = f"must be at most {context.get('le')}"
    elif kind == "string_too_long":
        message = f"must be at most {context.get('max_length')} characters"
    else:
        message = _MESSAGES.get(kind) or str(error.get("msg", "is invalid"))
    return FieldProblem(path=_path(location), message=message)


def _path(location: Sequence[Any]) -> str:
    """``("query", "limit")`` -> ``query.limit``; ``("body", "a", 0)`` -> ``body.a[0]``."""
    parts: list[str] = []
    for item in location:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(f".{item}" if parts else str(item))
    return "".join(parts)
