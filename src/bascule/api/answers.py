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
from collections.abc import Callable, Mapping

from fastapi import Response
from pydantic import BaseModel

from bascule.api.etags import answer_change, etag
from bascule.api.schemas import ApplyResultOut
from bascule.daemon.results import ApplyResult

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
