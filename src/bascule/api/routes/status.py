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
import functools
import threading
import weakref
from typing import Annotated

from fastapi import APIRouter, Query, Response

from bascule.api.deps import ConfigServiceDep
from bascule.api.schemas import StatusOut, VirtualServiceStatusOut
from bascule.daemon.results import StatusReport, VirtualServiceStatus

router = APIRouter(prefix="/status", tags=["status"])


class _Answer:
    """The JSON of the reports served, made once: the same report object is the same answer,
    and a service's row that a new report shares with the one before (``ServiceRows``) keeps
    its JSON, so that the answer after a weight change encodes one service, not 1,000.

    A row's JSON is kept as its place in the last answer, not as a text of its own: the
    answer is the rows' texts joined, and a copy of each beside it doubled what this cache
    keeps (~4 MiB at 10,000 real servers, docs/performance.md).

    The report and its rows are held weakly, the answer only while one of its rows lives:
    each new reading of the engines makes every row anew (``ServiceRows``), so once the
    status has moved on, the last answer's 11,000 rows and its text (~7 MiB at 10,000 real
    servers) are not kept for nothing until the next request."""

    _EMPTY = b'"virtual_services":[]'

    def __init__(self) -> None:
        self._lock = threading.RLock()  # (a row's death may call ``_gone`` in any thread)
        self._last: tuple[weakref.ref[StatusReport], bytes] | None = None
        # id of a row of the last report -> the row and where its JSON is in the last answer
        self._rows: dict[int, tuple[weakref.ref[VirtualServiceStatus], int, int]] = {}
        self._alive = 0  # rows of the last answer still alive
        self._answers = 0  # answers made: the last one's number

    def of(self, report: StatusReport) -> bytes:
        with self._lock:
            if self._last is not None and self._last[0]() is report:
                return self._last[1]
            known = self._rows
            last = memoryview(self._last[1]) if self._last is not None else memoryview(b"")
        outline = dataclasses.replace(report, virtual_services=())
        # the services' place in the outline's JSON: the last such text (the engine's
        # details come before it; strings after it have their quotes escaped)
        before, empty, after = (
            StatusOut.model_validate(outline).model_dump_json().encode().rpartition(self._EMPTY)
        )
        assert empty, "the outline has its services' place"
        parts: list[bytes | memoryview] = [before, b'"virtual_services":[']
        rows: dict[int, tuple[weakref.ref[VirtualServiceStatus], int, int]] = {}
        with self._lock:
            self._answers += 1
            gone = functools.partial(self._gone, self._answers)
        offset = len(before) + len(parts[1])
        for index, row in enumerate(report.virtual_services):
            if index:
                parts.append(b",")
                offset += 1
            seen = known.get(id(row))
            text: bytes | memoryview = (
                last[seen[1] : seen[2]]
                if seen is not None and seen[0]() is row
                else VirtualServiceStatusOut.model_validate(row).model_dump_json().encode()
            )
            parts.append(text)
            rows[id(row)] = (weakref.ref(row, gone), offset, offset + len(text))
            offset += len(text)
        parts += [b"]", after]
        body = b"".join(parts)
        del last, known
        with self._lock:
            self._last = (weakref.ref(report), body)
            self._rows = rows
            self._alive = len(rows)
        return body

    def _gone(self, answer: int, _: weakref.ref[VirtualServiceStatus]) -> None:
        """A row of answer number ``answer`` died: once the last answer has none left,
        forget it."""
        with self._lock:
            if answer != self._answers:
                return  # a row of an older answer
            self._alive -= 1
            if self._alive == 0:
                self._last = None
                self._rows = {}


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
            "is recent (at most 10 s old, less for a small configuration; past that, a large "
            "configuration is answered from it, never older than 20 s, while the engines are "
            "read again). `bascule status` "
            "asks for this: a command shows the counters of the moment it ran."
        ),
    ] = False,
) -> Response:
    report = await (config.status() if fresh else config.recent_status())
    body = await asyncio.to_thread(_answer.of, report)  # 11,000 rows: off the event loop
    return Response(body, media_type="application/json")
