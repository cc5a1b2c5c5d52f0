"""The per-mode capability rules (model/modes.py): what an l4 or l7 service, a udp one or a
service type allows, and what this release has not built yet ("not supported yet")."""

from __future__ import annotations

import pytest
from model_documents import (
    CHECK,
    PERSIST,
    RS,
    VS,
    Document,
    doc,
    refused_at_their_paths,
    server,
    service,
)

from bascule.model import Scheduler, ServiceType, parse_document

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
        "proxy_protocol on l4",
        doc(service(mode="l4", type="generic", proxy_protocol="v2")),
        f"{VS}.proxy_protocol",
        "applies to mode l7 only: an l4 service forwards packets, it writes and reads no "
        "PROXY protocol header",
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


test_not_supported_yet = refused_at_their_paths(UNSUPPORTED_CASES)


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
