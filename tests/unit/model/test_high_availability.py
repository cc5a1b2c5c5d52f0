"""The high_availability section: a pair, each field's bounds, and what a VIP of a pair is."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bascule.errors import InvalidConfiguration
from bascule.model import parse_document

PAIR: dict[str, Any] = {
    "nodes": [
        {"name": "lb1", "address": "198.18.0.3", "priority": 150},
        {"name": "lb2", "address": "198.18.0.4", "priority": 100},
    ],
    "interface": "e0",
    "virtual_router_id": 51,
    "advert_interval": 0.2,
    "preempt": False,
}


def with_pair(**changes: Any) -> dict[str, Any]:
    pair = copy.deepcopy(PAIR)
    pair.update(changes)
    return {"high_availability": pair}


def problems(document: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(InvalidConfiguration) as caught:
        parse_document(document)
    return [(error.path, error.message) for error in caught.value.errors]


def test_the_issue_example_parses_and_exports_as_given() -> None:
    config = parse_document(with_pair())
    assert config.to_document()["high_availability"] == PAIR
    assert config.high_availability is not None
    assert config.high_availability.find_self(frozenset({"198.18.0.4", "127.0.0.1"})) == (
        config.high_availability.nodes[1],
        config.high_availability.nodes[0],
    )
    assert config.high_availability.find_self(frozenset({"198.18.0.9"})) is None


def test_a_single_node_exports_no_section() -> None:
    assert "high_availability" not in parse_document({}).to_document()


def test_defaults() -> None:
    pair = parse_document(
        {"high_availability": {"nodes": PAIR["nodes"], "interface": "eth0"}}
    ).high_availability
    assert pair is not None
    assert (pair.virtual_router_id, pair.advert_interval, pair.preempt) == (51, 1.0, False)


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        ({"advert_interval": 0.005}, "high_availability.advert_interval", "between 0.01"),
        ({"advert_interval": 41}, "high_availability.advert_interval", "40.95"),
        ({"advert_interval": 0.123}, "high_availability.advert_interval", "centiseconds"),
        ({"advert_interval": True}, "high_availability.advert_interval", "number of seconds"),
        ({"advert_interval": "nan"}, "high_availability.advert_interval", "between"),
        ({"interface": "e0\nvrrp_script x {"}, "high_availability.interface", "interface name"),
        ({"interface": "e0 x"}, "high_availability.interface", "interface name"),
        ({"virtual_router_id": 0}, "high_availability.virtual_router_id", "between 1 and 255"),
        ({"virtual_router_id": 256}, "high_availability.virtual_router_id", "between 1 and 255"),
        ({"nodes": PAIR["nodes"][:1]}, "high_availability.nodes", "exactly two"),
        ({"nodes": PAIR["nodes"] * 2}, "high_availability.nodes", "exactly two"),
        ({"preempt": "maybe"}, "high_availability.preempt", "true or false"),
        ({"extra": 1}, "high_availability.extra", "not a known field"),
    ],
)
def test_bad_fields_are_named(changes: dict[str, Any], path: str, words: str) -> None:
    found = problems(with_pair(**changes))
    assert len(found) == 1 and found[0][0] == path and words in found[0][1], found


@pytest.mark.parametrize(
    ("nodes", "path", "words"),
    [
        (
            [{"name": "lb1", "address": "198.18.0.3"}, {"name": "lb1", "address": "198.18.0.4"}],
            "high_availability.nodes[1]",
            "already the name",
        ),
        (
            [{"name": "lb1", "address": "198.18.0.3"}, {"name": "lb2", "address": "198.18.0.3"}],
            "high_availability.nodes[1]",
            "already the address",
        ),
        (
            [{"name": "lb1", "address": "198.18.0.3"}, {"name": "lb2", "address": "2001:2::4"}],
            "high_availability.nodes[1]",
            "both IPv6",
        ),
        (
            [{"name": "lb1", "address": "127.0.0.1"}, {"name": "lb2", "address": "198.18.0.4"}],
            "high_availability.nodes[0]",
            "loopback",
        ),
        (
            [{"name": "lb1", "address": "198.18.0.3", "priority": 255}, PAIR["nodes"][1]],
            "high_availability.nodes[0].priority",
            "between 1 and 254",
        ),
        (
            [{"name": "LB 1", "address": "198.18.0.3"}, PAIR["nodes"][1]],
            "high_availability.nodes[0].name",
            "a-z",
        ),
        (
            [{"name": "lb1", "address": "lb1.example"}, PAIR["nodes"][1]],
            "high_availability.nodes[0].address",
            "not an IPv4 or IPv6 address",
        ),
    ],
)
def test_bad_nodes_are_named(nodes: list[dict[str, Any]], path: str, words: str) -> None:
    found = problems(with_pair(nodes=nodes))
    assert len(found) == 1 and found[0][0] == path and words in found[0][1], found


def test_a_vip_is_not_a_node_address() -> None:
    document = with_pair()
    document["virtual_services"] = [{"name": "web", "address": "198.18.0.4", "port": 80}]
    assert problems(document) == [
        (
            "virtual_services[0].address",
            "198.18.0.4 is the address of high_availability.nodes[1]: a VIP of the pair "
            "must be an address of its own",
        )
    ]
