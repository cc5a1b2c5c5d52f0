"""parse_document and the document as a whole (model/document.py): what is not a document,
every problem listed at its exact path, the invariants across objects (names, port clashes,
duplicate real servers), and the export round trip."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck as HypothesisHealthCheck
from hypothesis import given, settings
from hypothesis import strategies as st
from model_documents import (
    VS,
    Document,
    doc,
    errors_of,
    one_error,
    refused_at_their_paths,
    server,
    service,
)

from bascule.errors import FieldError, InvalidConfiguration
from bascule.model import Configuration, Mode, VirtualService, parse_document
from bascule.model.document import invariant_errors

BAD_FIELDS: list[tuple[str, Document, str, str]] = [
    ("unknown top-level field", {"virtual_services": [], "vips": []}, "vips", "not a known field"),
    ("virtual_services not a list", {"virtual_services": "web"}, "virtual_services", "a list"),
    ("service not a mapping", {"virtual_services": ["web"]}, VS, "must be a mapping"),
]


test_a_bad_field_is_reported_at_its_path = refused_at_their_paths(BAD_FIELDS)


@pytest.mark.parametrize("document", [[], "virtual_services: []", 42])
def test_a_document_that_is_not_a_mapping_is_refused(document: Any) -> None:
    assert one_error(document) == FieldError(
        path="", message="the document must be a mapping with virtual_services"
    )


@pytest.mark.parametrize("document", [None, {}, {"virtual_services": []}])
def test_an_empty_document_is_an_empty_configuration(document: Any) -> None:
    assert parse_document(document) == Configuration()


# -- every problem, each at its exact path ------------------------------------------------------


def test_every_problem_is_listed_with_its_exact_path() -> None:
    document = doc(
        service(
            port=0,
            real_servers=[
                server(address="198.18.0.4", weight=0),
                server(address="198.18.0.5"),
                server(address="198.18.0.6", weight=70000),
            ],
            check={"rise": 0, "fall": 0},
        ),
        service(name="BAD", address="198.18.0.101", persistence={"timeout": 1}),
    )
    assert [str(e) for e in errors_of(document)] == [
        "virtual_services[0].port: must be between 1 and 65535",
        "virtual_services[0].check.rise: must be between 1 and 100",
        "virtual_services[0].check.fall: must be between 1 and 100",
        "virtual_services[0].real_servers[0].weight: must be between 1 and 65535",
        "virtual_services[0].real_servers[2].weight: must be between 1 and 65535",
        "virtual_services[1].name: must be 1 to 63 characters of a-z, 0-9 and '-', starting "
        "and ending with a letter or digit",
        "virtual_services[1].persistence.timeout: must be between 60 and 2419200 seconds",
    ]


def test_every_invariant_and_unsupported_problem_is_listed() -> None:
    document = doc(
        service(),
        service(scheduler="weighted_response_time", check={"type": "none"}),
    )  # same name, same port
    assert [str(e) for e in errors_of(document)] == [
        "virtual_services[1].name: 'web' is already the name of virtual_services[0]",
        "virtual_services[1].port: 198.18.0.100 tcp port 80 is already used by virtual "
        "service 'web' (port 80)",
        "virtual_services[1].check.type: weighted_response_time follows the health checks' "
        "response times: it needs a health check (not none)",
    ]


def test_the_error_message_joins_every_problem() -> None:
    document = doc(service(port=0, real_servers=[server(weight=0)]))
    with pytest.raises(InvalidConfiguration) as caught:
        parse_document(document)
    assert str(caught.value) == (
        "virtual_services[0].port: must be between 1 and 65535; "
        "virtual_services[0].real_servers[0].weight: must be between 1 and 65535"
    )


# -- cross-object invariants ------------------------------------------------------------------

INVARIANT_CASES: list[tuple[str, Document, list[str]]] = [
    (
        "duplicate names",
        doc(service(), service(address="198.18.0.101")),
        ["virtual_services[1].name: 'web' is already the name of virtual_services[0]"],
    ),
    (
        "same address, port and protocol",
        doc(service(), service(name="api")),
        [
            "virtual_services[1].port: 198.18.0.100 tcp port 80 is already used by virtual "
            "service 'web' (port 80)"
        ],
    ),
    (
        "port inside another's extra range",
        doc(service(extra_ports=["8000-8100"]), service(name="api", port=8080)),
        [
            "virtual_services[1].port: 198.18.0.100 tcp port 8080 is already used by virtual "
            "service 'web' (port 8000-8100)"
        ],
    ),
    (
        "extra port on another's port",
        doc(service(), service(name="api", port=81, extra_ports=[8443, 80])),
        [
            "virtual_services[1].extra_ports[1]: 198.18.0.100 tcp port 80 is already used by "
            "virtual service 'web' (port 80)"
        ],
    ),
    (
        "overlapping extra ranges",
        doc(
            service(extra_ports=["9000-9010"]),
            service(name="api", port=81, extra_ports=["9010-9020"]),
        ),
        [
            "virtual_services[1].extra_ports[0]: 198.18.0.100 tcp port 9010-9020 is already "
            "used by virtual service 'web' (port 9000-9010)"
        ],
    ),
    (
        "every clashing port is reported",
        doc(
            service(extra_ports=[8080]),
            service(name="api", extra_ports=[8080]),
        ),
        [
            "virtual_services[1].port: 198.18.0.100 tcp port 80 is already used by virtual "
            "service 'web' (port 80)",
            "virtual_services[1].extra_ports[0]: 198.18.0.100 tcp port 8080 is already used by "
            "virtual service 'web' (port 8080)",
        ],
    ),
    (
        "wildcard after a specific address",
        doc(service(), service(name="any", address="0.0.0.0")),
        [
            "virtual_services[1].port: 0.0.0.0 tcp port 80 is already used by virtual "
            "service 'web' (port 80)"
        ],
    ),
    (
        "specific address after a wildcard",
        doc(service(name="any", address="0.0.0.0"), service()),
        [
            "virtual_services[1].port: 198.18.0.100 tcp port 80 is already used by virtual "
            "service 'any' (port 80)"
        ],
    ),
    (
        "ipv6 wildcard",
        doc(service(address="2001:db8::100"), service(name="any", address="::")),
        [
            "virtual_services[1].port: :: tcp port 80 is already used by virtual "
            "service 'web' (port 80)"
        ],
    ),
    (
        "the same ipv6 address spelt differently",
        doc(service(address="2001:db8::100"), service(name="api", address="2001:DB8:0::100")),
        [
            "virtual_services[1].port: 2001:db8::100 tcp port 80 is already used by virtual "
            "service 'web' (port 80)"
        ],
    ),
    (
        "duplicate real server",
        doc(service(real_servers=[server(), server(address="198.18.0.5"), server()])),
        [
            "virtual_services[0].real_servers[2]: 198.18.0.4:80 is already real_servers[0] "
            "of this virtual service"
        ],
    ),
    (
        "duplicate ipv6 real server spelt differently",
        doc(service(real_servers=[server(address="2001:db8::4"), server(address="2001:DB8::4")])),
        [
            "virtual_services[0].real_servers[1]: [2001:db8::4]:80 is already real_servers[0] "
            "of this virtual service"
        ],
    ),
    (
        "extra port on its own port",
        doc(service(extra_ports=[80])),
        ["virtual_services[0].extra_ports[0]: 80 overlaps this service's port"],
    ),
    (
        "extra range over its own port",
        doc(service(extra_ports=["70-90"])),
        ["virtual_services[0].extra_ports[0]: 70-90 overlaps this service's port"],
    ),
    (
        "extra ports overlapping each other",
        doc(service(extra_ports=["8000-8100", 8443, 8080])),
        ["virtual_services[0].extra_ports[2]: 8080 overlaps this service's extra port 8000-8100"],
    ),
]


@pytest.mark.parametrize(
    ("document", "expected"), [pytest.param(d, e, id=i) for i, d, e in INVARIANT_CASES]
)
def test_cross_object_invariants(document: Document, expected: list[str]) -> None:
    assert [str(e) for e in errors_of(document)] == expected


NO_CLASH_CASES: list[tuple[str, Document]] = [
    ("different address", doc(service(), service(name="api", address="198.18.0.101"))),
    ("different port", doc(service(), service(name="api", port=81))),
    (
        "adjacent ranges",
        doc(
            service(extra_ports=["9000-9010"]),
            service(name="api", port=81, extra_ports=["9011-9020"]),
        ),
    ),
    (
        "v4 wildcard and a v6 address",
        doc(service(address="0.0.0.0"), service(name="v6", address="2001:db8::100")),
    ),
    ("same real server in two services", doc(service(), service(name="api", port=81))),
    ("same rs address, other port", doc(service(real_servers=[server(), server(port=81)]))),
]


@pytest.mark.parametrize("document", [pytest.param(d, id=i) for i, d in NO_CLASH_CASES])
def test_no_clash(document: Document) -> None:
    parse_document(document)


def test_same_port_on_another_protocol_is_no_clash() -> None:
    document = doc(service(), service(name="dns", protocol="udp", check={"type": "dns"}))
    config = parse_document(document)
    assert list(invariant_errors(config)) == []
    assert config.virtual_services[1].mode is Mode.l4


# -- export round trip --------------------------------------------------------------------------


def test_to_document_spells_out_every_default() -> None:
    exported = parse_document(doc()).to_document()
    vs = exported["virtual_services"][0]
    assert set(vs) == set(VirtualService.model_fields)
    assert vs["check"]["type"] == "http"
    assert vs["real_servers"][0]["weight"] == 1000


def test_to_document_round_trips_a_full_document() -> None:
    config = parse_document(
        doc(
            service(
                address="2001:db8::100",
                extra_ports=[8080, "9000-9010"],
                scheduler="fixed_weighting",
                interface="eth0",
                check={
                    "type": "http",
                    "method": "POST",
                    "post_data": "ping",
                    "host": "www.example.com",
                    "headers": {"X-Health": "1"},
                    "expect_body": "^ok$",
                    "port": 8081,
                },
                persistence={"timeout": 60, "cookie": "SID"},
                real_servers=[
                    server(address="2001:db8::4", weight=3, state="drain", critical=True),
                    server(address="2001:db8::5", max_connections=100, state="disabled"),
                ],
            ),
            service(name="tcp", port=22, type="generic", enabled=False),
        )
    )
    exported = config.to_document()
    assert parse_document(exported) == config
    assert parse_document(exported).to_document() == exported


_names = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_v4 = st.integers(min_value=0, max_value=2**8 - 1).map(lambda n: f"198.18.1.{n}")
_v6 = st.integers(min_value=1, max_value=2**16 - 1).map(lambda n: f"2001:db8::{n:x}")
_check = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["none", "tcp", "http", "https", "smtp", "ldap"]),
            "interval": st.integers(min_value=10, max_value=3600),
            "timeout": st.integers(min_value=1, max_value=2),  # never above the default interval
            "rise": st.integers(min_value=1, max_value=100),
            "fall": st.integers(min_value=1, max_value=100),
            "port": st.none() | st.integers(min_value=1, max_value=65535),
            "method": st.sampled_from(["HEAD", "GET", "OPTIONS"]),
            "path": st.from_regex(r"/[a-z0-9/._-]{0,20}", fullmatch=True),
            "headers": st.dictionaries(
                st.from_regex(r"X-[A-Za-z0-9]{1,8}", fullmatch=True),
                st.from_regex(r"[a-z0-9 ]{0,8}[a-z0-9]", fullmatch=True),
                max_size=2,
            ),
            "expect_status": st.sampled_from(["200", "200-299,301", "200-399, 401"]),
            "expect_body": st.none() | st.sampled_from(["ok", "^up$", "[a-z]+"]),
        },
    ),
)
_server = st.fixed_dictionaries(
    {"port": st.integers(min_value=1, max_value=65535)},
    optional={
        "weight": st.integers(min_value=1, max_value=65535),
        "state": st.sampled_from(["enabled", "disabled", "drain"]),
        "max_connections": st.integers(min_value=0, max_value=1000000),
        "critical": st.booleans(),
    },
)


@st.composite
def _documents(draw: st.DrawFn) -> Document:
    count = draw(st.integers(min_value=0, max_value=3))
    names = draw(st.lists(_names, min_size=count, max_size=count, unique=True))
    services = []
    for index, name in enumerate(names):
        servers = []
        for rs_index, fields in enumerate(draw(st.lists(_server, max_size=4))):
            # unique address:port inside the service
            address = draw(_v4 | _v6) if rs_index == 0 else f"198.18.2.{rs_index}"
            servers.append({"address": address, **fields})
        vs: Document = {
            "name": name,
            # a distinct port per service, so services never clash
            "address": draw(st.sampled_from(["198.18.0.100", "2001:db8::100", "0.0.0.0"])),
            "port": 1000 + index,
            "extra_ports": draw(
                st.sampled_from(
                    [[], [2000 + index], [f"{3000 + 100 * index}-{3050 + 100 * index}"]]
                )
            ),
            "real_servers": servers,
        }
        optional = {
            "type": st.sampled_from(["http", "generic"]),
            "enabled": st.booleans(),
            "scheduler": st.sampled_from(
                [
                    "round_robin",
                    "weighted_round_robin",
                    "least_connection",
                    "fixed_weighting",
                    "source_ip_hash",
                ]
            ),
            "check": _check,
            "persistence": st.fixed_dictionaries(
                {}, optional={"timeout": st.integers(min_value=60, max_value=2419200)}
            ),
        }
        for key, strategy in optional.items():
            if draw(st.booleans()):
                vs[key] = draw(strategy)
        services.append(vs)
    return {"virtual_services": services}


@settings(max_examples=60, deadline=None, suppress_health_check=[HypothesisHealthCheck.too_slow])
@given(_documents())
def test_to_document_round_trips_through_parse_document(document: Document) -> None:
    config = parse_document(document)
    exported = config.to_document()
    assert parse_document(exported) == config
    assert parse_document(exported).to_document() == exported
