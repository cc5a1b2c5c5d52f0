"""/virtual-services/{name}/dsr: real-server help for Direct Server Return (``bascule dsr``).

``script`` gives the commands a real server of a ``forwarding: dsr`` service needs; ``verify``
checks each real server from the load balancer (ARP for the VIP, a test connection through
it). Both answer 404 for an unknown service and 422 ``not_applicable`` for one that is not
DSR. Verify changes nothing, but it sends packets, so it is a POST and needs ``operate``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from bascule.api.deps import ConfigServiceDep, Operator
from bascule.dsr.report import DsrReport
from bascule.dsr.target import TargetOs

router = APIRouter(prefix="/virtual-services", tags=["dsr"])


class DsrScriptOut(BaseModel):
    script: str


class DsrRealServerOut(BaseModel):
    key: str
    address: str
    mac: str | None
    ok: bool
    arp_ok: bool
    arp_detail: str
    connect_ok: bool
    connect_detail: str


class DsrResponderOut(BaseModel):
    """A host that is no real server of the service but claims its VIP (ARP, or neighbour
    discovery for IPv6)."""

    mac: str
    addresses: list[str]


class DsrVerifyOut(BaseModel):
    service: str
    vip: str
    vip6: str | None = None  # a dual-stack service's IPv6 VIP, checked too
    interface: str
    ok: bool
    real_servers: list[DsrRealServerOut]
    others: list[DsrResponderOut]

    @classmethod
    def of(cls, report: DsrReport) -> DsrVerifyOut:
        return cls(
            service=report.service,
            vip=report.vip,
            vip6=report.vip6,
            interface=report.interface,
            ok=report.ok,
            real_servers=[
                DsrRealServerOut(
                    key=check.key,
                    address=check.address,
                    mac=check.mac,
                    ok=check.ok,
                    arp_ok=check.arp_ok,
                    arp_detail=check.arp_detail,
                    connect_ok=check.connect_ok,
                    connect_detail=check.connect_detail,
                )
                for check in report.real_servers
            ],
            others=[
                DsrResponderOut(mac=other.mac, addresses=list(other.addresses))
                for other in report.others
            ],
        )


OsQuery = Annotated[TargetOs, Query(alias="os", description="The real servers' operating system")]


@router.get("/{name}/dsr/script", summary="The commands a real server of a DSR service needs")
async def dsr_script(
    name: str, config: ConfigServiceDep, target: OsQuery = TargetOs.linux
) -> DsrScriptOut:
    return DsrScriptOut(script=config.dsr_script(name, target))


@router.post("/{name}/dsr/verify", summary="Check each real server of a DSR service")
async def dsr_verify(name: str, config: ConfigServiceDep, actor: Operator) -> DsrVerifyOut:
    return DsrVerifyOut.of(await config.dsr_verify(name))
