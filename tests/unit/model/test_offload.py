"""The ``tls`` section inside a virtual service: ``type: https``, ``type: starttls``, and what
SSL offload asks of a service and of the document (model/offload.py, model/modes.py)."""

from __future__ import annotations

from typing import Any

import pytest

from bascule.errors import FieldError, InvalidConfiguration
from bascule.model import CheckType, Configuration, ServiceType, StartTls, parse_document
from bascule.model.capabilities import SERVICE_TYPES, STARTTLS_PROTOCOLS, TlsUse
from bascule.model.tls import starttls_relay

Document = dict[str, Any]
VS = "virtual_services[0]"


def service(**fields: Any) -> Document:
    base: Document = {
        "name": "shop",
        "address": "198.18.0.100",
        "port": 443,
        "real_servers": [{"address": "198.18.0.4", "port": 80}],
        "tls": {"certificates": ["shop"]},
    }
    return {**base, **fields}


def mail(protocol: str | None = "smtp", **fields: Any) -> Document:
    return service(
        **{
            "name": "mail",
            "port": 25,
            "type": "starttls",
            "starttls": protocol,
            "real_servers": [{"address": "198.18.0.4", "port": 25}],
            **fields,
        }
    )


def parsed(*services: Document) -> Configuration:
    return parse_document({"virtual_services": list(services)})


def errors_of(*services: Document) -> list[FieldError]:
    with pytest.raises(InvalidConfiguration) as caught:
        parse_document({"virtual_services": list(services)})
    return list(caught.value.errors)


def one_error(*services: Document) -> FieldError:
    errors = errors_of(*services)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def test_every_service_type_and_starttls_protocol_has_its_facts() -> None:
    assert set(SERVICE_TYPES) == set(ServiceType)
    assert set(STARTTLS_PROTOCOLS) == set(StartTls)
    assert {t for t in ServiceType if t.tls is TlsUse.optional} == {
        ServiceType.http,
        ServiceType.generic,
    }
    assert ServiceType.starttls.tls is TlsUse.required
    assert [t for t in ServiceType if t.reads_http] == [ServiceType.http]


def test_https_is_stored_as_http_with_tls() -> None:
    config = parsed(service(type="https"))
    vs = config.virtual_services[0]
    assert vs.type is ServiceType.http
    assert vs.tls is not None and vs.tls.certificates == ["shop"]
    exported = config.to_document()["virtual_services"][0]
    assert exported["type"] == "http"
    assert exported["tls"]["certificates"] == ["shop"]
    # the export parses back to the same document
    assert parse_document(config.to_document()) == config


def test_https_without_tls_names_the_tls_field() -> None:
    error = one_error(service(type="https", tls=None))
    assert error.path == f"{VS}.tls"
    assert "certificates" in error.message


def test_generic_with_tls_is_tls_terminated_tcp() -> None:
    vs = parsed(service(type="generic", port=636)).virtual_services[0]
    assert vs.type is ServiceType.generic and vs.tls is not None
    assert vs.check.type is CheckType.tcp


def test_tls_is_refused_on_l4_with_the_reason() -> None:
    error = one_error(service(mode="l4", type="generic"))
    assert error.path == f"{VS}.tls"
    assert "mode l7" in error.message


@pytest.mark.parametrize(
    ("kind", "words"), [("remote_terminal", "RDP"), ("auto", "choose type http")]
)
def test_types_that_cannot_take_tls(kind: str, words: str) -> None:
    error = one_error(service(type=kind))
    assert error.path == f"{VS}.tls"
    assert words in error.message


@pytest.mark.parametrize("field", ["http2", "hsts", "redirect_http"])
def test_what_needs_http_is_refused_on_generic(field: str) -> None:
    value = 600 if field == "hsts" else True
    error = one_error(service(type="generic", tls={"certificates": ["shop"], field: value}))
    assert error.path == f"{VS}.tls.{field}"
    assert "type http" in error.message


def test_ssl_session_id_is_refused_when_tls_ends_here() -> None:
    error = one_error(
        service(type="generic", persistence={"method": "ssl_session_id"}),
    )
    assert error.path == f"{VS}.persistence.method"
    assert "source_ip" in error.message


@pytest.mark.parametrize("protocol", list(StartTls))
def test_starttls_service_and_its_default_check(protocol: StartTls) -> None:
    vs = parsed(mail(protocol.value)).virtual_services[0]
    assert vs.type is ServiceType.starttls
    assert vs.starttls is protocol
    assert vs.check.type is protocol.check
    assert vs.check.type.banner is not None


def test_starttls_needs_tls_and_a_protocol() -> None:
    errors = errors_of(mail(None, tls=None))
    assert {e.path for e in errors} == {f"{VS}.tls", f"{VS}.starttls"}


def test_starttls_protocol_only_with_type_starttls() -> None:
    error = one_error(service(starttls="smtp"))
    assert error.path == f"{VS}.starttls"


def test_what_a_starttls_service_cannot_do() -> None:
    errors = errors_of(
        mail(
            extra_ports=[587],
            scheduler="source_ip_hash",
            persistence={"method": "source_ip"},
            tls={
                "certificates": ["shop"],
                "client_certificate": "required",
                "client_ca": "corp",
                "reencrypt": True,
            },
        )
    )
    assert {e.path for e in errors} == {
        f"{VS}.extra_ports",
        f"{VS}.scheduler",
        f"{VS}.persistence.method",
        f"{VS}.tls.client_certificate",
        f"{VS}.tls.reencrypt",
    }
    assert any("hides the client's address" in e.message for e in errors)


def test_starttls_is_l7_only() -> None:
    errors = errors_of(mail(mode="l4"))
    assert f"{VS}.type" in {e.path for e in errors}


def test_redirect_http_needs_port_80_of_the_vip() -> None:
    redirecting = service(tls={"certificates": ["shop"], "redirect_http": True})
    plain = service(name="www", port=80, tls=None, type="http")
    error = one_error(redirecting, plain)
    assert error.path == f"{VS}.tls.redirect_http"
    assert "'www'" in error.message
    # its own port 80
    error = one_error(service(extra_ports=[80], tls={"certificates": ["s"], "redirect_http": True}))
    assert "itself" in error.message
    # a wildcard VIP on port 80 takes every address
    error = one_error(redirecting, {**plain, "address": "0.0.0.0"})
    assert error.path == f"{VS}.tls.redirect_http"
    # two services redirecting on one VIP: the second is refused
    second = {**redirecting, "name": "shop2", "port": 8443}
    error = one_error(redirecting, second)
    assert error.path == "virtual_services[1].tls.redirect_http"
    # another VIP, or udp, is no clash
    parsed(redirecting, {**plain, "address": "198.18.0.101"})
    parsed(redirecting, {**plain, "protocol": "udp", "mode": "l4", "type": "generic"})


def test_starttls_relays_are_loopback_addresses_of_their_own() -> None:
    address, port = starttls_relay("mail", 25)
    assert address.startswith("127.") and not address.startswith("127.0.0.")
    assert port == 25
    assert starttls_relay("mail", 25) == (address, port)
    assert starttls_relay("imap", 25) != (address, port)
