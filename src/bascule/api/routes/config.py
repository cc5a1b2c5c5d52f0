"""/config: the whole configuration document, read, replaced (``bascule apply -f``) or planned.

The first door of the flow of a change: the document is passed untouched to the service
layer, which validates it, has the engine check it, commits and applies it.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from bascule.api.answers import change_answer, off_loop
from bascule.api.bodies import OffLoopRoute
from bascule.api.deps import ConfigServiceDep, ConfigureAction, ConfigureChange, DocumentBody
from bascule.api.etags import etag
from bascule.api.schemas import ApplyResultOut, ConfigOut

router = APIRouter(prefix="/config", tags=["config"], route_class=OffLoopRoute)


@router.get("", summary="The current configuration document", response_model=ConfigOut)
async def read_config(config: ConfigServiceDep) -> Response:
    revision, document = config.document()
    return await off_loop(
        lambda: ConfigOut(revision=revision, document=document), headers={"ETag": etag(revision)}
    )


@router.put("", summary="Replace the whole configuration document", response_model=ApplyResultOut)
async def apply_config(
    document: DocumentBody,
    config: ConfigServiceDep,
    change_request: ConfigureChange,
) -> Response:
    return await change_answer(await config.apply(document, change_request))


@router.post(
    "/plan",
    summary="What replacing the document would do, committing nothing",
    response_model=ApplyResultOut,
)
async def plan_config(
    document: DocumentBody,
    config: ConfigServiceDep,
    change_request: ConfigureAction,
) -> Response:
    return await change_answer(await config.apply(document, change_request.with_dry_run()))
