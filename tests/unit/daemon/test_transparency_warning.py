"""The warning about a transparent service's real server that does not route back (pure)."""

from __future__ import annotations

from bascule.daemon.status import transparency_warning
from bascule.engines.base import Health, ServerObservation
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
