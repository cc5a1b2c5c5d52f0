"""/ha: this node of the HA pair (``bascule ha``): its status, and the planned handover.

``GET /ha`` says which node of the document's pair this machine is, its role (``single``,
``active``, ``standby``, ``held``, ``unknown``), VRRP's state and priority and what holds the
node back; ``POST /ha/standby`` (operate) hands the VIPs to the peer at once and stands by,
422 ``not_applicable`` unless this node is the active. See daemon/ha.py.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from bascule.api.deps import Operator, Reader, get_services
from bascule.daemon.ha import HaService, HaStatus, Role
from bascule.errors import NotApplicable

router = APIRouter(prefix="/ha", tags=["high availability"])


def get_ha(request: Request) -> HaService:
    ha = get_services(request).ha
    if ha is None:
        raise NotApplicable("this daemon runs no HA service")
    return ha


HaServiceDep = Annotated[HaService, Depends(get_ha)]


class HaNodeOut(BaseModel):
    name: str
    address: str
    priority: int


class VrrpOut(BaseModel):
    running: bool
    state: str  # MASTER, BACKUP, FAULT, unknown, stopped
    priority: int | None
    standby: bool  # held back by ha standby
    failed: list[str]  # needed processes that do not run


class HaStatusOut(BaseModel):
    role: Role
    node: HaNodeOut | None
    peer: HaNodeOut | None
    vrrp: VrrpOut | None
    revision: int | None
    detail: str

    @classmethod
    def of(cls, status: HaStatus) -> HaStatusOut:
        def node(value: object) -> HaNodeOut | None:
            return None if value is None else HaNodeOut.model_validate(value, from_attributes=True)

        vrrp = status.vrrp
        return cls(
            role=status.role,
            node=node(status.node),
            peer=node(status.peer),
            vrrp=None if vrrp is None else VrrpOut.model_validate(vrrp, from_attributes=True),
            revision=status.revision,
            detail=status.detail,
        )


@router.get("", summary="This node of the HA pair: role, peer, VRRP state")
async def read_ha(actor: Reader, ha: HaServiceDep) -> HaStatusOut:
    return HaStatusOut.of(await ha.status())


@router.post("/standby", summary="Hand the VIPs to the peer now, then stand by")
async def standby(actor: Operator, ha: HaServiceDep) -> HaStatusOut:
    # the caller's permission first: a role that may not is told 403 on any node
    return HaStatusOut.of(await ha.standby(actor))
