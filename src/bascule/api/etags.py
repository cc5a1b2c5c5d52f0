"""Revision numbers on the wire: ``If-Match`` in (the base of a write), ``ETag`` out.

Writes are optimistic (see store/revisions.py): a client reads a revision, edits it and names
it as the base of its write, so a concurrent change makes the write fail with 409 instead of
being silently overwritten. An ETag is the revision number in quotes; an empty store is
``"0"``, so a client can always send back the ETag it was given.
"""

from __future__ import annotations

from fastapi import Response
from fastapi.exceptions import RequestValidationError

from bascule.daemon.changes import UNCHECKED, Base
from bascule.daemon.results import ApplyResult

EMPTY_STORE_TAGS = frozenset({"0", "none"})
#: The largest revision number (an SQLite INTEGER) and its number of digits.
MAX_REVISION = 2**63 - 1
MAX_DIGITS = len(str(MAX_REVISION))


def etag(revision: int | None) -> str:
    return f'"{revision or 0}"'


def parse_if_match(value: str | None) -> Base:
    """The base revision a write names.

    ``"3"`` or ``3`` -> 3; ``"0"`` or ``none`` -> None (the store is empty); absent or ``*``
    -> UNCHECKED (apply to whatever is current). Anything else is a bad request.
    """
    if value is None or not value.strip() or value.strip() == "*":
        return UNCHECKED
    tag = value.strip().removeprefix("W/").strip('"').strip()
    if tag.lower() in EMPTY_STORE_TAGS:
        return None
    # At most a revision number's digits (SQLite INTEGER, 2**63 - 1): int() of 5,000 digits
    # raised ValueError (a 500), and a long header is nobody's revision.
    if tag.isascii() and tag.isdigit() and len(tag) <= MAX_DIGITS and int(tag) <= MAX_REVISION:
        return int(tag)
    raise RequestValidationError(
        [
            {
                "type": "value_error",
                "loc": ("header", "If-Match"),
                "msg": 'must be one revision number such as "3" ("0" or none for an empty store)',
                "input": value[:64],
            }
        ]
    )


def tag(response: Response, revision: int | None) -> None:
    """Label a response with the revision it shows."""
    response.headers["ETag"] = etag(revision)


def answer_change(response: Response, result: ApplyResult, *, creates: bool = False) -> None:
    """Label the outcome of a write: its revision, and 201 when it created something."""
    tag(response, result.revision)
    if creates:
        response.status_code = 201 if result.changed and not result.dry_run else 200
