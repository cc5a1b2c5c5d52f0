"""/config: the whole configuration document, read, replaced (``bascule apply -f``) or planned.

The first door of the flow of a change: the document is passed untouched to the service
layer, which validates it, has the engine check it, commits and applies it.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from bascule.api.deps import ConfigServiceDep, ConfigureAction, ConfigureChange, DocumentBody
from bascule.api.etags import answer_change, tag
from bascule.api.schemas import ApplyResultOut, ConfigOut

router = APIRouter(prefix="/config", tags=["config"])


@router.get("", summary="The current configuration document")
async def read_config(config: ConfigServiceDep, response: Response) -> ConfigOut:
    revision, document = config.document()
    tag(response, revision)
    return ConfigOut(revision=revision, document=document)


@router.put("", summary="Replace the whole configuration document")
async def apply_config(
    document: DocumentBody,
    config: ConfigServiceDep,
    change_request: ConfigureChange,
    response: Response,
) -> ApplyResultOut:
    result = await config.apply(document, change_request)
    answer_change(response, result)
    return ApplyResultOut.of(result)


@router.post("/plan", summary="What replacing the document would do, committing nothing")
async def plan_config(
    document: DocumentBody,
    config: ConfigServiceDep,
    change_request: ConfigureAction,
    response: Response,
) -> ApplyResultOut:
    result = await config.apply(document, change_request.with_dry_run())
    answer_change(response, result)
    return ApplyResultOut.of(result)
