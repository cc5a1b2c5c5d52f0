"""A revision's stored text: documents and diffs as compact JSON, read back with shared values.

Where this sits in the flow of a change: the revision store (``revisions.py``) commits a
validated document as text in the ``revisions`` table; ``encode`` writes it (key order kept),
``ServiceTexts`` writes a document made from the head without encoding again the services it
shares with the revision stored before, and ``decode_document`` reads it back with one object
per repeated string or integer (``revision_rows.py`` reads the rows). Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bascule.errors import StoreError
from bascule.reconcile.diff import DiffItem, diff_to_json


class ServiceTexts:
    """``encode`` of a document, each virtual service that is the very mapping of a
    document stored before (a document made from the head by sharing its untouched
    services) copied from that revision's stored text rather than encoded again: at 1,000
    services of 10 servers 2 ms instead of 100 (issue 15). The texts are exactly
    ``encode``'s: compact JSON, key order kept.

    It keeps where each service of the last document it encoded is in the revision that
    stored it (two numbers), not the text itself: the texts of 10,000 servers were 2.4 MiB
    of the daemon's memory at rest. Two steps: ``prepare`` encodes the services that are
    not stored, outside the store's lock; ``text``, in the write transaction, copies the
    others from the stored revision and joins the whole; ``stored`` then says in which
    revision the new text is."""

    def __init__(self) -> None:
        # the revision (number, time) whose stored text the places are in, and
        # id(mapping) -> (the mapping, kept alive so that its id is not reused; its first
        # character in that text; its length)
        self._last: tuple[tuple[int, str] | None, dict[int, tuple[Any, int, int]]] = (None, {})

    def prepare(self, document: Mapping[str, Any]) -> DocumentText:
        """``document``'s text to be: the stored services' places, the others encoded."""
        services = document.get("virtual_services")
        if not isinstance(services, list):
            return DocumentText(row=None, before=encode(document), services=[], after="")
        row, places = self._last
        parts: list[tuple[Any, str | None, int, int]] = []
        for service in services:
            place = places.get(id(service))
            if row is not None and place is not None and place[0] is service:
                parts.append((service, None, place[1], place[2]))
            else:
                text = encode(service)
                parts.append((service, text, 0, len(text)))
        items = [(key, value) for key, value in document.items()]
        at = next(i for i, (key, _) in enumerate(items) if key == "virtual_services")
        before = [encode(key) + ":" + encode(value) for key, value in items[:at]]
        after = [encode(key) + ":" + encode(value) for key, value in items[at + 1 :]]
        return DocumentText(
            row=row,
            before="{" + "".join(item + "," for item in before) + '"virtual_services":[',
            services=parts,
            after="]" + "".join("," + item for item in after) + "}",
        )

    def text(self, prepared: DocumentText, stored: Callable[[tuple[int, str]], str | None]) -> str:
        """The whole text of ``prepared``; ``stored`` reads a revision's stored text (None:
        that revision is gone or is another one now: the services are encoded again). A run
        of services stored side by side is copied as one piece."""
        base = None
        if prepared.row is not None and any(text is None for _, text, _, _ in prepared.services):
            base = stored(prepared.row)
        chunks = [prepared.before]
        position = len(prepared.before)
        places: dict[int, tuple[Any, int, int]] = {}
        run: list[int] | None = None  # [start, end) of ``base`` copied as one piece
        for index, (service, text, start, length) in enumerate(prepared.services):
            if text is None and base is None:
                text = encode(service)
                length = len(text)
            if index:
                position += 1  # the comma before it
            if text is None and run is not None and run[1] + 1 == start:
                run[1] = start + length  # the comma between the two is stored too
            else:
                if run is not None and base is not None:
                    chunks.append(base[run[0] : run[1]])
                run = None
                if index:
                    chunks.append(",")
                if text is None:
                    run = [start, start + length]
                else:
                    chunks.append(text)
            places[id(service)] = (service, position, length)
            position += length
        if run is not None and base is not None:
            chunks.append(base[run[0] : run[1]])
        chunks.append(prepared.after)
        prepared.places = places
        return "".join(chunks)

    def stored(self, prepared: DocumentText, row: tuple[int, str]) -> None:
        """``prepared``'s text is revision ``row``'s (number, time) now."""
        self._last = (row, prepared.places)


@dataclass(kw_only=True)
class DocumentText:
    """A document's text as ``ServiceTexts.prepare`` left it: the text before the first
    service and after the last, and each service with its text, or ``None`` and its place
    in revision ``row``'s stored text; ``places``, once ``text`` joined it, where each one
    is in the new text."""

    row: tuple[int, str] | None
    before: str
    services: list[tuple[Any, str | None, int, int]]
    after: str
    places: dict[int, tuple[Any, int, int]] = field(default_factory=dict)


def encode(document: object) -> str:
    """The stored form of a document: compact JSON, key order kept."""
    try:
        return json.dumps(
            document,
            ensure_ascii=False,
            separators=(",", ":"),
            allow_nan=False,
            default=_mapping_as_dict,
        )
    except (TypeError, ValueError) as exc:
        raise StoreError(f"the document cannot be stored as JSON: {exc}") from exc


def _mapping_as_dict(value: object) -> dict[Any, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def encode_diff(diff: tuple[DiffItem, ...]) -> str:
    return json.dumps(diff_to_json(diff), ensure_ascii=False, separators=(",", ":"))


def decode_document(text: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise StoreError(f"a stored document is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise StoreError("a stored document is not a JSON object")
    _share_values(document)
    return document


def _share_values(document: dict[str, Any]) -> None:
    """One string or integer object for each value that a decoded ``document`` holds several
    times (``json.loads`` makes one per occurrence): 10,000 real servers' ``"enabled"`` and
    weights, each service's words, were 2.4 MiB of the document the store keeps of its head
    after a daemon starts (issue 15). Mapping keys are shared already (``json.loads``)."""
    strings: dict[str, str] = {}
    numbers: dict[int, int] = {}
    pending: list[Any] = [document]
    while pending:
        container = pending.pop()
        items = container.items() if type(container) is dict else enumerate(container)
        for key, value in items:
            kind = type(value)
            if kind is str:
                container[key] = strings.setdefault(value, value)
            elif kind is int:
                container[key] = numbers.setdefault(value, value)
            elif kind is dict or kind is list:
                pending.append(value)
