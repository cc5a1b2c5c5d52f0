"""/virtual-services/{name}/cache/purge: empty a service's cache at run time
(``bascule cache purge VS``).

POST gives the service's cache a new generation (daemon/caches.py): the next request for
every URL reaches a real server, and old entries age out. 404 for an unknown service, 422
``not_applicable`` for a service without a cache. Needs ``operate``: it changes no
configuration, like a real server's drain. ``/{name}/sub-services/{sub}/cache/purge`` purges
a sub-service's own cache (its pool ``<service>/<sub-service>``).
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from bascule.api.deps import ConfigServiceDep, Operator
from bascule.daemon.caches import purge_cache
from bascule.model.sub_service import pool_name

router = APIRouter(prefix="/virtual-services", tags=["cache"])


class CachePurgedOut(BaseModel):
    service: str
    running: bool = Field(
        description="whether the running HAProxy took it (false: it is not running the "
        "service yet; the purge holds from its next start)"
    )


@router.post("/{name}/cache/purge", summary="Purge a virtual service's cache (operate)")
async def purge(name: str, config: ConfigServiceDep, actor: Operator) -> CachePurgedOut:
    purged = await purge_cache(config, name, actor=actor)
    return CachePurgedOut(service=purged.service, running=purged.running)


@router.post(
    "/{name}/sub-services/{sub}/cache/purge", summary="Purge a sub-service's cache (operate)"
)
async def purge_sub_service(
    name: str, sub: str, config: ConfigServiceDep, actor: Operator
) -> CachePurgedOut:
    purged = await purge_cache(config, pool_name(name, sub), actor=actor)
    return CachePurgedOut(service=purged.service, running=purged.running)
