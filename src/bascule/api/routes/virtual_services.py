"""/virtual-services: one virtual service at a time (``bascule vs ...``).

Each write is a pure edit of the current document (model/edits.py) that the service layer
validates as a whole, exactly as if the user had applied the edited file.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from bascule.api import documents
from bascule.api.answers import edit_answer, listed
from bascule.api.bodies import OffLoopRoute
from bascule.api.deps import ChangesBody, ConfigServiceDep, ConfigureChange, VirtualServiceBody
from bascule.api.etags import tag
from bascule.api.pagination import Limit, Offset
from bascule.api.schemas import ApplyResultOut, ItemsOut
from bascule.model import edits

router = APIRouter(prefix="/virtual-services", tags=["virtual services"], route_class=OffLoopRoute)


@router.get("", summary="The virtual services of the current revision (all, or a page)")
async def list_virtual_services(
    config: ConfigServiceDep, response: Response, limit: Limit = None, offset: Offset = 0
) -> ItemsOut:
    revision, document = config.document()
    return listed(response, revision, document["virtual_services"], limit=limit, offset=offset)


@router.post("", status_code=201, summary="Add a virtual service")
async def add_virtual_service(
    service: VirtualServiceBody,
    config: ConfigServiceDep,
    change_request: ConfigureChange,
    response: Response,
) -> ApplyResultOut:
    return await edit_answer(
        config,
        response,
        lambda doc: edits.add_virtual_service(doc, service),
        change_request,
        f"add virtual service {service.get('name')}",
        creates=True,
    )


@router.get("/{name}", summary="One virtual service, as in the document")
async def read_virtual_service(
    name: str, config: ConfigServiceDep, response: Response
) -> dict[str, Any]:
    revision, document = config.document()
    tag(response, revision)
    return documents.virtual_service(document, name)


@router.put("/{name}", summary="Replace a virtual service")
async def replace_virtual_service(
    name: str,
    service: VirtualServiceBody,
    config: ConfigServiceDep,
    change_request: ConfigureChange,
    response: Response,
) -> ApplyResultOut:
    return await edit_answer(
        config,
        response,
        lambda doc: edits.replace_virtual_service(doc, name, service),
        change_request,
        f"replace virtual service {name}",
    )


@router.patch("/{name}", summary="Change some fields of a virtual service (merge)")
async def update_virtual_service(
    name: str,
    changes: ChangesBody,
    config: ConfigServiceDep,
    change_request: ConfigureChange,
    response: Response,
) -> ApplyResultOut:
    return await edit_answer(
        config,
        response,
        lambda doc: edits.update_virtual_service(doc, name, changes),
        change_request,
        f"change virtual service {name}",
    )


@router.delete("/{name}", summary="Remove a virtual service")
async def delete_virtual_service(
    name: str,
    config: ConfigServiceDep,
    change_request: ConfigureChange,
    response: Response,
) -> ApplyResultOut:
    return await edit_answer(
        config,
        response,
        lambda doc: edits.delete_virtual_service(doc, name),
        change_request,
        f"remove virtual service {name}",
    )
