"""/pages: the page store (``bascule page ...``), the pages ``not_available.respond.body_file``
names.

Reading needs ``read``; adding and deleting need ``configure`` (a page is part of what a
service answers). Every change goes through the one ``PageService`` (daemon/pages.py), which
checks the page (a refusal is 422 ``invalid_configuration`` naming ``name`` or ``content``),
writes HAProxy's files and records the change in the audit log. A page is refused for
deletion while a service names it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Request, Response
from pydantic import BaseModel, Field

from bascule.api.bodies import OffLoopRoute
from bascule.api.deps import Configurer, Reader, get_services
from bascule.daemon.pages import PageDetails, PageService
from bascule.errors import NotApplicable
from bascule.store.pages import MAX_PAGE_BYTES

router = APIRouter(tags=["pages"], route_class=OffLoopRoute)

PageName = Annotated[
    str, Path(min_length=1, max_length=63, description="The page's name in the store")
]


def get_pages(request: Request) -> PageService:
    pages = get_services(request).pages
    if pages is None:
        raise NotApplicable("this daemon has no page store")
    return pages


PageServiceDep = Annotated[PageService, Depends(get_pages)]


class PageOut(BaseModel):
    name: str
    size: int = Field(description="bytes of UTF-8")
    created_at: datetime
    used_by: list[str] = Field(description="the virtual services whose body_file names it")

    @classmethod
    def of(cls, details: PageDetails) -> PageOut:
        return cls(
            name=details.name,
            size=details.size,
            created_at=details.created_at,
            used_by=list(details.used_by),
        )


class PageContentOut(PageOut):
    content: str


class PagesOut(BaseModel):
    items: list[PageOut]


class PageIn(BaseModel):
    name: str = Field(max_length=63)
    # characters, not bytes: the store counts the UTF-8 bytes (MAX_PAGE_BYTES)
    content: str = Field(max_length=MAX_PAGE_BYTES, description="the page, HTML (UTF-8)")


@router.get("/pages", summary="Every page of the page store (read)")
async def list_pages(actor: Reader, pages: PageServiceDep) -> PagesOut:
    return PagesOut(items=[PageOut.of(details) for details in pages.entries()])


@router.post("/pages", status_code=201, summary="Add a page (configure)")
async def add_page(
    actor: Configurer, pages: PageServiceDep, body: Annotated[PageIn, Body()]
) -> PageOut:
    return PageOut.of(await pages.add(body.name, body.content.encode(), actor=actor))


@router.get("/pages/{name}", summary="One page, with its content (read)")
async def read_page(name: PageName, actor: Reader, pages: PageServiceDep) -> PageContentOut:
    details, content = pages.show(name)
    return PageContentOut(**PageOut.of(details).model_dump(), content=content)


@router.delete(
    "/pages/{name}", status_code=204, summary="Delete a page (refused while a service names it)"
)
async def delete_page(name: PageName, actor: Configurer, pages: PageServiceDep) -> Response:
    await pages.delete(name, actor=actor)
    return Response(status_code=204)
