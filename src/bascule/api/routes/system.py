"""/system: the appliance itself: Bascule's version, the engines the daemon drives, and
stopping the daemon.

Outside the flow of a change; what the daemon reports of its engines (versions, state).
``POST /system/stop`` (``bascule stop``, administrators only) stops the daemon after it has
answered: by itself the data plane runs on (HAProxy, the nftables tables and the VIPs stay,
for the next start to adopt); with ``data_plane=true`` the daemon drains and stops them too.
It is recorded in the audit log as ``daemon.stop``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query
from pydantic import BaseModel

import bascule
from bascule.api.deps import Administrator, AuditServiceDep, ServicesDep, SystemProbeDep
from bascule.errors import NotApplicable

router = APIRouter(prefix="/system", tags=["system"])


@router.get("", summary="Bascule's version and the engines' versions and state")
async def read_system(system: SystemProbeDep) -> dict[str, Any]:
    return {**await system(), "version": bascule.__version__}


class StoppingOut(BaseModel):
    stopping: bool
    data_plane: bool


@router.post(
    "/stop",
    status_code=202,
    summary="Stop the daemon (and, with data_plane, HAProxy, the nftables tables and the VIPs)",
)
async def stop_daemon(
    actor: Administrator,
    services: ServicesDep,
    audit: AuditServiceDep,
    background: BackgroundTasks,
    data_plane: Annotated[
        bool,
        Query(
            description="Also stop the data plane: drain connections, stop HAProxy, delete "
            "the nftables tables and remove the VIPs. Without it, traffic keeps flowing on "
            "the last applied state and the next start adopts it."
        ),
    ] = False,
) -> StoppingOut:
    stop = services.stop
    if stop is None:
        raise NotApplicable("this API is not served by a daemon it can stop")
    audit.record(actor, "daemon.stop", detail="with the data plane" if data_plane else "daemon")
    # After the answer is sent: the daemon then stops serving.
    background.add_task(stop, data_plane=data_plane)
    return StoppingOut(stopping=True, data_plane=data_plane)
