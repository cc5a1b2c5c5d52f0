"""Validating a document is bounded work whatever the input (finding 3 and 7): port clashes
are found by an index (``model/ports.py``) that reports what comparing every pair reports,
nesting is refused before anything recurses, and a refusal lists at most MAX_PROBLEMS."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.errors import InvalidConfiguration
from bascule.model import Protocol, parse_document
from bascule.model.document import MAX_DEPTH, MAX_PROBLEMS, Configuration
from bascule.model.ports import PortClash, port_clashes
from bascule.model.virtual_service import VirtualService


def reference(services: list[VirtualService]) -> list[PortClash]:
    """Every pair compared, holding only the ranges that did not clash (ports.py's rule)."""
    held: list[tuple[int, int, Any]] = []  # (service, position, range)
    clashes: list[PortClash] = []
    for index, vs in enumerate(services):
        address = ipaddress.ip_address(vs.address)
        for position, mine in enumerate(vs.port_ranges):
            firsts: dict[int, Any] = {}
            own_overlap = False
            for other, other_position, theirs in held:
                them = services[other]
                their_address = ipaddress.ip_address(them.address)
                same_place = Protocol(them.protocol) is Protocol(vs.protocol) and (
                    their_address == address
                    or (
                        their_address.version == address.version
                        and (their_address.is_unspecified or address.is_unspecified)
                    )
                )
                if not same_place or not mine.overlaps(theirs):
                    continue
                if other == index:
                    own_overlap = True
                    continue
                if other not in firsts or other_position < firsts[other][0]:
                    firsts[other] = (other_position, theirs)
            for other in sorted(firsts):
                clashes.append(
                    PortClash(
                        index=index,
                        address=vs.address,
                        position=position,
                        other=other,
                        clash=firsts[other][1],
                    )
                )
            if not firsts and not own_overlap:
                held.append((index, position, mine))
    return clashes


ports = st.integers(min_value=1, max_value=40)
port_specs = st.one_of(
    ports,
    st.tuples(ports, st.integers(min_value=0, max_value=10)).map(
        lambda pair: f"{pair[0]}-{min(pair[0] + pair[1], 65535)}"
    ),
)
services = st.lists(
    st.fixed_dictionaries(
        {
            "address": st.sampled_from(["198.18.0.1", "198.18.0.2", "0.0.0.0", "2001:2::1", "::"]),
            "port": ports,
            "extra_ports": st.lists(port_specs, max_size=3),
            "protocol": st.sampled_from(["tcp", "udp"]),
        }
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(services)
def test_the_index_finds_what_every_pair_finds(drawn: list[dict[str, Any]]) -> None:
    built = [
        VirtualService.model_validate(
            {
                **spec,
                "name": f"vs-{i}",
                "mode": "l4",
                "real_servers": [],
            }
        )
        for i, spec in enumerate(drawn)
    ]
    assert list(port_clashes(built, limit=10_000)) == reference(built)


def test_deep_nesting_is_refused_without_recursion() -> None:
    deep: Any = "x"
    for _ in range(100_000):  # RecursionError for anything that recurses
        deep = [deep]
    for document in (
        {"virtual_services": deep},
        {"virtual_services": [{"name": "web", "check": {"headers": {"x": deep}}}]},
    ):
        with pytest.raises(InvalidConfiguration, match=f"nested deeper than {MAX_DEPTH} levels"):
            parse_document(document)


def test_a_refusal_lists_a_bounded_number_of_problems() -> None:
    document = {
        "virtual_services": [
            {"name": f"vs-{i}", "address": "198.18.0.100", "port": 80, "real_servers": []}
            for i in range(2000)
        ]
    }
    with pytest.raises(InvalidConfiguration) as refused:
        parse_document(document)
    errors = refused.value.errors
    assert len(errors) == MAX_PROBLEMS + 1
    assert errors[-1].message == f"more problems not shown (the first {MAX_PROBLEMS} are)"


def test_ten_thousand_services_on_one_vip_validate() -> None:
    # 29 s of CPU when every pair was compared; a few hundred ms now (bench/hostile.py times it)
    document = {
        "virtual_services": [
            {
                "name": f"vs-{i:05d}",
                "address": "198.18.0.100",
                "port": 10000 + i,
                "real_servers": [{"address": "198.19.0.1", "port": 80}],
            }
            for i in range(10_000)
        ]
    }
    assert len(parse_document(document).virtual_services) == 10_000
    assert isinstance(parse_document({}), Configuration)
