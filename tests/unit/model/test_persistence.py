"""A persistence section's fields (model/persistence.py): types, ranges, names it reads
from requests, and its defaults."""

from __future__ import annotations

from model_documents import (
    PERSIST,
    Document,
    accepted,
    doc,
    refused_at_their_paths,
    service,
)

from bascule.model import parse_document

BAD_FIELDS: list[tuple[str, Document, str, str]] = [
    (
        "persistence timeout 59",
        doc(service(persistence={"timeout": 59})),
        f"{PERSIST}.timeout",
        "must be between 60 and 2419200",
    ),
    (
        "persistence timeout 2419201",
        doc(service(persistence={"timeout": 2419201})),
        f"{PERSIST}.timeout",
        "must be between 60 and 2419200",
    ),
    (
        "persistence method",
        doc(service(persistence={"method": "magic"})),
        f"{PERSIST}.method",
        "must be one of",
    ),
    (
        "cookie with space",
        doc(service(persistence={"cookie": "my cookie"})),
        f"{PERSIST}.cookie",
        "must be a cookie name",
    ),
    (
        "cookie with semicolon",
        doc(service(persistence={"cookie": "a;b"})),
        f"{PERSIST}.cookie",
        "no spaces, quotes, commas or semicolons",
    ),
    ("cookie empty", doc(service(persistence={"cookie": ""})), f"{PERSIST}.cookie", "1 to 64"),
    (
        "persistence header",
        doc(service(persistence={"header": "X Session"})),
        f"{PERSIST}.header",
        "HTTP header name",
    ),
    (
        "query_item",
        doc(service(persistence={"query_item": "a=b"})),
        f"{PERSIST}.query_item",
        "cookie name",
    ),
    (
        "query_item empty",
        doc(service(persistence={"query_item": ""})),
        f"{PERSIST}.query_item",
        "1 to 64",
    ),
    (
        "source_mask 0",
        doc(service(persistence={"source_mask": 0})),
        f"{PERSIST}.source_mask",
        "between 1 and 32",
    ),
    (
        "source_mask 33",
        doc(service(persistence={"source_mask": 33})),
        f"{PERSIST}.source_mask",
        "between 1 and 32",
    ),
    (
        "source_mask6 129",
        doc(service(persistence={"source_mask6": 129})),
        f"{PERSIST}.source_mask6",
        "between 1 and 128",
    ),
    (
        "fallback without a method",
        doc(service(persistence={"fallback": "source_ip"})),
        f"{PERSIST}.fallback",
        "source_ip is a fallback for the other methods",
    ),
    (
        "unknown persistence field",
        doc(service(persistence={"ttl": 60})),
        f"{PERSIST}.ttl",
        "not a known field",
    ),
]

GOOD_VALUES: list[tuple[str, Document]] = [
    ("persistence timeout 60", doc(service(persistence={"timeout": 60}))),
    ("persistence timeout 2419200", doc(service(persistence={"timeout": 2419200}))),
    ("cookie with symbols", doc(service(persistence={"cookie": "SESSION_ID-2"}))),
]


test_a_bad_field_is_reported_at_its_path = refused_at_their_paths(BAD_FIELDS)
test_values_at_the_edges_of_their_ranges_are_accepted = accepted(GOOD_VALUES)


def test_defaults_are_spelt_out() -> None:
    persistence = parse_document(doc()).virtual_services[0].persistence
    assert persistence.method.value == "none"
    assert persistence.timeout == 3600
    assert persistence.cookie == "BASCULEID"
