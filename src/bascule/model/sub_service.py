"""Sub-services (LoadMaster's SubVS): pools of their own inside an http virtual service.

A content rule (``rules``, model/rules.py) sends the requests it matches to a sub-service by
name. A sub-service has everything a pool has: scheduler, persistence, health check and real
servers; a scheduler, persistence or check it leaves out is its service's. Engines and the
status see a sub-service as a pool named ``<service>/<sub-service>``
(``VirtualService.pools``), the name ``bascule rs drain site/api 198.18.0.21:80`` uses.
Its ``limits`` and ``cache`` are its own: the pool's requests per client, and a cache that
only its responses fill.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bascule.model.caching import Cache
from bascule.model.capabilities import Scheduler
from bascule.model.check import HealthCheck
from bascule.model.limits import Limits
from bascule.model.persistence import Persistence
from bascule.model.real_server import RealServer
from bascule.model.types import Name

#: Between a service's name and its sub-service's in a pool name: ``site/api``.
POOL_SEPARATOR = "/"


class SubService(BaseModel):
    """A pool of its own that rules send requests to; None fields are the service's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    scheduler: Scheduler | None = None
    persistence: Persistence | None = None
    check: HealthCheck | None = None
    real_servers: list[RealServer] = Field(default_factory=list)
    # the requests that reach this pool, per client (model/limits.py), and its own cache of
    # their responses (model/caching.py); None: none (never the service's)
    limits: Limits | None = None
    cache: Cache | None = None

    def real_server(self, key: str) -> RealServer | None:
        return next((rs for rs in self.real_servers if rs.key == key), None)


def pool_name(service: str, sub_service: str) -> str:
    return f"{service}{POOL_SEPARATOR}{sub_service}"
