"""Answers as large as a document, written off the event loop.

The last step of the flow of a change as the API answers it, and of the reads of whole
documents (``GET /config``, ``/revisions/N``, ``/backup``): a 10,000-service document is
megabytes of JSON (or YAML) whose writing took the event loop for a few hundred milliseconds,
or seconds for YAML, during which nobody else was answered; and anyone who may read may ask
for it. The routes that answer a whole document build and write it here, in a worker thread,
and return the bytes. The route still declares its model (``response_model``) for OpenAPI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import Response
from pydantic import BaseModel

from bascule.api.etags import answer_change, etag, tag
from bascule.api.pagination import page
from bascule.api.schemas import ApplyResultOut, ItemsOut
from bascule.daemon.changes import Change, ChangeRequest
from bascule.daemon.results import ApplyResult
from bascule.daemon.service import ConfigService

JSON_TYPE = "application/json"


async def off_loop(
    build: Callable[[], BaseModel],
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """``build()``'s model as a JSON response, built and written in a worker thread."""
    body = await asyncio.to_thread(lambda: build().model_dump_json().encode())
    return Response(body, status_code=status_code, headers=headers, media_type=JSON_TYPE)


async def change_answer(result: ApplyResult, *, creates: bool = False) -> Response:
    """The outcome of a write (see ``etags.answer_change``), written off the loop."""
    labels = Response()
    answer_change(labels, result, creates=creates)
    return await off_loop(
        lambda: ApplyResultOut.of(result),
        status_code=labels.status_code,
        headers={"ETag": etag(result.revision)},
    )


async def text_off_loop(
    build: Callable[[], str], *, media_type: str, headers: Mapping[str, str] | None = None
) -> Response:
    """``build()``'s text (a YAML backup, say) as a response, written in a worker thread."""
    body = await asyncio.to_thread(lambda: build().encode())
    return Response(body, headers=headers, media_type=media_type)


def answered(response: Response, result: ApplyResult, *, creates: bool = False) -> ApplyResultOut:
    """The outcome of a write as the answer of a small route: status and ETag on ``response``
    (``etags.answer_change``), the result as the body."""
    answer_change(response, result, creates=creates)
    return ApplyResultOut.of(result)


async def edit_answer(
    config: ConfigService,
    response: Response,
    change: Change,
    change_request: ChangeRequest,
    message: str,
    *,
    creates: bool = False,
) -> ApplyResultOut:
    """A pure edit of the document (model/edits.py) through the flow of a change, with
    ``message`` unless the request brought its own, answered."""
    result = await config.edit(change, change_request.with_default_message(message))
    return answered(response, result, creates=creates)


def listed(
    response: Response,
    revision: int | None,
    items: Sequence[Any],
    *,
    limit: int | None,
    offset: int,
) -> ItemsOut:
    """A list of the document (all of it, or a page), tagged with its revision."""
    tag(response, revision)
    chosen = page(items, limit=limit, offset=offset)
    return ItemsOut(
        revision=revision, items=chosen.items, total=chosen.total, next_offset=chosen.next_offset
    )
