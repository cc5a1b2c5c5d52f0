"""A health check's fields (model/check.py): types, ranges, the HTTP request it may send,
the payloads of a binary check, normalised values and defaults."""

from __future__ import annotations

from model_documents import (
    CHECK,
    Document,
    accepted,
    doc,
    refused_at_their_paths,
    service,
)

from bascule.model import CheckType, parse_document

BAD_FIELDS: list[tuple[str, Document, str, str]] = [
    ("check not a mapping", doc(service(check="http")), CHECK, "must be a mapping"),
    ("check type", doc(service(check={"type": "ping"})), f"{CHECK}.type", "must be one of"),
    ("interval 0", doc(service(check={"interval": 0})), f"{CHECK}.interval", "0.1 and 3600 s"),
    ("interval 3601", doc(service(check={"interval": 3601})), f"{CHECK}.interval", "3600"),
    ("timeout 0", doc(service(check={"timeout": 0})), f"{CHECK}.timeout", "0.1 and 3600 s"),
    ("rise 0", doc(service(check={"rise": 0})), f"{CHECK}.rise", "between 1 and 100"),
    ("rise 101", doc(service(check={"rise": 101})), f"{CHECK}.rise", "between 1 and 100"),
    ("fall 0", doc(service(check={"fall": 0})), f"{CHECK}.fall", "between 1 and 100"),
    ("fall 101", doc(service(check={"fall": 101})), f"{CHECK}.fall", "between 1 and 100"),
    ("check port 0", doc(service(check={"port": 0})), f"{CHECK}.port", "between 1 and 65535"),
    ("check port 65536", doc(service(check={"port": 65536})), f"{CHECK}.port", "65535"),
    (
        "timeout above interval",
        doc(service(check={"interval": 2, "timeout": 5})),
        f"{CHECK}.timeout",
        "must not be longer than interval",
    ),
    ("method", doc(service(check={"method": "PUT"})), f"{CHECK}.method", "'HEAD'"),
    ("path relative", doc(service(check={"path": "health"})), f"{CHECK}.path", "start with '/'"),
    ("path space", doc(service(check={"path": "/a b"})), f"{CHECK}.path", "visible ASCII"),
    ("path newline", doc(service(check={"path": "/a\nb"})), f"{CHECK}.path", "control"),
    ("host", doc(service(check={"host": "a b"})), f"{CHECK}.host", "host name"),
    (
        "expect_status word",
        doc(service(check={"expect_status": "200,abc"})),
        f"{CHECK}.expect_status",
        "'abc' is not a status code",
    ),
    (
        "expect_status out of range",
        doc(service(check={"expect_status": "200-700"})),
        f"{CHECK}.expect_status",
        "'200-700' is not a status code",
    ),
    (
        "expect_status reversed",
        doc(service(check={"expect_status": "299-200"})),
        f"{CHECK}.expect_status",
        "'299-200'",
    ),
    (
        "expect_status empty part",
        doc(service(check={"expect_status": "200,,301"})),
        f"{CHECK}.expect_status",
        "comma-separated list",
    ),
    (
        "expect_status empty",
        doc(service(check={"expect_status": ""})),
        f"{CHECK}.expect_status",
        "comma-separated list",
    ),
    (
        "expect_status not a string",
        doc(service(check={"expect_status": [200, 302]})),
        f"{CHECK}.expect_status",
        "must be a string",
    ),
    (
        "expect_body bad regex",
        doc(service(check={"expect_body": "("})),
        f"{CHECK}.expect_body",
        "is not a valid regular expression",
    ),
    ("expect_body empty", doc(service(check={"expect_body": ""})), f"{CHECK}.expect_body", "empty"),
    (
        "send_hex odd length",
        doc(service(check={"type": "binary", "send_hex": "abc"})),
        f"{CHECK}.send_hex",
        "pairs of hexadecimal digits",
    ),
    (
        "send_hex not hex",
        doc(service(check={"type": "binary", "send_hex": "zz"})),
        f"{CHECK}.send_hex",
        "pairs of hexadecimal digits",
    ),
    (
        "expect_hex not hex",
        doc(service(check={"type": "binary", "send_hex": "00", "expect_hex": "0g"})),
        f"{CHECK}.expect_hex",
        "pairs of hexadecimal digits",
    ),
    (
        "binary without payload",
        doc(service(check={"type": "binary"})),
        f"{CHECK}.send_hex",
        "a binary check needs send_hex",
    ),
    (
        "header Host",
        doc(service(check={"headers": {"Host": "example.com"}})),
        f"{CHECK}.headers",
        "'Host' is set by Bascule itself",
    ),
    (
        "header content-length",
        doc(service(check={"headers": {"content-length": "1"}})),
        f"{CHECK}.headers",
        "'content-length' is set by Bascule itself",
    ),
    (
        "header transfer-encoding",
        doc(service(check={"headers": {"Transfer-Encoding": "chunked"}})),
        f"{CHECK}.headers",
        "set by Bascule itself",
    ),
    (
        "header connection",
        doc(service(check={"headers": {"Connection": "close"}})),
        f"{CHECK}.headers",
        "set by Bascule itself",
    ),
    (
        "header value newline",
        doc(service(check={"headers": {"X-A": "a\r\nX-Evil: 1"}})),
        f"{CHECK}.headers.X-A",
        "must not contain control characters",
    ),
    (
        "header value NUL",
        doc(service(check={"headers": {"X-A": "a\x00"}})),
        f"{CHECK}.headers.X-A",
        "control characters",
    ),
    (
        "header value empty",
        doc(service(check={"headers": {"X-A": ""}})),
        f"{CHECK}.headers.X-A",
        "must not be empty",
    ),
    (
        "header name space",
        doc(service(check={"headers": {"X A": "a"}})),
        f"{CHECK}.headers.X A",
        "must be an HTTP header name",
    ),
    (
        "header name colon",
        doc(service(check={"headers": {"X-A:": "a"}})),
        f"{CHECK}.headers.X-A:",
        "must be an HTTP header name",
    ),
    (
        "post_data without POST",
        doc(service(check={"post_data": "x"})),
        f"{CHECK}.post_data",
        "only a POST check sends post_data",
    ),
    (
        "post_data newline",
        doc(service(check={"method": "POST", "post_data": "a\nb"})),
        f"{CHECK}.post_data",
        "control characters",
    ),
    (
        "unknown check field",
        doc(service(check={"intervall": 5})),
        f"{CHECK}.intervall",
        "not a known field",
    ),
]

