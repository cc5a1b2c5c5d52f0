"""The pair's peer calls (daemon/peer.py): fingerprints in any spelling, the peer's URL, and
revisions on the wire; bad input refused naming its field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bascule.daemon.peer import (
    normalize_fingerprint,
    parse_peer_url,
    revision_from_wire,
    revision_to_wire,
)
from bascule.errors import InvalidConfiguration
from bascule.reconcile.diff import DiffItem, DiffOp
from bascule.store.revisions import Revision

HEX = "ab" * 32
COLONS = ":".join(["AB"] * 32)


@pytest.mark.parametrize("given", [HEX, HEX.upper(), COLONS, f"sha256:{COLONS}", f"SHA256={HEX}"])
def test_a_fingerprint_in_any_spelling(given: str) -> None:
    assert normalize_fingerprint(given) == COLONS


@pytest.mark.parametrize("given", ["", "ab" * 31, "zz" * 32, COLONS + ":AB"])
def test_a_bad_fingerprint_names_its_field(given: str) -> None:
    with pytest.raises(InvalidConfiguration, match=r"^fingerprint: must be a SHA-256"):
        normalize_fingerprint(given)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://198.18.0.3:8443", ("198.18.0.3", 8443)),
        ("https://198.18.0.3:8443/", ("198.18.0.3", 8443)),
        ("https://[2001:2::3]:8443", ("2001:2::3", 8443)),
        ("https://198.18.0.3", ("198.18.0.3", 443)),
    ],
)
def test_the_peer_url(url: str, expected: tuple[str, int]) -> None:
    assert parse_peer_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://198.18.0.3:8443",
        "https://lb1.example:8443",
        "https://198.18.0.3:8443/api",
        "https://198.18.0.3:99999",
        "https://user@198.18.0.3:8443",
    ],
)
def test_a_bad_peer_url_names_its_field(url: str) -> None:
    with pytest.raises(InvalidConfiguration, match=r"^url: "):
        parse_peer_url(url)


def test_a_revision_crosses_the_wire_unchanged() -> None:
    revision = Revision(
        number=7,
        created_at=datetime(2026, 12, 5, 12, 0, 0, 123456, tzinfo=UTC),
        author="admin",
        message="weights",
        document={"virtual_services": []},
        diff=(DiffItem(op=DiffOp.CHANGE, path="a.b", old=1, new=2),),
        rolled_back_from=3,
    )
    assert revision_from_wire(revision_to_wire(revision), 0) == revision


@pytest.mark.parametrize(
    "change",
    [{"number": 0}, {"number": "7"}, {"created_at": "2026-12-05T12:00:00"}, {"document": []}],
)
def test_a_bad_revision_from_the_peer_names_it(change: dict[str, object]) -> None:
    wire = {
        "number": 7,
        "created_at": "2026-12-05T12:00:00+00:00",
        "author": "admin",
        "message": "",
        "document": {},
        "diff": [],
        "rolled_back_from": None,
    }
    with pytest.raises(InvalidConfiguration, match=r"^revisions\[4\]: "):
        revision_from_wire({**wire, **change}, 4)
