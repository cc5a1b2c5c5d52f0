"""/audit: who did what, when, from where (``administer``), newest first, a page at a time.

After the flow of a change: every configuration change (committed or refused, with its
revision and diff), login, user and token change is recorded by the daemon (daemon/audit.py);
this route only reads. Filter by ``actor`` or ``action`` (``config.apply``, ``config.edit``,
``real_server.state``, ``config.rollback``, ``login``, ``logout``, ``user.create``,
``user.password``, ``user.role``, ``user.delete``, ``token.create``, ``token.revoke``,
``persistence.clear``, ``config.restore``, and ``access.denied``: a request refused for its
role or its CSRF token).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from bascule.api.deps import Administrator, AuditServiceDep
from bascule.daemon.audit import AuditEntry, AuditOutcome

router = APIRouter(prefix="/audit", tags=["audit"])

MAX_LIMIT = 1000


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str
    role: str
    remote: str
    action: str
    target: str
    revision: int | None
    diff: list[dict[str, Any]]
    outcome: AuditOutcome
    detail: str

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryOut:
        return cls.model_validate(entry, from_attributes=True)


class AuditPageOut(BaseModel):
    items: list[AuditEntryOut]
    total: int
    next_offset: int | None


@router.get("", summary="The audit log, newest first (administer)")
async def read_audit(
    actor: Administrator,
    audit: AuditServiceDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many")] = 50,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1, description="Skip this many first")] = 0,
    by: Annotated[
        str | None, Query(alias="actor", max_length=128, description="Only this actor's")
    ] = None,
    action: Annotated[str | None, Query(max_length=64, description="Only this action")] = None,
) -> AuditPageOut:
    entries, total = audit.page(offset, limit, actor=by, action=action)
    end = offset + len(entries)
    return AuditPageOut(
        items=[AuditEntryOut.of(entry) for entry in entries],
        total=total,
        next_offset=end if end < total else None,
    )
