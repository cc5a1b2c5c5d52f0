"""/virtual-services/{name}/sub-services/{sub} and /rules/{rule}: one sub-service or content
rule at a time (``bascule vs set site/api ...``, ``bascule vs set-rule site login ...``).

GET reads it as in the document; PATCH merges changes into it (its ``limits``, a
sub-service's ``cache``, any other field), a pure edit of the document (model/edits.py) that
the service layer validates as a whole, so a bad value is refused with its full path
(``virtual_services[0].rules[1].limits.per_client.requests_per_second``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from bascule.api import documents
from bascule.api.answers import edit_answer
from bascule.api.bodies import OffLoopRoute
from bascule.api.deps import ChangesBody, ConfigServiceDep, ConfigureChange
from bascule.api.etags import tag
from bascule.api.schemas import ApplyResultOut
from bascule.model import edits

router = APIRouter(prefix="/virtual-services", tags=["virtual services"], route_class=OffLoopRoute)


@router.get("/{name}/sub-services/{sub}", summary="One sub-service, as in the document")
async def read_sub_service(
    name: str, sub: str, config: ConfigServiceDep, response: Response
) -> dict[str, Any]:
    revision, document = config.document()
    tag(response, revision)
    return documents.named_part(document, name, "sub_services", sub)


@router.patch("/{name}/sub-services/{sub}", summary="Change some fields of a sub-service (merge)")
async def update_sub_service(
    name: str,
    sub: str,
    changes: ChangesBody,
    config: ConfigServiceDep,
    change_request: ConfigureChange,
    response: Response,
) -> ApplyResultOut:
    return await edit_answer(
        config,
        response,
        lambda doc: edits.update_sub_service(doc, name, sub, changes),
        change_request,
        f"change sub-service {sub} of {name}",
    )


@router.get("/{name}/rules/{rule}", summary="One content rule, as in the document")
async def read_rule(
    name: str, rule: str, config: ConfigServiceDep, response: Response
) -> dict[str, Any]:
    revision, document = config.document()
    tag(response, revision)
    return documents.named_part(document, name, "rules", rule)


@router.patch("/{name}/rules/{rule}", summary="Change some fields of a content rule (merge)")
async def update_rule(
    name: str,
    rule: str,
    changes: ChangesBody,
    config: ConfigServiceDep,
    change_request: ConfigureChange,
    response: Response,
) -> ApplyResultOut:
    return await edit_answer(
        config,
        response,
        lambda doc: edits.update_rule(doc, name, rule, changes),
        change_request,
        f"change rule {rule} of {name}",
    )
