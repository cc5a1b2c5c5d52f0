"""Where two histories of the HA pair differ (``find_conflict``, pure): the first number both
hold with different digests; none when one node is only behind; a refusal when they differ
from the first number compared on (too far back to name)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bascule.daemon.pair_conflict import EXAMINED, RevisionMark, find_conflict
from bascule.errors import InvalidConfiguration

AT = datetime(2026, 12, 5, 12, tzinfo=UTC)


def marks(*items: tuple[int, str]) -> list[RevisionMark]:
    return [
        RevisionMark(number=number, digest=digest, author="a", created_at=AT, message="")
        for number, digest in items
    ]


def test_the_fork_is_before_the_first_number_that_differs() -> None:
    mine = marks((1, "a"), (2, "b"), (3, "c"), (4, "d"))
    theirs = marks((1, "a"), (2, "b"), (3, "x"))
    conflict = find_conflict(mine, theirs, lowest=0)
    assert conflict is not None and conflict.fork == 2
    assert [m.number for m in conflict.here] == [3, 4]
    assert [m.number for m in conflict.peer] == [3]
    assert conflict.describe() == (
        "the histories diverge after revision 2: revisions 3-4 here and 3 on the peer differ"
    )


def test_a_node_only_behind_is_no_conflict() -> None:
    mine = marks((1, "a"), (2, "b"))
    assert find_conflict(mine, marks((1, "a"), (2, "b"), (3, "c")), lowest=0) is None
    assert find_conflict(mine, marks((1, "a")), lowest=0) is None
    assert find_conflict(mine, [], lowest=0) is None


def test_histories_that_differ_from_the_first_number_compared_are_refused() -> None:
    lowest = 500
    mine = marks((501, "a"), (502, "b"))
    theirs = marks((501, "x"), (502, "y"))
    with pytest.raises(InvalidConfiguration) as refused:
        find_conflict(mine, theirs, lowest=lowest)
    assert refused.value.errors[0].path == "keep"
    assert f"more than {EXAMINED} revisions back" in refused.value.errors[0].message
    # from the very first revision, nothing is further back: revision 1 differs, fork 0
    conflict = find_conflict(marks((1, "a")), marks((1, "x")), lowest=0)
    assert conflict is not None and conflict.fork == 0


def test_a_mark_round_trips_the_wire_and_bad_ones_name_their_index() -> None:
    mark = marks((7, "d"))[0]
    assert RevisionMark.from_wire(mark.to_wire(), 0) == mark
    with pytest.raises(InvalidConfiguration) as refused:
        RevisionMark.from_wire({**mark.to_wire(), "number": 0}, 3)
    assert refused.value.errors[0].path == "revisions[3]"
