"""parse_document: every field's type and range, cross-object invariants, "not supported yet",
defaults, and the export round trip (model/document.py, model/modes.py)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck as HypothesisHealthCheck
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.errors import FieldError, InvalidConfiguration
from bascule.model import (
    CheckType,
    Configuration,
    Mode,
    Protocol,
    Scheduler,
    ServiceType,
    VirtualService,
    parse_document,
)
from bascule.model.document import invariant_errors

Document = dict[str, Any]


def server(address: str = "198.18.0.4", port: int = 80, **fields: Any) -> Document:
    return {"address": address, "port": port, **fields}


def service(**fields: Any) -> Document:
    base: Document = {
        "name": "web",
        "address": "198.18.0.100",
        "port": 80,
        "real_servers": [server()],
    }
    return {**base, **fields}


def doc(*services: Document) -> Document:
    return {"virtual_services": list(services) or [service()]}


def errors_of(document: Any) -> list[FieldError]:
    with pytest.raises(InvalidConfiguration) as caught:
        parse_document(document)
    return list(caught.value.errors)


def one_error(document: Any) -> FieldError:
    errors = errors_of(document)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


VS = "virtual_services[0]"
RS = f"{VS}.real_servers[0]"
CHECK = f"{VS}.check"
PERSIST = f"{VS}.persistence"

# (id, the document, the path of its single error, a substring of that error's message)
FIELD_CASES: list[tuple[str, Document, str, str]] = [
    # -- names and addresses ------------------------------------------------------------------
    ("name upper case", doc(service(name="Web")), f"{VS}.name", "1 to 63 characters"),
    ("name underscore", doc(service(name="my_web")), f"{VS}.name", "a-z, 0-9 and '-'"),
    ("name leading dash", doc(service(name="-web")), f"{VS}.name", "starting and ending"),
    ("name trailing dash", doc(service(name="web-")), f"{VS}.name", "starting and ending"),
    ("name empty", doc(service(name="")), f"{VS}.name", "1 to 63 characters"),
    ("name 64 characters", doc(service(name="a" * 64)), f"{VS}.name", "1 to 63 characters"),
    ("name not a string", doc(service(name=7)), f"{VS}.name", "must be a string"),
    ("name missing", doc({"address": "198.18.0.100", "port": 80}), f"{VS}.name", "is required"),
    ("address not an ip", doc(service(address="x")), f"{VS}.address", "is not an IPv4 or IPv6"),
    ("address host name", doc(service(address="www.example.com")), f"{VS}.address", "IPv4"),
    ("address with prefix", doc(service(address="198.18.0.0/24")), f"{VS}.address", "IPv6"),
    ("address v4 octet", doc(service(address="198.18.0.256")), f"{VS}.address", "not an IPv4"),
    ("rs address", doc(service(real_servers=[server(address="rs1")])), f"{RS}.address", "IPv4"),
    ("rs address missing", doc(service(real_servers=[{"port": 80}])), f"{RS}.address", "required"),
    # -- ports --------------------------------------------------------------------------------
    ("port 0", doc(service(port=0)), f"{VS}.port", "must be between 1 and 65535"),
    ("port 65536", doc(service(port=65536)), f"{VS}.port", "must be between 1 and 65535"),
    ("port negative", doc(service(port=-1)), f"{VS}.port", "must be between 1 and 65535"),
    ("port true", doc(service(port=True)), f"{VS}.port", "not true/false"),
    ("port text", doc(service(port="http")), f"{VS}.port", "must be an integer"),
    ("port float", doc(service(port=80.5)), f"{VS}.port", "must be a whole number"),
    ("port missing", doc({"name": "web", "address": "198.18.0.100"}), f"{VS}.port", "required"),
    ("rs port 0", doc(service(real_servers=[server(port=0)])), f"{RS}.port", "between 1 and"),
    ("rs port 65536", doc(service(real_servers=[server(port=65536)])), f"{RS}.port", "65535"),
    (
        "extra range reversed",
        doc(service(extra_ports=["9010-9000"])),
        f"{VS}.extra_ports[0]",
        "the first port must not be above the last",
    ),
    (
        "extra port not a number",
        doc(service(extra_ports=[8080, "abc"])),
        f"{VS}.extra_ports[1]",
        "'abc' must be a port (1-65535) or a range",
    ),
    (
        "extra port 70000",
        doc(service(extra_ports=[70000])),
        f"{VS}.extra_ports[0]",
        "port 70000 must be between 1 and 65535",
    ),
    (
        "extra port 0",
        doc(service(extra_ports=[0])),
        f"{VS}.extra_ports[0]",
        "must be between 1 and 65535",
    ),
    (
        "extra range above 65535",
        doc(service(extra_ports=["65000-70000"])),
        f"{VS}.extra_ports[0]",
        "ports must be between 1 and 65535",
    ),
    (
        "extra range half open",
        doc(service(extra_ports=["9000-"])),
        f"{VS}.extra_ports[0]",
        "must be a port (1-65535) or a range",
    ),
    ("extra port true", doc(service(extra_ports=[True])), f"{VS}.extra_ports[0]", "a port"),
    ("extra ports not a list", doc(service(extra_ports=8080)), f"{VS}.extra_ports", "a list"),
    # -- real servers -------------------------------------------------------------------------
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
    ("real_servers not a list", doc(service(real_servers={})), f"{VS}.real_servers", "a list"),
    ("rs not a mapping", doc(service(real_servers=["x"])), RS, "must be a mapping"),
    # -- enumerations and flags ---------------------------------------------------------------
    ("protocol", doc(service(protocol="sctp")), f"{VS}.protocol", "'tcp' or 'udp'"),
    ("type", doc(service(type="ftp")), f"{VS}.type", "must be one of"),
    ("mode", doc(service(mode="l3")), f"{VS}.mode", "'l7' or 'l4'"),
    ("scheduler", doc(service(scheduler="random")), f"{VS}.scheduler", "'round_robin'"),
    ("enabled", doc(service(enabled="maybe")), f"{VS}.enabled", "must be true or false"),
    ("interface", doc(service(interface="bad name")), f"{VS}.interface", "interface name"),
    # -- health check -------------------------------------------------------------------------
    ("check not a mapping", doc(service(check="http")), CHECK, "must be a mapping"),
    ("check type", doc(service(check={"type": "ping"})), f"{CHECK}.type", "must be one of"),
    ("interval 0", doc(service(check={"interval": 0})), f"{CHECK}.interval", "between 1 and 3600"),
    ("interval 3601", doc(service(check={"interval": 3601})), f"{CHECK}.interval", "3600"),
    ("timeout 0", doc(service(check={"timeout": 0})), f"{CHECK}.timeout", "between 1 and 3600"),
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
    # -- persistence --------------------------------------------------------------------------
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
        "between 1 and 128",
    ),
    (
        "source_mask 129",
        doc(service(persistence={"source_mask": 129})),
        f"{PERSIST}.source_mask",
        "between 1 and 128",
    ),
    (
        "fallback without a method",
        doc(service(persistence={"fallback": "source_ip"})),
        f"{PERSIST}.fallback",
        "source_ip is a fallback for the other methods",
    ),
    # -- unknown fields -----------------------------------------------------------------------
    ("unknown top-level field", {"virtual_services": [], "vips": []}, "vips", "not a known field"),
    ("unknown service field", doc(service(colour="red")), f"{VS}.colour", "not a known field"),
    (
        "unknown rs field",
        doc(service(real_servers=[server(wieght=5)])),
        f"{RS}.wieght",
        "not a known field",
    ),
    (
        "unknown check field",
        doc(service(check={"intervall": 5})),
        f"{CHECK}.intervall",
        "not a known field",
    ),
    (
        "unknown persistence field",
        doc(service(persistence={"ttl": 60})),
        f"{PERSIST}.ttl",
        "not a known field",
    ),
    (
        "adaptive without its scheduler",
        doc(service(adaptive={})),
        f"{VS}.adaptive",
        "only used with scheduler: adaptive",
    ),
    # -- the document itself ------------------------------------------------------------------
    ("virtual_services not a list", {"virtual_services": "web"}, "virtual_services", "a list"),
    ("service not a mapping", {"virtual_services": ["web"]}, VS, "must be a mapping"),
]


@pytest.mark.parametrize(
    ("document", "path", "message"),
    [pytest.param(d, p, m, id=i) for i, d, p, m in FIELD_CASES],
)
def test_a_bad_field_is_reported_at_its_path(document: Document, path: str, message: str) -> None:
    error = one_error(document)
    assert error.path == path
    assert message in error.message


@pytest.mark.parametrize("document", [[], "virtual_services: []", 42])
def test_a_document_that_is_not_a_mapping_is_refused(document: Any) -> None:
    assert one_error(document) == FieldError(
        path="", message="the document must be a mapping with virtual_services"
    )


@pytest.mark.parametrize("document", [None, {}, {"virtual_services": []}])
def test_an_empty_document_is_an_empty_configuration(document: Any) -> None:
    assert parse_document(document) == Configuration()


# -- values at the edges of their ranges are accepted ------------------------------------------

GOOD_CASES: list[tuple[str, Document]] = [
    ("port 1", doc(service(port=1))),
    ("port 65535", doc(service(port=65535))),
    ("weight 1", doc(service(real_servers=[server(weight=1)]))),
    ("weight 65535", doc(service(real_servers=[server(weight=65535)]))),
    ("max_connections 0", doc(service(real_servers=[server(max_connections=0)]))),
    ("max_connections 1000000", doc(service(real_servers=[server(max_connections=1000000)]))),
    ("persistence timeout 60", doc(service(persistence={"timeout": 60}))),
    ("persistence timeout 2419200", doc(service(persistence={"timeout": 2419200}))),
    ("timeout equal to interval", doc(service(check={"interval": 5, "timeout": 5}))),
    ("check port 65535", doc(service(check={"port": 65535}))),
    ("extra range of one port", doc(service(extra_ports=["9000-9000"]))),
    ("extra ports and ranges", doc(service(extra_ports=[8080, "9000-9010", "8443"]))),
    ("name 63 characters", doc(service(name="a" * 63))),
    ("name one character", doc(service(name="a"))),
    ("ipv6 vip", doc(service(address="2001:db8::100"))),
    ("ipv6 real server", doc(service(real_servers=[server(address="2001:db8::4")]))),
    ("allowed custom header", doc(service(check={"headers": {"X-Health": "1"}}))),
    ("cookie with symbols", doc(service(persistence={"cookie": "SESSION_ID-2"}))),
    (
        "binary check",
        doc(service(check={"type": "binary", "send_hex": "0A0b", "expect_hex": "ff"})),
    ),
    ("post check", doc(service(check={"method": "POST", "post_data": "ping=1"}))),
    ("every expect_status form", doc(service(check={"expect_status": "200-299, 301 ,302"}))),
    ("no real servers", doc(service(real_servers=[]))),
    ("no check", doc(service(check={"type": "none"}))),
]


@pytest.mark.parametrize("document", [pytest.param(d, id=i) for i, d in GOOD_CASES])
def test_values_at_the_edges_of_their_ranges_are_accepted(document: Document) -> None:
    parse_document(document)


def test_normalised_values() -> None:
    config = parse_document(
        doc(
            service(
                address="2001:DB8:0::100",
                extra_ports=["8080", "9000-9010"],
                check={"type": "binary", "send_hex": "0A0B"},
                real_servers=[server(address="2001:0db8::4")],
            )
        )
    )
    vs = config.virtual_services[0]
    assert vs.address == "2001:db8::100"
    assert vs.extra_ports == [8080, "9000-9010"]
    assert vs.check.send_hex == "0a0b"
    assert vs.real_servers[0].key == "[2001:db8::4]:80"


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
        "virtual_services[1].persistence.timeout: must be between 60 and 2419200",
    ]


def test_every_invariant_and_unsupported_problem_is_listed() -> None:
    document = doc(
        service(),
        service(scheduler="weighted_response_time", check={"type": "none"}, transparent=True),
    )  # same name, same port
    assert [str(e) for e in errors_of(document)] == [
        "virtual_services[1].name: 'web' is already the name of virtual_services[0]",
        "virtual_services[1].port: 198.18.0.100 tcp port 80 is already used by virtual "
        "service 'web' (port 80)",
        "virtual_services[1].transparent: L7 transparency is not supported yet",
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


# -- what this release does not support yet ----------------------------------------------------

UNSUPPORTED_CASES: list[tuple[str, Document, str, str]] = [
    (
        "http on l4",
        doc(service(mode="l4", type="http")),
        f"{VS}.type",
        "http needs mode l7",
    ),
    (
        "url_hash on l4",
        doc(service(mode="l4", scheduler="url_hash")),
        f"{VS}.scheduler",
        "url_hash needs mode l7",
    ),
    (
        "L7-only persistence on l4",
        doc(service(mode="l4", persistence={"method": "active_cookie"})),
        f"{VS}.persistence.method",
        "active_cookie needs mode l7",
    ),
    (
        "dsr with another real server port",
        doc(service(mode="l4", forwarding="dsr", real_servers=[server(port=8080)])),
        f"{VS}.real_servers[0].port",
        "must be the VIP's port 80",
    ),
    (
        "tcp check on a udp service",
        doc(service(protocol="udp", check={"type": "tcp"})),
        f"{VS}.check.type",
        "a udp service is checked with icmp, dns or none",
    ),
    (
        "subnet_originating on l7",
        doc(service(subnet_originating=True)),
        f"{VS}.subnet_originating",
        "applies to mode l4 only",
    ),
    (
        "udp on l7",
        doc(service(protocol="udp", mode="l7")),
        f"{VS}.mode",
        "l7 proxies tcp only; a udp service needs mode l4",
    ),
    (
        "type remote_terminal on l4",
        doc(service(mode="l4", type="remote_terminal", check={"type": "tcp"})),
        f"{VS}.type",
        "remote_terminal needs mode l7",
    ),
    (
        "transparent",
        doc(service(transparent=True)),
        f"{VS}.transparent",
        "L7 transparency is not supported yet",
    ),
    (
        "scheduler adaptive on l4",
        doc(service(mode="l4", type="generic", scheduler="adaptive", adaptive={})),
        f"{VS}.scheduler",
        "adaptive is not supported yet on l4 services (it runs on l7 services)",
    ),
    (
        "scheduler weighted_response_time on l4",
        doc(service(mode="l4", type="generic", scheduler="weighted_response_time")),
        f"{VS}.scheduler",
        "weighted_response_time is not supported yet on l4 services (it runs on l7 services)",
    ),
    (
        "weighted_response_time without a check",
        doc(service(scheduler="weighted_response_time", check={"type": "none"})),
        f"{CHECK}.type",
        "weighted_response_time follows the health checks' response times: it needs a "
        "health check (not none)",
    ),
    (
        "check icmp",
        doc(service(check={"type": "icmp"})),
        f"{CHECK}.type",
        "icmp is not supported yet",
    ),
    ("check dns", doc(service(check={"type": "dns"})), f"{CHECK}.type", "dns is not supported yet"),
    ("check rdp", doc(service(check={"type": "rdp"})), f"{CHECK}.type", "rdp is not supported yet"),
    (
        "dsr on l7",
        doc(service(forwarding="dsr")),
        f"{VS}.forwarding",
        "applies to mode l4 only; an l7 service is always a full proxy",
    ),
    (
        "rs forwarding on l7",
        doc(service(real_servers=[server(forwarding="nat")])),
        f"{RS}.forwarding",
        "applies to mode l4 only",
    ),
    (
        "rs dsr on l7",
        doc(service(real_servers=[server(forwarding="dsr")])),
        f"{RS}.forwarding",
        "applies to mode l4 only",
    ),
    (
        "url_hash on generic",
        doc(service(type="generic", scheduler="url_hash")),
        f"{VS}.scheduler",
        "url_hash needs type: http",
    ),
] + [
    (
        f"persistence {method} on type {kind}",
        doc(service(type=kind, check={"type": "tcp"}, persistence={"method": method})),
        f"{PERSIST}.method",
        f"{method} needs type: {needs} (this service is type: {kind})",
    )
    for method, kind, needs in (
        ("active_cookie", "generic", "http"),
        ("server_cookie", "remote_terminal", "http"),
        ("super_http", "generic", "http"),
        ("hash_all_cookies", "generic", "http"),
        ("url_hash", "generic", "http"),
        ("host_header", "generic", "http"),
        ("query_item", "generic", "http"),
        ("selected_header", "generic", "http"),
        ("ssl_session_id", "http", "generic"),
        ("rdp_cookie", "generic", "remote_terminal"),
    )
]


@pytest.mark.parametrize(
    ("document", "path", "message"),
    [pytest.param(d, p, m, id=i) for i, d, p, m in UNSUPPORTED_CASES],
)
def test_not_supported_yet(document: Document, path: str, message: str) -> None:
    error = one_error(document)
    assert error.path == path
    assert message in error.message


@pytest.mark.parametrize(
    "scheduler",
    [
        "round_robin",
        "weighted_round_robin",
        "least_connection",
        "weighted_least_connection",
        "fixed_weighting",
        "source_ip_hash",
        "url_hash",
    ],
)
def test_supported_schedulers(scheduler: str) -> None:
    config = parse_document(doc(service(scheduler=scheduler)))
    assert config.virtual_services[0].scheduler is Scheduler(scheduler)


@pytest.mark.parametrize(
    "check",
    [
        {"type": "none"},
        {"type": "tcp"},
        {"type": "http"},
        {"type": "https"},
        {"type": "smtp"},
        {"type": "ftp"},
        {"type": "pop3"},
        {"type": "imap"},
        {"type": "ldap"},
        {"type": "binary", "send_hex": "00"},
    ],
)
def test_supported_checks(check: Document) -> None:
    parse_document(doc(service(check=check)))


def test_source_ip_hash_on_generic_is_fine() -> None:
    parse_document(doc(service(type="generic", scheduler="source_ip_hash")))


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"scheduler": "url_hash"},
        {"persistence": {"method": "ssl_session_id"}},
        {"mode": "l4"},
    ],
)
def test_type_auto_is_accepted_for_the_service_layer_to_resolve(fields: Document) -> None:
    vs = parse_document(doc(service(type="auto", **fields))).virtual_services[0]
    assert vs.type is ServiceType.auto


# -- defaults -------------------------------------------------------------------------------


def test_defaults_are_spelt_out() -> None:
    vs = parse_document(doc()).virtual_services[0]
    assert vs.protocol is Protocol.tcp
    assert vs.type is ServiceType.http
    assert vs.mode is Mode.l7
    assert vs.forwarding.value == "nat"
    assert vs.enabled is True
    assert vs.transparent is False
    assert vs.extra_ports == []
    assert vs.interface is None
    assert vs.scheduler is Scheduler.round_robin
    assert vs.persistence.method.value == "none"
    assert vs.persistence.timeout == 3600
    assert vs.persistence.cookie == "BASCULEID"
    assert vs.check.type is CheckType.http
    assert (vs.check.interval, vs.check.timeout, vs.check.rise, vs.check.fall) == (2, 1, 2, 3)
    assert vs.check.expect_status == "200-299,301,302,401"
    assert vs.check.path == "/"
    rs = vs.real_servers[0]
    assert (rs.weight, rs.state.value, rs.max_connections, rs.critical, rs.forwarding) == (
        1000,
        "enabled",
        0,
        False,
        None,
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, Mode.l7),
        ({"protocol": "tcp"}, Mode.l7),
        ({"protocol": "udp"}, Mode.l4),
        ({"protocol": "udp", "mode": None}, Mode.l4),
        ({"protocol": "tcp", "mode": "l4"}, Mode.l4),
    ],
)
def test_mode_defaults_from_the_protocol(fields: Document, expected: Mode) -> None:
    assert VirtualService.model_validate(service(**fields)).mode is expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, CheckType.http),
        ({"type": "http"}, CheckType.http),
        ({"type": "generic"}, CheckType.tcp),
        ({"type": "generic", "check": {"interval": 5}}, CheckType.tcp),
        ({"type": "http", "check": {"interval": 5}}, CheckType.http),
        ({"type": "http", "check": {"type": "tcp"}}, CheckType.tcp),
        ({"type": "generic", "check": {"type": "none"}}, CheckType.none),
        ({"type": "http", "check": None}, CheckType.http),
    ],
)
def test_check_type_defaults_from_the_service_type(fields: Document, expected: CheckType) -> None:
    config = parse_document(doc(service(**fields)))
    assert config.virtual_services[0].check.type is expected


def test_a_default_check_keeps_the_given_fields() -> None:
    check = parse_document(doc(service(check={"interval": 5}))).virtual_services[0].check
    assert (check.type, check.interval) == (CheckType.http, 5)


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


def test_a_single_expected_status_may_be_a_yaml_number() -> None:
    config = parse_document(doc(service(check={"expect_status": 204})))
    assert config.virtual_services[0].check.expect_status == "204"
