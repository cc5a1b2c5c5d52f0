"""Access lists, the global block and a service's access: validation and list files."""

from __future__ import annotations

from typing import Any

import pytest

from bascule.errors import InvalidConfiguration, NotFound
from bascule.model import Mode, parse_document
from bascule.model.document import for_mode
from bascule.model.filtering import (
    InvalidListFile,
    delete_access_list,
    parse_address_lines,
    set_access_list,
    set_blocked,
    used_lists,
)


def service(**fields: Any) -> dict[str, Any]:
    return {"name": "site", "address": "198.18.0.100", "port": 80, **fields}


def problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(InvalidConfiguration) as caught:
        parse_document(data)
    return [(e.path, e.message) for e in caught.value.errors]


def test_entries_are_spelled_canonically_and_families_mix() -> None:
    config = parse_document(
        {
            "access_lists": {
                "office": {"addresses": ["198.18.0.0/24", "198.18.9.9/32", "2001:2:0::/48"]}
            },
            "block": ["office"],
        }
    )
    assert config.access_lists["office"].addresses == ["198.18.0.0/24", "198.18.9.9", "2001:2::/48"]
    assert used_lists(config) == ("office",)


@pytest.mark.parametrize(
    ("addresses", "path", "words"),
    [
        (
            ["198.18.7.1/24"],
            "access_lists.l.addresses[0]",
            "host bits set: the network is 198.18.7.0/24",
        ),
        (["198.18.0.0/24", "nonsense"], "access_lists.l.addresses[1]", "not an IP address"),
        (
            ["198.18.0.0/24", "198.18.0.7"],
            "access_lists.l.addresses[1]",
            "overlaps 198.18.0.0/24 ([0])",
        ),
        (
            ["198.18.0.7", "198.18.0.0/16"],
            "access_lists.l.addresses[1]",
            "overlaps 198.18.0.7 ([0])",
        ),
        (["2001:2::/48", "2001:2::1"], "access_lists.l.addresses[1]", "overlaps 2001:2::/48"),
    ],
)
def test_bad_entries_name_their_index(addresses: list[str], path: str, words: str) -> None:
    found = problems({"access_lists": {"l": {"addresses": addresses}}})
    assert len(found) == 1 and found[0][0] == path and words in found[0][1], found


def test_same_address_in_two_families_does_not_overlap() -> None:
    parse_document({"access_lists": {"l": {"addresses": ["0.0.0.1", "::1"]}}})


def test_unknown_list_names_are_refused_where_used() -> None:
    found = problems(
        {
            "access_lists": {"office": {"addresses": []}},
            "block": ["blocked"],
            "virtual_services": [service(access={"allow": ["office", "nope"], "deny": ["x"]})],
        }
    )
    assert [path for path, _ in found] == [
        "block[0]",
        "virtual_services[0].access.allow[1]",
        "virtual_services[0].access.deny[0]",
    ]
    assert "'blocked' is not in access_lists (office)" in found[0][1]


def test_a_bad_list_name_and_a_bad_access_field() -> None:
    found = problems(
        {
            "access_lists": {"Bad Name": {}},
            "virtual_services": [service(access={"allow": [], "only": []})],
        }
    )
    paths = [path for path, _ in found]
    assert "access_lists.Bad Name" in paths
    assert "virtual_services[0].access.only" in paths


def test_an_export_without_filtering_reads_as_before() -> None:
    document = parse_document({"virtual_services": [service()]}).to_document()
    assert "access_lists" not in document and "block" not in document


def test_the_engines_shares_leave_access_out() -> None:
    config = parse_document(
        {
            "access_lists": {"office": {"addresses": ["198.18.0.0/24"]}},
            "virtual_services": [service(access={"allow": ["office"]})],
        }
    )
    assert for_mode(config, Mode.l7).virtual_services[0].access is None
    assert config.virtual_services[0].access is not None


def test_list_file_lines_comments_and_every_bad_line_by_number() -> None:
    text = "# blocked\n198.18.7.0/24  # a range\n\n198.18.9.9\n2001:2::/48\n"
    assert parse_address_lines(text) == ["198.18.7.0/24", "198.18.9.9", "2001:2::/48"]
    with pytest.raises(InvalidListFile) as caught:
        parse_address_lines("198.18.0.0/24\nbad\n198.18.0.9\n198.18.1.1/24\n")
    assert [(e.line, e.message.split()[0]) for e in caught.value.errors] == [
        (2, "'bad'"),
        (3, "198.18.0.9"),
        (4, "198.18.1.1/24"),
    ]
    assert "overlaps 198.18.0.0/24 (line 1)" in caught.value.errors[1].message


