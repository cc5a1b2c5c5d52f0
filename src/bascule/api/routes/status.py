"""/status: what runs, as the control plane and the data plane each see it.

After the flow of a change: the current revision, the last one applied and whether the last
apply worked, then every virtual service and real server with health and counters. Served
from the engines' last reading while it is recent (``ConfigService.recent_status``) unless
``?fresh=true`` asks for a reading now, and the JSON of a report is made once: at 10,000 real
servers both were most of a request (issue 15).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from typing import Annotated

from fastapi import APIRouter, Query, Response

from bascule.api.deps import ConfigServiceDep
from bascule.api.schemas import StatusOut, VirtualServiceStatusOut
from bascule.daemon.results import StatusReport, VirtualServiceStatus

router = APIRouter(prefix="/status", tags=["status"])


class _Answer:
    """The JSON of the reports served, made once: the same report object is the same answer,
    and a service's row that a new report shares with the one before (``ServiceRows``) keeps
    its JSON, so that the answer after a weight change encodes one service, not 1,000."""

    _EMPTY = b'"virtual_services":[]'

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[StatusReport, bytes] | None = None
        self._rows: dict[int, tuple[VirtualServiceStatus, bytes]] = {}

    def of(self, report: StatusReport) -> bytes:
        with self._lock:
            if self._last is not None and self._last[0] is report:
                return self._last[1]
            known = self._rows
        rows = {
            id(row): (row, self._row(row, known.get(id(row))))
            for row in report.virtual_services
        }
        outline = dataclasses.replace(report, virtual_services=())
        # the services' place in the outline's JSON: the last such text (the engine's
        # details come before it; strings after it have their quotes escaped)
        before, empty, after = (
            StatusOut.model_validate(outline).model_dump_json().encode().rpartition(self._EMPTY)
        )
        assert empty, "the outline has its services' place"
        services = b",".join(text for _, text in rows.values())
        body = before + b'"virtual_services":[' + services + b"]" + after
        with self._lock:
            self._last = (report, body)
            self._rows = rows
        return body

    @staticmethod
    def _row(row: VirtualServiceStatus, known: tuple[VirtualServiceStatus, bytes] | None) -> bytes:
        if known is not None and known[0] is row:
            return known[1]
        return VirtualServiceStatusOut.model_validate(row).model_dump_json().encode()


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
