"""Access lists: the document's named address lists, the global block, and what each drops.

The page lists every list (its entries, whether the global ``block`` drops its clients on
every virtual service, the services that allow or deny it, the packets the kernel's filter
dropped because of it); configurers add a list, replace its entries, block or unblock it and
delete one no service uses. Entries are typed one address or CIDR network a line, ``#``
comments allowed, as ``bascule acl import`` reads a file: a bad line is refused by its number
and nothing is saved. Every change is an edit of ``bascule.model.filtering`` shown on
``/preview`` first, as the API's ``/access-lists`` and ``bascule acl`` make them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from bascule.daemon.accounts import WebSession
from bascule.errors import FieldError, InvalidConfiguration, NotFound
from bascule.model import filtering
from bascule.model.access import Permission
from bascule.web.auth import Configurer, Reader
from bascule.web.changes import PendingChange, config_edit, propose, propose_or_say
from bascule.web.forms import FormErrors
from bascule.web.services import Services, WebServices
from bascule.web.templating import render

router = APIRouter()

#: The largest list typed into the page (~200,000 entries); a larger one is imported from a
#: file (``bascule acl import``, the API's ``/access-lists/NAME/import``).
LIST_TEXT_BYTES = 4 * 1024 * 1024
ListText = Annotated[str, Form(max_length=LIST_TEXT_BYTES)]
FormText = Annotated[str, Form(max_length=256)]


def _lists(services: WebServices) -> tuple[dict[str, Any], dict[str, Any]]:
    """The document's lists (name -> as stored) and the document."""
    _, document = services.config.document()
    return dict(document.get("access_lists") or {}), document


async def _rows(services: WebServices) -> list[dict[str, Any]]:
    _, document = _lists(services)
    return filtering.list_summaries(document, await services.config.access_list_drops())


def _errors(exc: InvalidConfiguration, name: str) -> FormErrors:
    """The errors beside the form's two inputs (a bad name, bad entries), the page's own
    (``name``, ``addresses``) and the model's (``access_lists.NAME...``)."""
    fields: dict[str, str] = {}
    general: list[str] = []
    where = f"access_lists.{name}"
    for error in exc.errors:
        if error.path in ("name", where):
            field = "name"
        elif error.path == "addresses" or error.path.startswith(where + "."):
            field = "addresses"
        else:
            general.append(f"{error.path}: {error.message}" if error.path else error.message)
            continue
        fields[field] = f"{fields[field]}; {error.message}" if field in fields else error.message
    return FormErrors(fields=fields, general=tuple(general))


def _entries(text: str) -> list[str]:
    """The typed entries, or ``InvalidConfiguration`` naming every bad line by its number."""
    try:
        return filtering.parse_address_lines(text)
    except filtering.InvalidListFile as exc:
        raise _invalid("addresses", str(exc)) from None


def _invalid(field: str, message: str) -> InvalidConfiguration:
    return InvalidConfiguration([FieldError(path=field, message=message)])


def _write(
    document: Mapping[str, Any], *, name: str, addresses: list[str], block: bool
) -> dict[str, Any]:
    """The document with list ``name`` holding ``addresses``, in or out of ``block``."""
    changed = filtering.set_access_list(document, name, addresses, None)
    return filtering.set_blocked(changed, name, block)


# -- the list of lists, and adding one ---------------------------------------------------------


@router.get("/access-lists", response_class=HTMLResponse)
async def access_lists_page(request: Request, session: Reader, services: Services) -> HTMLResponse:
    return await _index(request, services, values={}, errors=FormErrors(fields={}))


async def _index(
    request: Request,
    services: WebServices,
    *,
    values: Mapping[str, Any],
    errors: FormErrors,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "access_lists/index.html",
        {
            "page": "access_lists",
            "title": "Access lists",
            "lists": await _rows(services),
            "values": {"name": "", "addresses": "", "block": False, **values},
            "errors": errors.fields,
            "general": list(errors.general),
        },
        status_code=status_code,
    )


@router.post("/access-lists", response_class=HTMLResponse)
async def add_access_list(
    request: Request,
    session: Configurer,
    services: Services,
    name: FormText = "",
    addresses: ListText = "",
    block: FormText = "",
) -> Response:
    name = name.strip()
    typed = {"name": name, "addresses": addresses, "block": bool(block)}
    lists, _ = _lists(services)
    try:
        if not name:
            raise _invalid("name", "a list needs a name")
        if name in lists:
            raise _invalid(
                "name", f"there is already a list named {name!r}: change it on its own page"
            )
        change = _change(
            services, session, name=name, addresses=_entries(addresses), block=bool(block),
            title=f"Add access list {name}", return_to="/access-lists",
        )  # fmt: skip
        return await propose(request, session, change)
    except InvalidConfiguration as exc:
        return await _index(
            request, services, values=typed, errors=_errors(exc, name), status_code=422
        )


