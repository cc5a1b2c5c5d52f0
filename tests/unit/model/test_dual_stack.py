"""Dual-stack services (``address6``): what the model accepts and refuses, and port clashes
checked on each VIP of a service."""

from __future__ import annotations

from model_documents import assert_refused, doc, errors_of, service

from bascule.model import parse_document

V6 = "2001:2::100"


def test_a_dual_stack_service_has_both_vips_in_order() -> None:
    vs = parse_document(doc(service(address6="2001:2:0::0100"))).virtual_services[0]
    assert vs.address6 == V6  # canonical, as address
    assert vs.addresses == ("198.18.0.100", V6)
    assert parse_document(doc(service())).virtual_services[0].addresses == ("198.18.0.100",)


def test_address6_must_be_ipv6() -> None:
    assert_refused(
        doc(service(address6="198.18.0.101")),
        "virtual_services[0]",
        "address6: must be an IPv6 address",
    )


def test_address6_needs_an_ipv4_address_beside_it() -> None:
    assert_refused(
        doc(service(address="2001:2::101", address6=V6)),
        "virtual_services[0]",
        "a dual-stack service's address is its IPv4 VIP and address6 its IPv6 one",
    )


def test_a_starttls_service_has_one_vip() -> None:
    starttls = service(
        address6=V6,
        type="starttls",
        starttls="smtp",
        port=25,
        tls={"certificates": ["mail"]},
    )
    message = "a starttls service listens on one VIP"
    errors = [e for e in _errors(doc(starttls)) if message in e]
    assert errors, _errors(doc(starttls))


def test_the_ipv6_vip_clashes_with_another_service_on_it() -> None:
    assert_refused(
        doc(service(address6=V6), service(name="other", address=V6)),
        "virtual_services[1].port",
        f"{V6} tcp port 80 is already used by virtual service 'web'",
    )
    assert_refused(
        doc(service(name="other", address=V6), service(address6=V6)),
        "virtual_services[1].port",
        f"{V6} tcp port 80 is already used by virtual service 'other'",
    )
    # and against the IPv6 wildcard, but not against the IPv4 one
    assert_refused(
        doc(service(address6=V6), service(name="any6", address="::")),
        "virtual_services[1].port",
        "is already used by virtual service 'web'",
    )
    parse_document(doc(service(address6=V6), service(name="other", address="2001:2::101")))


def test_two_dual_stack_services_on_other_ports_or_vips_do_not_clash() -> None:
    parse_document(
        doc(
            service(address6=V6),
            service(name="tls", address6=V6, port=443),
            service(name="next", address="198.18.0.101", address6="2001:2::101"),
        )
    )


def _errors(document: dict[str, object]) -> list[str]:
    return [f"{e.path}: {e.message}" for e in errors_of(document)]
