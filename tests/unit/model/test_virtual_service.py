"""A virtual service's fields (model/virtual_service.py, model/types.py): types, ranges,
normalised values, defaults, and the check a service gets when it names none."""

from __future__ import annotations

import pytest
from model_documents import (
    VS,
    Document,
    accepted,
    doc,
    refused_at_their_paths,
    service,
)

from bascule.model import (
    CheckType,
    Mode,
    Protocol,
    Scheduler,
    ServiceType,
    VirtualService,
    parse_document,
)

BAD_FIELDS: list[tuple[str, Document, str, str]] = [
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
    ("port 0", doc(service(port=0)), f"{VS}.port", "must be between 1 and 65535"),
    ("port 65536", doc(service(port=65536)), f"{VS}.port", "must be between 1 and 65535"),
    ("port negative", doc(service(port=-1)), f"{VS}.port", "must be between 1 and 65535"),
    ("port true", doc(service(port=True)), f"{VS}.port", "not true/false"),
    ("port text", doc(service(port="http")), f"{VS}.port", "must be an integer"),
    ("port float", doc(service(port=80.5)), f"{VS}.port", "must be a whole number"),
    ("port missing", doc({"name": "web", "address": "198.18.0.100"}), f"{VS}.port", "required"),
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
    ("real_servers not a list", doc(service(real_servers={})), f"{VS}.real_servers", "a list"),
    ("protocol", doc(service(protocol="sctp")), f"{VS}.protocol", "'tcp' or 'udp'"),
    ("type", doc(service(type="ftp")), f"{VS}.type", "must be one of"),
    ("mode", doc(service(mode="l3")), f"{VS}.mode", "'l7' or 'l4'"),
    ("scheduler", doc(service(scheduler="random")), f"{VS}.scheduler", "'round_robin'"),
    ("enabled", doc(service(enabled="maybe")), f"{VS}.enabled", "must be true or false"),
    ("interface", doc(service(interface="bad name")), f"{VS}.interface", "interface name"),
    ("unknown service field", doc(service(colour="red")), f"{VS}.colour", "not a known field"),
    (
        "adaptive without its scheduler",
        doc(service(adaptive={})),
        f"{VS}.adaptive",
        "only used with scheduler: adaptive",
    ),
]

GOOD_VALUES: list[tuple[str, Document]] = [
    ("port 1", doc(service(port=1))),
    ("port 65535", doc(service(port=65535))),
    ("extra range of one port", doc(service(extra_ports=["9000-9000"]))),
    ("extra ports and ranges", doc(service(extra_ports=[8080, "9000-9010", "8443"]))),
    ("name 63 characters", doc(service(name="a" * 63))),
    ("name one character", doc(service(name="a"))),
    ("ipv6 vip", doc(service(address="2001:db8::100"))),
    ("no real servers", doc(service(real_servers=[]))),
]


test_a_bad_field_is_reported_at_its_path = refused_at_their_paths(BAD_FIELDS)
test_values_at_the_edges_of_their_ranges_are_accepted = accepted(GOOD_VALUES)


def test_normalised_values() -> None:
    vs = parse_document(
        doc(service(address="2001:DB8:0::100", extra_ports=["8080", "9000-9010"]))
    ).virtual_services[0]
    assert vs.address == "2001:db8::100"
    assert vs.extra_ports == [8080, "9000-9010"]


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
