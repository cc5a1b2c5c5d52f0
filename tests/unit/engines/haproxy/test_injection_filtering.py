"""No field of the filtering sections can inject configuration (issue 13's fields).

What reaches HAProxy's file from them is either a number or a validated token: an exempt
list's entries (addresses and networks in their canonical spelling, model/filtering.py), media
types (RFC 9110 tokens around one '/', model/caching.py). Every attempt to smuggle a newline,
a space or a comment through them is refused by the model, with the field's path; the nft
side takes JSON, where the same values are data.
"""

from __future__ import annotations

from typing import Any

import pytest

from bascule.errors import InvalidConfiguration
from bascule.model import parse_document

NASTY = [
    "\nlisten evil",
    " bind :1",
    "#comment",
    "198.18.0.0/24 0.0.0.0/0",
    "198.18.0.1\r",
    "'quoted'",
    "$HOME",
    "%[src]",
]


def document(**fields: Any) -> dict[str, Any]:
    return {
        "virtual_services": [
            {
                "name": "site",
                "address": "198.18.0.100",
                "port": 80,
                "real_servers": [{"address": "198.18.0.4", "port": 80}],
                **fields,
            }
        ],
    }


@pytest.mark.parametrize("bad", NASTY)
def test_an_entry_of_an_exempt_list(bad: str) -> None:
    data = document(limits={"per_client": {"connections": 5}, "exempt": ["office"]})
    data["access_lists"] = {"office": {"addresses": [f"198.18.0.0/24{bad}"]}}
    with pytest.raises(InvalidConfiguration) as caught:
        parse_document(data)
    assert [e.path for e in caught.value.errors] == ["access_lists.office.addresses[0]"]


@pytest.mark.parametrize("bad", NASTY)
def test_a_media_type(bad: str) -> None:
    with pytest.raises(InvalidConfiguration) as caught:
        parse_document(document(compression={"types": [f"text/html{bad}"]}))
    assert [e.path for e in caught.value.errors] == ["virtual_services[0].compression.types[0]"]


@pytest.mark.parametrize("bad", NASTY)
def test_a_list_name(bad: str) -> None:
    data = document(access={"allow": [f"office{bad}"]})
    with pytest.raises(InvalidConfiguration) as caught:
        parse_document(data)
    assert [e.path for e in caught.value.errors] == ["virtual_services[0].access.allow[0]"]
