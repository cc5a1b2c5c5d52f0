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


# -- a rule's and a sub-service's limits, a sub-service's cache -----------------------------

RULE = {"name": "login", "match": {"path": "/login"}, "action": {"use_default": True}}
SUB = {"name": "api", "real_servers": [{"address": "198.18.0.5", "port": 80}]}
# every field of theirs that is not a plain number where the file prints it: what a string
# there becomes (names of tables and caches are made of the rule's and sub-service's names)
REQUEST_FIELDS = [
    ("rules[0].name", lambda bad: {"rules": [{**RULE, "name": f"login{bad}"}]}),
    (
        "rules[0].limits.exempt[0]",
        lambda bad: {
            "rules": [
                {
                    **RULE,
                    "limits": {
                        "per_client": {"requests_per_second": 5},
                        "exempt": [f"office{bad}"],
                    },
                }
            ]
        },
    ),
    (
        "rules[0].limits.per_client.requests_per_second",
        lambda bad: {
            "rules": [{**RULE, "limits": {"per_client": {"requests_per_second": f"5{bad}"}}}]
        },
    ),
    (
        "rules[0].limits.response.retry_after",
        lambda bad: {
            "rules": [
                {
                    **RULE,
                    "limits": {
                        "per_client": {"requests_per_second": 5},
                        "response": {"retry_after": f"10{bad}"},
                    },
                }
            ]
        },
    ),
    ("sub_services[0].name", lambda bad: {"sub_services": [{**SUB, "name": f"api{bad}"}]}),
    (
        "sub_services[0].limits.exempt[0]",
        lambda bad: {
            "sub_services": [
                {
                    **SUB,
                    "limits": {
                        "per_client": {"requests_per_second": 5},
                        "exempt": [f"office{bad}"],
                    },
                }
            ]
        },
    ),
    (
        "sub_services[0].limits.response.code",
        lambda bad: {
            "sub_services": [
                {
                    **SUB,
                    "limits": {
                        "per_client": {"requests_per_second": 5},
                        "response": {"code": f"429{bad}"},
                    },
                }
            ]
        },
    ),
    (
        "sub_services[0].cache.size_mb",
        lambda bad: {"sub_services": [{**SUB, "cache": {"size_mb": f"64{bad}"}}]},
    ),
    (
        "sub_services[0].cache.max_age",
        lambda bad: {"sub_services": [{**SUB, "cache": {"max_age": f"60{bad}"}}]},
    ),
    (
        "sub_services[0].cache.max_object_kb",
        lambda bad: {"sub_services": [{**SUB, "cache": {"max_object_kb": f"1{bad}"}}]},
    ),
]


@pytest.mark.parametrize("bad", NASTY)
@pytest.mark.parametrize(("path", "fields"), REQUEST_FIELDS, ids=[p for p, _ in REQUEST_FIELDS])
def test_a_field_of_a_rules_or_sub_services_limits_or_cache(
    path: str, fields: Any, bad: str
) -> None:
    data = document(**fields(bad))
    data["access_lists"] = {"office": {"addresses": ["198.18.0.0/24"]}}
    with pytest.raises(InvalidConfiguration) as caught:
        parse_document(data)
    assert f"virtual_services[0].{path}" in [e.path for e in caught.value.errors]
