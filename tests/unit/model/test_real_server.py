"""A real server's fields (model/real_server.py): types, ranges, its key, its defaults."""

from __future__ import annotations

from model_documents import (
    RS,
    Document,
    accepted,
    doc,
    refused_at_their_paths,
    server,
    service,
)

from bascule.model import parse_document

BAD_FIELDS: list[tuple[str, Document, str, str]] = [
    ("rs address", doc(service(real_servers=[server(address="rs1")])), f"{RS}.address", "IPv4"),
    ("rs address missing", doc(service(real_servers=[{"port": 80}])), f"{RS}.address", "required"),
    ("rs port 0", doc(service(real_servers=[server(port=0)])), f"{RS}.port", "between 1 and"),
    ("rs port 65536", doc(service(real_servers=[server(port=65536)])), f"{RS}.port", "65535"),
    ("weight 0", doc(service(real_servers=[server(weight=0)])), f"{RS}.weight", "1 and 65535"),
    ("weight 65536", doc(service(real_servers=[server(weight=65536)])), f"{RS}.weight", "65535"),
    ("weight true", doc(service(real_servers=[server(weight=True)])), f"{RS}.weight", "true/false"),
    ("weight text", doc(service(real_servers=[server(weight="x")])), f"{RS}.weight", "an integer"),
    ("weight float", doc(service(real_servers=[server(weight=1.5)])), f"{RS}.weight", "whole"),
    (
        "max_connections negative",
        doc(service(real_servers=[server(max_connections=-1)])),
        f"{RS}.max_connections",
        "must be between 0 and 1000000",
    ),
    (
        "max_connections too many",
        doc(service(real_servers=[server(max_connections=1000001)])),
        f"{RS}.max_connections",
        "must be between 0 and 1000000",
    ),
    ("rs state", doc(service(real_servers=[server(state="off")])), f"{RS}.state", "'drain'"),
    ("rs critical", doc(service(real_servers=[server(critical="x")])), f"{RS}.critical", "true"),
    (
        "rs forwarding",
        doc(service(real_servers=[server(forwarding="x")])),
        f"{RS}.forwarding",
        "nat",
    ),
    ("rs not a mapping", doc(service(real_servers=["x"])), RS, "must be a mapping"),
    (
        "unknown rs field",
        doc(service(real_servers=[server(wieght=5)])),
        f"{RS}.wieght",
        "not a known field",
    ),
]

GOOD_VALUES: list[tuple[str, Document]] = [
    ("weight 1", doc(service(real_servers=[server(weight=1)]))),
    ("weight 65535", doc(service(real_servers=[server(weight=65535)]))),
    ("max_connections 0", doc(service(real_servers=[server(max_connections=0)]))),
    ("max_connections 1000000", doc(service(real_servers=[server(max_connections=1000000)]))),
    ("ipv6 real server", doc(service(real_servers=[server(address="2001:db8::4")]))),
]


test_a_bad_field_is_reported_at_its_path = refused_at_their_paths(BAD_FIELDS)
test_values_at_the_edges_of_their_ranges_are_accepted = accepted(GOOD_VALUES)


def test_an_ipv6_real_server_is_keyed_by_its_compressed_address() -> None:
    config = parse_document(doc(service(real_servers=[server(address="2001:0db8::4")])))
    assert config.virtual_services[0].real_servers[0].key == "[2001:db8::4]:80"


def test_defaults_are_spelt_out() -> None:
    rs = parse_document(doc()).virtual_services[0].real_servers[0]
    assert (rs.weight, rs.state.value, rs.max_connections, rs.critical, rs.forwarding) == (
        1000,
        "enabled",
        0,
        False,
        None,
    )