def test_edits_set_and_delete_lists() -> None:
    document: dict[str, Any] = {"virtual_services": []}
    changed = set_access_list(document, "office", ["198.18.0.0/24"], "office.txt")
    assert changed["access_lists"] == {
        "office": {"addresses": ["198.18.0.0/24"], "file": "office.txt"}
    }
    assert "access_lists" not in document
    assert delete_access_list(changed, "office")["access_lists"] == {}
    with pytest.raises(NotFound):
        delete_access_list(document, "office")


def test_edits_block_and_unblock_a_list() -> None:
    document: dict[str, Any] = {
        "access_lists": {"b": {"addresses": []}, "a": {"addresses": []}},
        "block": ["b"],
    }
    blocked = set_blocked(document, "a", True)
    assert blocked["block"] == ["a", "b"] and document["block"] == ["b"]
    assert set_blocked(blocked, "a", True)["block"] == ["a", "b"]  # once
    assert set_blocked(blocked, "b", False)["block"] == ["a"]
    assert set_blocked(document, "a", False)["block"] == ["b"]
    with pytest.raises(NotFound):
        set_blocked(document, "c", True)


def test_a_large_list_validates() -> None:
    addresses = [f"198.{18 + i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(100_000)]
    config = parse_document({"access_lists": {"big": {"addresses": addresses}}})
    assert len(config.access_lists["big"].addresses) == 100_000


# -- limits (model/limits.py) ---------------------------------------------------------------


def test_limits_of_zero_or_less_and_bad_answers_name_their_field() -> None:
    found = problems(
        {
            "virtual_services": [
                service(
                    limits={
                        "max_connections": 0,
                        "connections_per_second": -5,
                        "per_client": {"connections": 0, "bandwidth": 1000},
                        "response": {"code": 404, "retry_after": 0},
                        "exempt": ["nope"],
                    }
                )
            ]
        }
    )
    where = "virtual_services[0].limits"
    assert dict(found) == {
        f"{where}.max_connections": "must be between 1 and 10000000",
        f"{where}.connections_per_second": "must be between 1 and 10000000",
        f"{where}.per_client.connections": "must be between 1 and 10000000",
        f"{where}.per_client.bandwidth": (
            "is not supported yet (neither engine limits a client's bandwidth)"
        ),
        f"{where}.response.code": "must be 429 (too many requests) or 503 (service unavailable)",
        f"{where}.response.retry_after": "must be between 1 and 86400",
    }


def test_limits_that_a_service_cannot_do() -> None:
    found = problems(
        {
            "virtual_services": [
                service(type="generic", limits={"per_client": {"requests_per_second": 5}}),
                service(
                    name="fast",
                    port=81,
                    mode="l4",
                    limits={"per_client": {"connections": 5}, "exempt": ["x"]},
                ),
                service(
                    name="dsr",
                    port=82,
                    mode="l4",
                    forwarding="dsr",
                    limits={"per_client": {"connections_per_second": 5}},
                ),
            ]
        }
    )
    assert found == [
        (
            "virtual_services[0].limits.per_client.requests_per_second",
            "counts HTTP requests: it needs an l7 service of type http",
        ),
        ("virtual_services[1].limits.exempt[0]", "'x' is not in access_lists (none is defined)"),
        (
            "virtual_services[2].limits",
            "needs connection tracking, which DSR services do not have: use forwarding: nat, "
            "or limit on the real servers",
        ),
    ]


def test_haproxys_share_carries_the_exempt_lists_only() -> None:
    config = parse_document(
        {
            "access_lists": {"office": {"addresses": ["198.18.0.0/24"]}, "other": {}},
            "virtual_services": [
                service(limits={"per_client": {"connections": 5}, "exempt": ["office"]})
            ],
        }
    )
    assert list(for_mode(config, Mode.l7).access_lists) == ["office"]
    assert for_mode(config, Mode.l4).access_lists == {}
