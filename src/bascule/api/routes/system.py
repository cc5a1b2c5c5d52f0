"""/system: the appliance itself: Bascule's version and the engines the daemon drives.

Outside the flow of a change; what the daemon reports of its engines (versions, state).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

import bascule
from bascule.api.deps import SystemProbeDep

router = APIRouter(prefix="/system", tags=["system"])


@router.get("", summary="Bascule's version and the engines' versions and state")
async def read_system(system: SystemProbeDep) -> dict[str, Any]:
    return {**await system(), "version": bascule.__version__}
