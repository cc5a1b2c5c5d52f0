"""The page store page: the HTML pages ``not_available.respond.body_file`` names.

List, upload and delete pages through the one ``PageService`` (daemon/pages.py), the same
checks as ``POST /api/v1/pages`` and ``bascule page add``: a name of the model's alphabet,
UTF-8 text without control characters, at most ``MAX_PAGE_BYTES``; a refusal is shown beside
the field it names, nothing stored. A page a service names cannot be deleted. Reading needs
``read``, changing ``configure``; every change is in the audit log (the service records it).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bascule.daemon.pages import PageService
from bascule.errors import InvalidConfiguration, NotApplicable
from bascule.store.pages import MAX_PAGE_BYTES
from bascule.web.auth import Configurer, Reader
from bascule.web.forms import errors_for
from bascule.web.services import Services, WebServices
from bascule.web.state import flash
from bascule.web.templating import render

router = APIRouter()

_FIELDS = ("name", "content")


def _pages(services: WebServices) -> PageService:
    if services.pages is None:
        raise NotApplicable("this daemon has no page store")
    return services.pages


def _page(
    request: Request,
    services: WebServices,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    general: tuple[str, ...] = (),
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "page_store/index.html",
        {
            "page": "pages",
            "title": "Pages",
            "pages": _pages(services).entries(),
            "values": values or {"name": "", "content": ""},
            "errors": errors or {},
            "general": general,
            "max_bytes": MAX_PAGE_BYTES,
        },
        status_code=status_code,
    )


@router.get("/pages", response_class=HTMLResponse)
async def pages_page(request: Request, session: Reader, services: Services) -> HTMLResponse:
    return _page(request, services)


@router.post("/pages", response_class=HTMLResponse)
async def add_page(
    request: Request,
    session: Configurer,
    services: Services,
    name: Annotated[str, Form(max_length=256)] = "",
    content: Annotated[str, Form(max_length=4 * MAX_PAGE_BYTES)] = "",
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Add a page from the uploaded file, or from the text typed in."""
    data = content.encode()
    if file is not None and file.filename:
        data = await file.read(MAX_PAGE_BYTES + 1)
    try:
        await _pages(services).add(name.strip(), data, actor=session.actor)
    except InvalidConfiguration as exc:
        found = errors_for(exc, prefix="", names=_FIELDS)
        return _page(
            request,
            services,
            values={"name": name, "content": content},
            errors=dict(found.fields),
            general=found.general,
            status_code=422,
        )
    flash(request, f"Page {name.strip()} added.")
    return RedirectResponse("/pages", status_code=303)


@router.post("/pages/{name}/delete")
async def delete_page(
    request: Request, name: str, session: Configurer, services: Services
) -> Response:
    try:
        await _pages(services).delete(name, actor=session.actor)
    except InvalidConfiguration as exc:
        flash(request, "; ".join(error.message for error in exc.errors), "error")
    else:
        flash(request, f"Page {name} deleted.")
    return RedirectResponse("/pages", status_code=303)
