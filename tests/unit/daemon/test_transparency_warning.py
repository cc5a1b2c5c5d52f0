"""The warning about a transparent service's real server that does not route back (pure)."""

from __future__ import annotations

import ipaddress

from bascule.daemon.status import build_status, route_back_warning, transparency_warning
from bascule.engines.base import EngineObservation, Health, ServerObservation
from bascule.model import RealServerState, VirtualService, parse_document
from bascule.reconcile.status import ServerStatus


def service(transparent: bool) -> VirtualService:
    document = {
        "virtual_services": [
            {
                "name": "web",
                "address": "198.18.0.100",
                "port": 80,
                "transparent": transparent,
                "real_servers": [{"address": "198.18.0.11", "port": 80}],
            }
        ]
    }
    return parse_document(document).virtual_services[0]


def seen(failed: int, attempts: int) -> ServerObservation:
    return ServerObservation(
        weight=1,
        state=RealServerState.enabled,
        health=Health.up,
        total_connections=attempts,
        connection_errors=failed,
    )


def test_most_attempts_failing_while_checks_pass_is_warned_about() -> None:
    warning = transparency_warning(service(True), ServerStatus.up, seen(4, 4))
    assert warning is not None
    assert "4 of 4 connection attempts" in warning
    assert "does not route its replies back through the load balancer" in warning
    assert "transparent: false" in warning


def test_no_warning_without_cause() -> None:
    assert transparency_warning(service(False), ServerStatus.up, seen(4, 4)) is None
    assert transparency_warning(service(True), ServerStatus.down, seen(4, 4)) is None
    assert transparency_warning(service(True), ServerStatus.up, None) is None
    assert transparency_warning(service(True), ServerStatus.up, seen(0, 0)) is None
    assert transparency_warning(service(True), ServerStatus.up, seen(1, 100)) is None


# -- the static part: a real server on a network the load balancer is connected to -----------

LAN = frozenset({ipaddress.ip_network("198.18.0.0/24"), ipaddress.ip_network("2001:2::/64")})


def test_a_server_on_a_connected_network_is_told_to_route_back() -> None:
    vs = service(True)
    warning = route_back_warning(vs, vs.real_servers[0], None, LAN)
    assert warning is not None
    assert "198.18.0.11 is on 198.18.0.0/24" in warning
    assert "default route must point back through the load balancer" in warning
    # until the traffic shows it: connections from the clients' addresses opened
    assert route_back_warning(vs, vs.real_servers[0], seen(0, 0), LAN) is not None
    assert route_back_warning(vs, vs.real_servers[0], seen(0, 10), LAN) is None
    assert route_back_warning(vs, vs.real_servers[0], seen(6, 10), LAN) is not None


def test_no_route_back_warning_without_cause() -> None:
    vs = service(True)
    server = vs.real_servers[0]
    assert route_back_warning(service(False), server, None, LAN) is None
    assert route_back_warning(vs, server, None, frozenset()) is None
    elsewhere = frozenset({ipaddress.ip_network("198.19.0.0/24")})
    assert route_back_warning(vs, server, None, elsewhere) is None
    # a host address (a VIP, /32) is no network a server sits on
    host = frozenset({ipaddress.ip_network("198.18.0.11/32")})
    assert route_back_warning(vs, server, None, host) is None


def test_the_passive_warning_comes_first_in_the_status() -> None:
    document = {"virtual_services": [service(True).model_dump(mode="json")]}
    config = parse_document(document)
    observation = EngineObservation(running=True, servers={("web", "198.18.0.11:80"): seen(4, 4)})
    report = build_status(
        config, observation, revision=1, applied_revision=1, apply_ok=True, apply_message="",
        engine={}, connected=LAN,
    )  # fmt: skip
    warning = report.virtual_services[0].real_servers[0].warning
    assert warning is not None and "4 of 4 connection attempts" in warning
    quiet = build_status(
        config, EngineObservation(running=True), revision=1, applied_revision=1, apply_ok=True,
        apply_message="", engine={}, connected=LAN,
    )  # fmt: skip
    assert "is on 198.18.0.0/24" in str(quiet.virtual_services[0].real_servers[0].warning)
