"""A diverged history of the HA pair: which revisions conflict, and where the discarded ones go.

Under daemon/pair.py. When both nodes committed during a partition, each holds revisions the
other does not under the same numbers. ``find_conflict`` compares the two lists of
``(number, digest)`` (this node's, and the peer's from ``GET /ha/peer/digests``) and says
from which number they differ: the ``HistoryConflict`` that ``ha status``, the WUI and the
log show until an administrator keeps one side (``bascule ha resolve --keep lb1``). The node
whose revisions are not kept writes them to an archive file first (``write_archive``: every
revision whole, as the pair's wire form), and the ``Resolution`` says where.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bascule.daemon.peer import revision_to_wire
from bascule.errors import FieldError, InvalidConfiguration
from bascule.store.revisions import Revision, digest_of

#: How far back from the lower of the two heads the histories are compared.
EXAMINED = 200


@dataclass(frozen=True, kw_only=True)
class RevisionMark:
    """A revision as the two nodes compare it: its number, digest and who made it when."""

    number: int
    digest: str
    author: str
    created_at: datetime
    message: str

    @classmethod
    def of(cls, revision: Revision) -> RevisionMark:
        return cls(
            number=revision.number,
            digest=digest_of(revision),
            author=revision.author,
            created_at=revision.created_at,
            message=revision.message,
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "digest": self.digest,
            "author": self.author,
            "created_at": self.created_at.isoformat(),
            "message": self.message,
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], index: int) -> RevisionMark:
        try:
            number = data["number"]
            if not isinstance(number, int) or number < 1:
                raise ValueError("number must be a positive integer")
            created_at = datetime.fromisoformat(str(data["created_at"]))
            return cls(
                number=number,
                digest=str(data["digest"]),
                author=str(data["author"]),
                created_at=created_at,
                message=str(data["message"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidConfiguration(
                [FieldError(path=f"revisions[{index}]", message=str(exc))]
            ) from None


@dataclass(frozen=True, kw_only=True)
class HistoryConflict:
    """Both nodes hold revisions after ``fork`` that the other does not: ``here`` (this
    node's) and ``peer`` (the peer's), oldest first."""

    fork: int
    here: tuple[RevisionMark, ...]
    peer: tuple[RevisionMark, ...]

    def describe(self, here: str = "here", peer: str = "on the peer") -> str:
        return (
            f"the histories diverge after revision {self.fork}: revisions "
            f"{_span(self.here)} {here} and {_span(self.peer)} {peer} differ"
        )


@dataclass(frozen=True, kw_only=True)
class Resolution:
    """The last ``ha resolve`` this node took part in: whose history was kept, which node's
    revisions were archived, and where (a file on that node)."""

    kept: str
    archived_node: str
    archived: tuple[int, ...]
    archive: str
    at: datetime
    by: str


def find_conflict(
    mine: Sequence[RevisionMark], theirs: Sequence[RevisionMark], *, lowest: int
) -> HistoryConflict | None:
    """Where two histories differ (each oldest first, both from after ``lowest``): the first
    number both hold with different digests. ``None`` when one history is the other's start
    (one node is only behind). ``InvalidConfiguration`` when they already differ at the first
    number compared and older ones were not (more than ``EXAMINED`` revisions apart)."""
    by_number = {mark.number: mark.digest for mark in theirs}
    first = next(
        (
            mark.number
            for mark in mine
            if mark.number in by_number and by_number[mark.number] != mark.digest
        ),
        None,
    )
    if first is None:
        return None
    fork = first - 1
    if lowest > 0 and fork <= lowest:
        raise InvalidConfiguration(
            [
                FieldError(
                    path="keep",
                    message=f"the histories differ at revision {first} already, more than "
                    f"{EXAMINED} revisions back: leave the pair (bascule ha leave) and join "
                    "it again from the node whose history is wanted",
                )
            ]
        )
    return HistoryConflict(
        fork=fork,
        here=tuple(mark for mark in mine if mark.number > fork),
        peer=tuple(mark for mark in theirs if mark.number > fork),
    )


def write_archive(
    directory: Path,
    *,
    node: str,
    kept: str,
    fork: int,
    revisions: Sequence[Revision],
    at: datetime,
) -> Path:
    """Write this node's discarded revisions, whole, to a new file under ``directory``
    (0600, the directory 0700); its path. Written before the history is replaced."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    numbers = [revision.number for revision in revisions]
    stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{stamp}-{node}-r{min(numbers)}-r{max(numbers)}.json"
    content = {
        "node": node,
        "kept": kept,
        "fork": fork,
        "resolved_at": at.astimezone(UTC).isoformat(),
        "revisions": [revision_to_wire(revision) for revision in revisions],
    }
    temporary = path.with_suffix(".json.new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(content, handle, indent=1, ensure_ascii=False)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
    return path


def _span(marks: Sequence[RevisionMark]) -> str:
    if not marks:
        return "none"
    first, last = marks[0].number, marks[-1].number
    return str(first) if first == last else f"{first}-{last}"
