"""/status: what runs, as the control plane and the data plane each see it.

After the flow of a change: the current revision, the last one applied and whether the last
apply worked, then every virtual service and real server with health and counters. Served
from the engines' last reading while it is recent (``ConfigService.recent_status``) unless
``?fresh=true`` asks for a reading now, and the JSON of a report is made once: at 10,000 real
servers both were most of a request (issue 15).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Annotated

from fastapi import APIRouter, Query, Response

from bascule.api.deps import ConfigServiceDep
from bascule.api.schemas import StatusOut
from bascule.daemon.results import StatusReport

router = APIRouter(prefix="/status", tags=["status"])


class _Answer:
    """The JSON of the last report served (a report is never changed: the same object is the
    same answer)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[StatusReport, bytes] | None = None

    def of(self, report: StatusReport) -> bytes:
        with self._lock:
            if self._last is not None and self._last[0] is report:
                return self._last[1]
        body = StatusOut.model_validate(report).model_dump_json().encode()
        with self._lock:
            self._last = (report, body)
        return body


_answer = _Answer()


@router.get(
    "",
    summary="Status of the virtual services and real servers",
    response_model=StatusOut,
)
async def read_status(
    config: ConfigServiceDep,
    fresh: Annotated[
        bool,
        Query(
            description="Read the engines now instead of serving their last reading while it "
            "is recent (at most 10 s old, less for a small configuration). `bascule status` "
            "asks for this: a command shows the counters of the moment it ran."
        ),
    ] = False,
) -> Response:
    report = await (config.status() if fresh else config.recent_status())
    body = await asyncio.to_thread(_answer.of, report)  # 11,000 rows: off the event loop
    return Response(body, media_type="application/json")
