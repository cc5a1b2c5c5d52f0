"""/revisions: the history of the configuration, diffs between revisions, and rollback.

The end of the flow of a change as a person sees it afterwards: every committed revision with
its author, message and diff. A rollback is a change like any other: a new revision carrying
an old document, validated, checked and applied.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from bascule.api.answers import change_answer, off_loop
from bascule.api.deps import ConfigServiceDep, ConfigureAction
from bascule.api.schemas import ApplyResultOut, DiffOut, RevisionOut, RevisionPage

router = APIRouter(prefix="/revisions", tags=["revisions"])

MAX_PAGE = 1000
# Revision numbers are SQLite INTEGERs: a larger number is a request error, never a 500.
MAX_REVISION = 2**63 - 1
RevisionNumber = Annotated[int, Path(ge=0, le=MAX_REVISION, description="A revision number")]


@router.get("", summary="The history, newest first, a page at a time")
async def list_revisions(
    config: ConfigServiceDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_REVISION, description="Only revisions older than this")
    ] = None,
) -> RevisionPage:
    # One row more than asked tells whether another page exists.
    return RevisionPage.of(config.history(limit=limit + 1, before=before), limit=limit)


@router.get(
    "/{number}",
    summary="One revision, its document and its diff from the one before",
    response_model=RevisionOut,
)
async def read_revision(number: RevisionNumber, config: ConfigServiceDep) -> Response:
    revision = config.revision(number)
    return await off_loop(lambda: RevisionOut.of(revision))


@router.get(
    "/{a}/diff/{b}", summary="The changes from revision a to revision b", response_model=DiffOut
)
async def diff_revisions(
    a: RevisionNumber, b: RevisionNumber, config: ConfigServiceDep
) -> Response:
    return await off_loop(lambda: DiffOut.of(config.diff(a, b)))


@router.post(
    "/{number}/rollback",
    summary="Make an older revision current again",
    response_model=ApplyResultOut,
)
async def rollback(
    number: RevisionNumber, config: ConfigServiceDep, change_request: ConfigureAction
) -> Response:
    return await change_answer(await config.rollback(number, change_request))
