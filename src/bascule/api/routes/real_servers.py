"""/virtual-services/{name}/real-servers: the back ends of one service (``bascule rs ...``).

A real server is named by its key ``address:port`` (``198.18.0.4:80``, ``[2001:db8::1]:80``,
URL-encoded by clients). Weight and state changes are runtime-only in the flow of a change:
the reconciler turns them into runtime commands, with no engine reload. Enable, disable,
drain and a PATCH of the weight alone need the ``operate`` permission; the rest ``configure``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from bascule.api import documents
from bascule.api.answers import answered, edit_answer, listed
from bascule.api.bodies import OffLoopRoute
from bascule.api.deps import (
    ChangesBody,
    ConfigServiceDep,
    ConfigureChange,
    FieldChange,
    OperateAction,
    RealServerBody,
)
from bascule.api.etags import tag
from bascule.api.pagination import Limit, Offset
from bascule.api.schemas import ApplyResultOut, ItemsOut
from bascule.model import RealServerState, edits
from bascule.model.access import permission_for_real_server_patch

router = APIRouter(
    prefix="/virtual-services/{name}/real-servers", tags=["real servers"], route_class=OffLoopRoute
)


@router.get("", summary="The real servers of a virtual service (all, or a page)")
async def list_real_servers(
    name: str,
    config: ConfigServiceDep,
    response: Response,
    limit: Limit = None,
    offset: Offset = 0,
) -> ItemsOut:
    revision, document = config.document()
    return listed(
        response, revision, documents.real_servers(document, name), limit=limit, offset=offset
    )


@router.post("", status_code=201, summary="Add a real server to a virtual service")
async def add_real_server(
    name: str,
    server: RealServerBody,
    config: ConfigServiceDep,
    change_request: ConfigureChange,
    response: Response,
) -> ApplyResultOut:
    key = edits.server_key(server.get("address"), server.get("port"))
    return await edit_answer(
        config,
        response,
        lambda doc: edits.add_real_server(doc, name, server),
        change_request,
        f"add real server {key} to {name}",
        creates=True,
    )


@router.get("/{key}", summary="One real server, as in the document")
async def read_real_server(
    name: str, key: str, config: ConfigServiceDep, response: Response
) -> dict[str, Any]:
    revision, document = config.document()
    tag(response, revision)
    return documents.real_server(document, name, key)


@router.patch("/{key}", summary="Change some fields of a real server (merge)")
async def update_real_server(
    name: str,
    key: str,
    changes: ChangesBody,
    config: ConfigServiceDep,
    change_for: FieldChange,
    response: Response,
) -> ApplyResultOut:
    # A weight alone is an operator's change; any other field is structural.
    change_request = change_for(permission_for_real_server_patch(changes))
    return await edit_answer(
        config,
        response,
        lambda doc: edits.update_real_server(doc, name, key, changes),
        change_request,
        f"change real server {key} of {name}",
    )


@router.delete("/{key}", summary="Remove a real server")
async def delete_real_server(
    name: str,
    key: str,
    config: ConfigServiceDep,
    change_request: ConfigureChange,
    response: Response,
) -> ApplyResultOut:
    return await edit_answer(
        config,
        response,
        lambda doc: edits.delete_real_server(doc, name, key),
        change_request,
        f"remove real server {key} from {name}",
    )


def _state_route(state: RealServerState, verb: str, summary: str) -> None:
    """``POST /{key}/<verb>``: set a real server's state, an operator's runtime change."""

    async def change_state(
        name: str,
        key: str,
        config: ConfigServiceDep,
        change_request: OperateAction,
        response: Response,
    ) -> ApplyResultOut:
        result = await config.set_real_server_state(name, key, state, change_request)
        return answered(response, result)

    router.post(f"/{{key}}/{verb}", summary=summary, name=f"{verb}_real_server")(change_state)


_state_route(RealServerState.enabled, "enable", "Send new connections to a real server again")
_state_route(RealServerState.disabled, "disable", "Take a real server out of service")
_state_route(RealServerState.drain, "drain", "Let connections finish; send new ones elsewhere")
