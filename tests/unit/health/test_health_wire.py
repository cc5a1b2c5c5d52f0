"""Packet formats of the probes (pure): DNS, LDAP bind, RDP connect, SNI, hosts."""

from __future__ import annotations

import struct

import pytest

from bascule.health import wire
from bascule.health.probes import Endpoint, dns_question, endpoint_for
from bascule.model.check import HealthCheck
from bascule.model.real_server import RealServer
from bascule.model.virtual_service import VirtualService


def test_a_dns_query_for_the_root_ns() -> None:
    query = wire.build_dns_query(0x1234)
    # id, RD, one question; the root name is one zero octet; NS, IN
    assert query == bytes.fromhex("1234 0100 0001 0000 0000 0000 00 0002 0001")


def test_a_dns_query_for_a_name() -> None:
    query = wire.build_dns_query(7, "www.Example.com.", wire.DNS_TYPE_A)
    assert query[12:] == b"\x03www\x07Example\x03com\x00" + struct.pack("!HH", 1, 1)


@pytest.mark.parametrize("name", ["a" * 64 + ".com", ".".join(["abcdefgh"] * 40)])
def test_dns_names_that_do_not_fit_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="DNS"):
        wire.encode_dns_name(name)


def response_to(query: bytes, *, flags: int = 0x8180, ident: int | None = None) -> bytes:
    head = struct.pack("!H", ident if ident is not None else struct.unpack("!H", query[:2])[0])
    answer = bytes.fromhex("c00c 0002 0001 00000e10 0002 c00c")  # a compressed NS record
    return head + struct.pack("!HHHHH", flags, 1, 1, 0, 0) + query[12:] + answer


def test_a_well_formed_response_gives_its_rcode() -> None:
    query = wire.build_dns_query(99, "example.com", wire.DNS_TYPE_A)
    assert wire.parse_dns_response(response_to(query), query) == 0
    assert wire.parse_dns_response(response_to(query, flags=0x8185), query) == 5  # REFUSED
    upper = response_to(query).replace(b"example", b"EXAMPLE")  # 0x20 case randomisation
    assert wire.parse_dns_response(upper, query) == 0


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda q, r: r[:11], "shorter than a DNS header"),
        (lambda q, r: response_to(q, ident=1), "does not match"),
        (lambda q, r: response_to(q, flags=0x0100), "QR bit"),
        (lambda q, r: r[:20], "truncated"),
        (lambda q, r: r.replace(b"example", b"exbmple"), "another question"),
    ],
)
def test_malformed_responses_are_refused(mangle: object, message: str) -> None:
    query = wire.build_dns_query(99, "example.com", wire.DNS_TYPE_A)
    data = mangle(query, response_to(query))  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        wire.parse_dns_response(data, query)


def test_ldap_bind_results() -> None:
    success = bytes.fromhex("300c02010161070a010004000400")
    assert wire.ldap_bind_result(success) == 0
    invalid_credentials = bytes.fromhex("300c02010161070a013104000400")
    assert wire.ldap_bind_result(invalid_credentials) == 49
    long_form = bytes.fromhex("30840000000c0201016184000000070a010004000400")
    assert wire.ldap_bind_result(long_form) == 0
    for bad in (b"", b"HTTP/1.1 400", bytes.fromhex("300c020101"), bytes.fromhex("3003020101")):
        with pytest.raises(ValueError):
            wire.ldap_bind_result(bad)


def test_rdp_connection_confirm() -> None:
    assert len(wire.RDP_CONNECTION_REQUEST) == 19
    assert wire.is_rdp_connection_confirm(bytes.fromhex("030000130ed00000123400"))
    assert not wire.is_rdp_connection_confirm(bytes.fromhex("030000130ee0"))
    assert not wire.is_rdp_connection_confirm(b"SSH-2.0")


def test_the_question_of_a_dns_check() -> None:
    assert dns_question(HealthCheck(type="dns")) == (".", wire.DNS_TYPE_NS)
    assert dns_question(HealthCheck(type="dns", host="ns1.example:53")) == ("ns1.example", 1)


def service(**fields: object) -> VirtualService:
    base: dict[str, object] = {"name": "svc", "address": "198.18.0.100", "port": 80, "mode": "l4"}
    return VirtualService.model_validate({**base, **fields})


def test_the_endpoint_of_a_check() -> None:
    rs = RealServer(address="198.18.0.11", port=8080)
    http = service(check={"type": "http"})
    assert endpoint_for(http, rs) == Endpoint(address="198.18.0.11", port=8080, host="198.18.0.100")
    https = service(port=443, check={"type": "https", "port": 8443})
    assert endpoint_for(https, rs).host == "198.18.0.100" and endpoint_for(https, rs).port == 8443
    assert endpoint_for(service(port=8000, check={"type": "http"}), rs).host == "198.18.0.100:8000"
    named = service(check={"type": "http", "host": "www.example.com"})
    assert endpoint_for(named, rs).host == "www.example.com"
    v6 = service(address="2001:db8::100", port=80, check={"type": "http"})
    assert endpoint_for(v6, rs).host == "[2001:db8::100]"
    assert endpoint_for(service(port=8000), rs).host is None  # a tcp check sends no Host