GOOD_VALUES: list[tuple[str, Document]] = [
    ("timeout equal to interval", doc(service(check={"interval": 5, "timeout": 5}))),
    ("check port 65535", doc(service(check={"port": 65535}))),
    ("allowed custom header", doc(service(check={"headers": {"X-Health": "1"}}))),
    (
        "binary check",
        doc(service(check={"type": "binary", "send_hex": "0A0b", "expect_hex": "ff"})),
    ),
    ("post check", doc(service(check={"method": "POST", "post_data": "ping=1"}))),
    ("every expect_status form", doc(service(check={"expect_status": "200-299, 301 ,302"}))),
    ("no check", doc(service(check={"type": "none"}))),
]


test_a_bad_field_is_reported_at_its_path = refused_at_their_paths(BAD_FIELDS)
test_values_at_the_edges_of_their_ranges_are_accepted = accepted(GOOD_VALUES)


def test_normalised_values() -> None:
    check = {"type": "binary", "send_hex": "0A0B"}
    assert parse_document(doc(service(check=check))).virtual_services[0].check.send_hex == "0a0b"


def test_defaults_are_spelt_out() -> None:
    check = parse_document(doc()).virtual_services[0].check
    assert check.type is CheckType.http
    assert (check.interval, check.timeout, check.rise, check.fall) == (2, 1, 2, 3)
    assert check.expect_status == "200-299,301,302,401"
    assert check.path == "/"


def test_a_single_expected_status_may_be_a_yaml_number() -> None:
    config = parse_document(doc(service(check={"expect_status": 204})))
    assert config.virtual_services[0].check.expect_status == "204"
