"""Pages of the lists that grow: ``limit`` and ``offset`` query parameters, and the slicing.

A door-side concern of reading, after the flow of a change: the virtual services of a revision
(200 on a busy appliance), the real servers of one, the statistics summary. Without ``limit``
a list comes whole, as it always has (the CLI relies on that); with it, one page comes with the
``total`` and the ``next_offset`` to ask for next (null: no more). The history of revisions
pages by revision number instead (``before``), since it grows at the front.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Query

MAX_LIMIT = 1000

Limit = Annotated[
    int | None,
    Query(ge=1, le=MAX_LIMIT, description="At most this many items (default: all of them)"),
]
Offset = Annotated[int, Query(ge=0, description="Skip this many items first")]

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    next_offset: int | None


def page(items: Sequence[T], *, limit: int | None, offset: int = 0) -> Page[T]:
    """The items from ``offset``, at most ``limit`` of them; an offset past the end gives an
    empty page."""
    end = len(items) if limit is None else offset + limit
    chosen = list(items[offset:end])
    return Page(
        items=chosen,
        total=len(items),
        next_offset=end if end < len(items) else None,
    )
