"""High availability: this node of the pair — its role, its peer, VRRP — and the handover.

Outside the flow of a change: what the HA service (daemon/ha.py) reports of this node, shown
to every role; an operator on the active may hand the VIPs to the peer (``ha standby``), the
same action as ``bascule ha standby`` and ``POST /api/v1/ha/standby``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from bascule.daemon.ha import HaStatus, Role
from bascule.errors import BasculeError
from bascule.model.access import Permission
from bascule.web.auth import Operator, Reader
from bascule.web.services import Services
from bascule.web.templating import render

router = APIRouter()

ROLE_STATUS = {
    Role.active: "up",
    Role.standby: "unchecked",
    Role.held: "down",
    Role.unknown: "degraded",
    Role.single: "disabled",
}


def _page(
    request: Request,
    status: HaStatus | None,
    *,
    may_operate: bool,
    message: str = "",
    problem: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "ha/index.html",
        {
            "page": "ha",
            "title": "High availability",
            "ha": status,
            "role_status": ROLE_STATUS.get(status.role, "degraded") if status else "disabled",
            "may_operate": may_operate,
            "message": message,
            "problem": problem,
        },
        status_code=status_code,
    )


@router.get("/ha", response_class=HTMLResponse)
async def ha_page(request: Request, session: Reader, services: Services) -> HTMLResponse:
    status = await services.ha.status() if services.ha else None
    return _page(request, status, may_operate=session.actor.may(Permission.operate))


@router.post("/ha/standby", response_class=HTMLResponse)
async def standby(request: Request, session: Operator, services: Services) -> Response:
    if services.ha is None:
        return _page(request, None, may_operate=True, problem="no HA service", status_code=422)
    try:
        status = await services.ha.standby(session.actor)
    except BasculeError as exc:
        return _page(
            request, await services.ha.status(), may_operate=True, problem=str(exc), status_code=422
        )
    return _page(request, status, may_operate=True, message="The VIPs went to the peer.")
