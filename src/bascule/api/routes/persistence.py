"""/virtual-services/{name}/persistence: the clients a service keeps on a real server.

GET lists the entries of the service's persistence tables (HAProxy stick tables: the
method's own table and the source_ip fallback's); DELETE empties them, so every client is
balanced afresh on its next connection. 404 for an unknown service, 422 ``not_applicable``
for an l4 service. ``active_cookie`` keeps its state in the clients' cookies: its table is
empty (only its source_ip fallback, if any, has entries). Clearing needs ``configure``.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from bascule.api.deps import ConfigServiceDep, Configurer

router = APIRouter(prefix="/virtual-services", tags=["persistence"])


class PersistenceEntryOut(BaseModel):
    table: str
    key: str
    real_server: str | None
    expires_in_s: float


class PersistenceOut(BaseModel):
    service: str
    entries: list[PersistenceEntryOut]


class PersistenceClearedOut(BaseModel):
    service: str
    cleared: int


@router.get("/{name}/persistence", summary="The persisted clients of a virtual service")
async def show_persistence(name: str, config: ConfigServiceDep) -> PersistenceOut:
    entries = await config.persistence(name)
    return PersistenceOut(
        service=name,
        entries=[
            PersistenceEntryOut(
                table=e.table, key=e.key, real_server=e.real_server, expires_in_s=e.expires_in_s
            )
            for e in entries
        ],
    )


@router.delete("/{name}/persistence", summary="Forget every persisted client of a service")
async def clear_persistence(
    name: str, config: ConfigServiceDep, actor: Configurer
) -> PersistenceClearedOut:
    cleared = await config.clear_persistence(name)
    if config.audit is not None:
        config.audit.record(actor, "persistence.clear", name, detail=f"{cleared} entries")
    return PersistenceClearedOut(service=name, cleared=cleared)
