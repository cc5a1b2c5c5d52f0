"""/status: what runs, as the control plane and the data plane each see it.

After the flow of a change: the current revision, the last one applied and whether the last
apply worked, then every virtual service and real server with health and counters.
"""

from __future__ import annotations

from fastapi import APIRouter

from bascule.api.deps import ConfigServiceDep
from bascule.api.schemas import StatusOut

router = APIRouter(prefix="/status", tags=["status"])


@router.get("", summary="Status of the virtual services and real servers")
async def read_status(config: ConfigServiceDep) -> StatusOut:
    return StatusOut.model_validate(await config.status())