def _change(
    services: WebServices,
    session: WebSession,
    *,
    name: str,
    addresses: list[str],
    block: bool,
    title: str,
    return_to: str,
) -> PendingChange:
    return config_edit(
        services,
        session,
        title=title,
        edit=functools.partial(_write, name=name, addresses=addresses, block=block),
        message=f"{title[0].lower()}{title[1:]} ({len(addresses)} entries)",
        permission=Permission.configure,
        return_to=return_to,
        done_to="/access-lists",
    )


# -- one list: its entries, replaced; blocked, unblocked, deleted ------------------------------


@router.get("/access-lists/{name}", response_class=HTMLResponse)
async def access_list_page(
    request: Request, name: str, session: Reader, services: Services
) -> HTMLResponse:
    lists, document = _lists(services)
    body = lists.get(name)
    if body is None:
        raise NotFound(f"there is no access list named {name!r}")
    shown = {
        "addresses": "\n".join(body.get("addresses") or []),
        "block": name in (document.get("block") or []),
    }
    return _one(request, name, body, document, values=shown, errors=FormErrors(fields={}))


def _one(
    request: Request,
    name: str,
    body: Mapping[str, Any],
    document: Mapping[str, Any],
    *,
    values: Mapping[str, Any],
    errors: FormErrors,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "access_lists/detail.html",
        {
            "page": "access_lists",
            "title": f"Access list {name}",
            "name": name,
            "file": body.get("file"),
            "entries": len(body.get("addresses") or []),
            "used_by": filtering.list_uses(document, name),
            "values": values,
            "errors": errors.fields,
            "general": list(errors.general),
        },
        status_code=status_code,
    )


@router.post("/access-lists/{name}", response_class=HTMLResponse)
async def edit_access_list(
    request: Request,
    name: str,
    session: Configurer,
    services: Services,
    addresses: ListText = "",
    block: FormText = "",
) -> Response:
    lists, document = _lists(services)
    body = lists.get(name)
    if body is None:
        raise NotFound(f"there is no access list named {name!r}")
    try:
        change = _change(
            services, session, name=name, addresses=_entries(addresses), block=bool(block),
            title=f"Change access list {name}", return_to=f"/access-lists/{name}",
        )  # fmt: skip
        return await propose(request, session, change)
    except InvalidConfiguration as exc:
        typed = {"addresses": addresses, "block": bool(block)}
        return _one(
            request, name, body, document, values=typed, errors=_errors(exc, name),
            status_code=422,
        )  # fmt: skip


@router.post("/access-lists/{name}/block")
async def block_access_list(
    request: Request, name: str, session: Configurer, services: Services
) -> Response:
    return await _set_blocked(request, name, session, services, blocked=True)


@router.post("/access-lists/{name}/unblock")
async def unblock_access_list(
    request: Request, name: str, session: Configurer, services: Services
) -> Response:
    return await _set_blocked(request, name, session, services, blocked=False)


async def _set_blocked(
    request: Request, name: str, session: WebSession, services: WebServices, *, blocked: bool
) -> Response:
    verb = "Block" if blocked else "Unblock"
    change = config_edit(
        services,
        session,
        title=f"{verb} access list {name} on every virtual service",
        edit=functools.partial(filtering.set_blocked, name=name, blocked=blocked),
        message=f"{verb.lower()} access list {name}",
        permission=Permission.configure,
        return_to="/access-lists",
        done_to="/access-lists",
    )
    return await propose_or_say(request, session, change, prefix="access_lists")


@router.post("/access-lists/{name}/delete")
async def delete_access_list(
    request: Request, name: str, session: Configurer, services: Services
) -> Response:
    change = config_edit(
        services,
        session,
        title=f"Delete access list {name}",
        edit=functools.partial(filtering.delete_access_list, name=name),
        message=f"remove access list {name}",
        permission=Permission.configure,
        return_to="/access-lists",
        done_to="/access-lists",
    )
    return await propose_or_say(request, session, change, prefix="access_lists")
