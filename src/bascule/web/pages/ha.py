"""High availability: this node of the pair — its role, its peer, VRRP, the sync — and the
handover.

Outside the flow of a change: what the HA service (daemon/ha.py) reports of this node, shown
to every role, with the configuration sync (the peer, last sync, the revision on each node,
its health) and the state sync (stick tables, L4 flows). An operator on the active may hand
the VIPs to the peer (``ha standby``), on a joined standby take them (``ha takeover``); an
administrator may end the link (``ha leave``): the same actions as the CLI's and the API's.
Changes made on this page's other doors are refused on a joined standby (daemon/pair.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from bascule.daemon.ha import HaStatus, Role
from bascule.errors import BasculeError, NotApplicable
from bascule.model.access import Actor, Permission
from bascule.web.auth import Administrator, Operator, Reader
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
    may_administer: bool = False,
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
            "may_administer": may_administer,
            "message": message,
            "problem": problem,
        },
        status_code=status_code,
    )


@router.get("/ha", response_class=HTMLResponse)
async def ha_page(request: Request, session: Reader, services: Services) -> HTMLResponse:
    status = await services.ha.status() if services.ha else None
    return _page(
        request,
        status,
        may_operate=session.actor.may(Permission.operate),
        may_administer=session.actor.may(Permission.administer),
    )


@router.post("/ha/standby", response_class=HTMLResponse)
async def standby(request: Request, session: Operator, services: Services) -> Response:
    return await _act(request, session.actor, services, "standby", "The VIPs went to the peer.")


@router.post("/ha/takeover", response_class=HTMLResponse)
async def takeover(request: Request, session: Operator, services: Services) -> Response:
    return await _act(request, session.actor, services, "takeover", "This node took the VIPs.")


@router.post("/ha/leave", response_class=HTMLResponse)
async def leave(request: Request, session: Administrator, services: Services) -> Response:
    return await _act(request, session.actor, services, "leave", "This node left its peer.")


async def _act(
    request: Request, actor: Actor, services: Services, action: str, done: str
) -> HTMLResponse:
    administer = actor.may(Permission.administer)
    ha = services.ha
    if ha is None:
        return _page(
            request,
            None,
            may_operate=True,
            may_administer=administer,
            problem="no HA service",
            status_code=422,
        )
    try:
        if action == "standby":
            status = await ha.standby(actor)
        elif action == "takeover":
            status = await ha.takeover(actor)
        else:
            if ha.pair is None:
                raise NotApplicable("this daemon runs no configuration sync")
            await ha.pair.leave(actor)
            status = await ha.status()
    except BasculeError as exc:
        return _page(
            request,
            await ha.status(),
            may_operate=True,
            may_administer=administer,
            problem=str(exc),
            status_code=422,
        )
    return _page(request, status, may_operate=True, may_administer=administer, message=done)
