"""High availability: this node of the pair — its role, its peer, VRRP, the sync — and the
handover.

Outside the flow of a change: what the HA service (daemon/ha.py) reports of this node, shown
to every role, with the configuration sync (the peer, last sync, the revision on each node,
its health) and the state sync (stick tables, L4 flows). An operator on the active may hand
the VIPs to the peer (``ha standby``), on a joined standby take them (``ha takeover``); an
administrator may join this node to the active (``ha join``: its URL, an administrator's token
there, its certificate's fingerprint), end the link (``ha leave``) and, while the two
histories diverge, see the revisions of each side and keep one (``ha resolve``): the same
actions as the CLI's and the API's. Changes made on this page's other doors are refused on a
joined standby (daemon/pair.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from bascule.daemon.ha import HaService, HaStatus, Role
from bascule.daemon.pair import PairService
from bascule.errors import BasculeError, InvalidConfiguration, NotApplicable
from bascule.model.access import Actor, Permission
from bascule.web.auth import Administrator, Operator, Reader
from bascule.web.pages.users import FormText, split_errors
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
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    general: list[str] | None = None,
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
            "values": values or {"url": "", "fingerprint": ""},
            "errors": errors or {},
            "general": general or [],
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


@router.post("/ha/join", response_class=HTMLResponse)
async def join(
    request: Request,
    session: Administrator,
    services: Services,
    url: FormText = "",
    token: FormText = "",
    fingerprint: FormText = "",
) -> Response:
    """Join this node to the active at ``url`` (the token is never shown back)."""
    values = {"url": url, "fingerprint": fingerprint}
    ha, pair = services.ha, services.ha.pair if services.ha else None
    try:
        if ha is None or pair is None:
            raise NotApplicable("this daemon runs no configuration sync")
        await pair.join(
            url,
            token=token,
            fingerprint_text=fingerprint.strip() or None,
            ca_pem=None,
            actor=session.actor,
        )
    except InvalidConfiguration as exc:
        errors, general = split_errors(exc, ("url", "token", "fingerprint"))
        return await _refused(request, ha, values=values, errors=errors, general=general)
    except BasculeError as exc:
        return await _refused(request, ha, values=values, problem=str(exc))
    done = f"This node joined {pair.status().peer_url}: it follows the active from now on."
    return _page(request, await ha.status(), may_operate=True, may_administer=True, message=done)


@router.post("/ha/resolve", response_class=HTMLResponse)
async def resolve(
    request: Request, session: Administrator, services: Services, keep: FormText = ""
) -> Response:
    """Keep one node's history on both (the other's revisions archived on that node)."""
    ha = services.ha
    pair: PairService | None = ha.pair if ha else None
    try:
        if ha is None or pair is None:
            raise NotApplicable("this daemon runs no configuration sync")
        sync = await pair.resolve(keep, session.actor)
    except BasculeError as exc:
        return await _refused(request, ha, problem=str(exc))
    resolution = sync.resolution
    done = f"Both nodes now hold {keep}'s history."
    if resolution is not None and resolution.archive:
        done += (
            f" The revisions {', '.join(map(str, resolution.archived))} of "
            f"{resolution.archived_node} are archived there, in {resolution.archive}."
        )
    return _page(request, await ha.status(), may_operate=True, may_administer=True, message=done)


async def _refused(
    request: Request,
    ha: HaService | None,
    *,
    problem: str = "",
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    general: list[str] | None = None,
) -> HTMLResponse:
    """The page again (an administrator's action was refused), saying why."""
    return _page(
        request,
        await ha.status() if ha else None,
        may_operate=True,
        may_administer=True,
        problem=problem,
        values=values,
        errors=errors,
        general=general,
        status_code=422,
    )


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
