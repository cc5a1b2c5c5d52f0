"""/virtual-services/{name}/limits: who a service's per-client limits hold now.

GET lists the busiest clients of a service with per-client limits (its stick table of
counters: connections at once, new connections and HTTP requests over the last second) and
whether a limit holds each. 404 for an unknown service, 422 ``not_applicable`` for a service
without per-client limits. A sub-service's (``/{name}/sub-services/{sub}/limits``) counts the
requests that reach its pool, named ``<service>/<sub-service>`` in the answer; a content rule's
(``/{name}/rules/{rule}/limits``) the requests it matched.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from bascule.api.deps import ConfigServiceDep
from bascule.daemon.service import ConfigService
from bascule.model.sub_service import pool_name

router = APIRouter(prefix="/virtual-services", tags=["limits"])


class ClientLoadOut(BaseModel):
    client: str
    connections: int
    connections_per_second: int
    requests_per_second: int
    limited: bool


class ClientLoadsOut(BaseModel):
    service: str
    rule: str | None = None
    clients: list[ClientLoadOut]


@router.get("/{name}/limits", summary="The busiest clients of a service, and who is limited")
async def show_limits(
    name: str, config: ConfigServiceDep, top: Annotated[int, Query(ge=1, le=1000)] = 20
) -> ClientLoadsOut:
    return await _loads(config, name, top)


@router.get(
    "/{name}/sub-services/{sub}/limits",
    summary="The busiest clients of a sub-service, and who is limited",
)
async def show_sub_service_limits(
    name: str, sub: str, config: ConfigServiceDep, top: Annotated[int, Query(ge=1, le=1000)] = 20
) -> ClientLoadsOut:
    return await _loads(config, pool_name(name, sub), top)


@router.get(
    "/{name}/rules/{rule}/limits",
    summary="The busiest clients of a content rule's limits, and who is limited",
)
async def show_rule_limits(
    name: str, rule: str, config: ConfigServiceDep, top: Annotated[int, Query(ge=1, le=1000)] = 20
) -> ClientLoadsOut:
    return await _loads(config, name, top, rule=rule)


async def _loads(
    config: ConfigService, name: str, top: int, *, rule: str | None = None
) -> ClientLoadsOut:
    loads = await config.client_loads(name, top=top, rule=rule)
    return ClientLoadsOut(
        service=name,
        rule=rule,
        clients=[
            ClientLoadOut(
                client=load.client,
                connections=load.connections,
                connections_per_second=load.connections_per_second,
                requests_per_second=load.requests_per_second,
                limited=load.limited,
            )
            for load in loads
        ],
    )
