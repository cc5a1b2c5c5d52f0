"""/virtual-services/{name}/real-servers: the back ends of one service (``bascule rs ...``).

A real server is named by its key ``address:port`` (``198.18.0.4:80``, ``[2001:db8::1]:80``,
URL-encoded by clients). Weight and state changes are runtime-only in the flow of a change:
the reconciler turns them into runtime commands, with no engine reload. Enable, disable,
drain and a PATCH of the weight alone need the ``operate`` permission; the rest ``configure``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

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
from bascule.errors import FieldError, InvalidConfiguration
from bascule.model import RealServerState, edits
from bascule.model.access import permission_for_real_server_patch
from bascule.model.sub_service import pool_name
from bascule.reconcile.operations import RUNTIME_FIELDS, ServerOperation


class RealServerVerb(enum.StrEnum):
    """The state operations on a real server (``.../{key}/drain``), and the state each sets."""

    enable = "enable"
    disable = "disable"
    drain = "drain"

    @property
    def state(self) -> RealServerState:
        return _VERB_STATES[self]


_VERB_STATES = {
    RealServerVerb.enable: RealServerState.enabled,
    RealServerVerb.disable: RealServerState.disabled,
    RealServerVerb.drain: RealServerState.drain,
}


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


# A sub-service's real servers (``bascule rs drain site/api KEY``): the same operations on the
# pool "<service>/<sub-service>" (model/sub_service.py), which a path parameter cannot hold.
sub_service_router = APIRouter(
    prefix="/virtual-services/{name}/sub-services/{sub}/real-servers",
    tags=["real servers"],
    route_class=OffLoopRoute,
)


def _service(name: str) -> str:
    return name


def _sub_service(name: str, sub: str) -> str:
    return pool_name(name, sub)


def _pool_routes(pools: APIRouter, pool_of: Callable[..., str], *, kind: str, whose: str) -> None:
    """``PATCH /{key}`` and ``POST /{key}/{verb}`` on the real servers of a pool, the pool
    named by the path (``pool_of``): a service's own (``kind`` "service"), or a
    sub-service's."""
    # a default, not an Annotated alias: annotations are strings here (PEP 563), and FastAPI
    # could not resolve a name local to this function
    pool_dependency = Depends(pool_of)

    async def update_real_server(
        key: str,
        changes: ChangesBody,
        config: ConfigServiceDep,
        change_for: FieldChange,
        response: Response,
        pool: str = pool_dependency,
    ) -> ApplyResultOut:
        # A weight alone is an operator's change; any other field is structural.
        change_request = change_for(permission_for_real_server_patch(changes))
        if changes and set(changes) <= RUNTIME_FIELDS:  # the operate path, if it can
            operation = ServerOperation(pool=pool, key=key, changes=changes)
            result = await config.operate(
                [operation],
                change_request.with_default_message(f"change real server {key} of {pool}"),
            )
            return answered(response, result)
        return await edit_answer(
            config,
            response,
            lambda doc: edits.update_real_server(doc, pool, key, changes),
            change_request,
            f"change real server {key} of {pool}",
        )

    async def set_real_server_state(
        key: str,
        verb: RealServerVerb,
        config: ConfigServiceDep,
        change_request: OperateAction,
        response: Response,
        pool: str = pool_dependency,
    ) -> ApplyResultOut:
        result = await config.set_real_server_state(pool, key, verb.state, change_request)
        return answered(response, result)

    pools.patch(
        "/{key}",
        summary=f"Change some fields of {whose} real server (merge)",
        name=f"update_{kind}_real_server",
    )(update_real_server)
    pools.post(
        "/{key}/{verb}",
        summary=f"Enable, disable or drain {whose} real server: enable sends it new connections "
        "again, disable takes it out of service, drain lets connections finish and sends new "
        "ones elsewhere",
        name=f"set_{kind}_real_server_state",
    )(set_real_server_state)


_pool_routes(router, _service, kind="service", whose="a")
_pool_routes(sub_service_router, _sub_service, kind="sub_service", whose="a sub-service's")


class ServerIn(BaseModel):
    """One real server of a bulk operation."""

    model_config = ConfigDict(extra="forbid")

    virtual_service: str = Field(description="A service, or `<service>/<sub-service>`")
    server: str = Field(description="`address:port`, e.g. 192.0.2.4:80 or [2001:db8::1]:80")


class SelectionIn(BaseModel):
    """The real servers of a bulk operation: every one at ``address`` (in every service and
    sub-service), and each of ``servers``; at least one of the two."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = None
    servers: list[ServerIn] = Field(default_factory=list, max_length=100_000)


# Bulk operations (``bascule rs drain --address 198.18.0.21``): one revision for them all.
bulk_router = APIRouter(prefix="/real-servers", tags=["real servers"], route_class=OffLoopRoute)


@bulk_router.post(
    "/{verb}",
    summary="Enable, disable or drain many real servers in one revision: every one at an "
    "address, across services, and a list",
)
async def set_real_servers_state(
    verb: RealServerVerb,
    selection: SelectionIn,
    config: ConfigServiceDep,
    change_request: OperateAction,
    response: Response,
) -> ApplyResultOut:
    if selection.address is None and not selection.servers:
        raise InvalidConfiguration(
            [FieldError(path="address", message="give an address, servers, or both")]
        )
    result = await config.set_real_servers_state(
        verb.state,
        change_request,
        address=selection.address,
        servers=[(item.virtual_service, item.server) for item in selection.servers],
    )
    return answered(response, result)
