"""/logs: the request logs HAProxy writes (daemon/request_logs.py), for ``bascule logs``.

Read-only; the lines are HAProxy's httplog and tcplog formats as they are (client, accept
date, service, backend/server, timings, status, bytes, termination state, request line).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from bascule.api.bodies import OffLoopRoute
from bascule.api.deps import get_services

router = APIRouter(prefix="/logs", tags=["logs"], route_class=OffLoopRoute)

MAX_LINES = 5000


class RequestLineOut(BaseModel):
    time: datetime | None = Field(description="When HAProxy accepted the request")
    virtual_service: str
    line: str = Field(description="The line as HAProxy wrote it")


class RequestLogOut(BaseModel):
    lines: list[RequestLineOut]


@router.get("", summary="The last request log lines, of one virtual service or all")
async def read_logs(
    request: Request,
    virtual_service: Annotated[str | None, Query(max_length=63)] = None,
    since: Annotated[datetime | None, Query(description="Only lines from then on")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LINES)] = 200,
) -> RequestLogOut:
    logs = get_services(request).request_logs
    if logs is None:  # an API without a daemon behind it (tests): no lines
        return RequestLogOut(lines=[])
    if since is not None and since.tzinfo is None:
        since = since.astimezone()
    lines = logs.read(service=virtual_service, since=since, limit=limit)
    return RequestLogOut(
        lines=[
            RequestLineOut(time=line.time, virtual_service=line.service, line=line.text)
            for line in lines
        ]
    )
