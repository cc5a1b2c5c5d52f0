"""HAProxy's descriptors, counted from the view one kind at a time, and the maxconn that fits.

The count against the real binary (``show info``'s Maxsock) is
tests/integration/test_haproxy_descriptors.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from bascule.engines.haproxy.descriptors import (
    MASTER_CLI,
    MIN_MAXCONN,
    PER_PEER,
    PER_THREAD,
    RESERVED,
    STATS_CONNECTIONS,
    Descriptors,
    DescriptorShortage,
    listeners_of,
)
from bascule.engines.haproxy.peers import PeersListener
from bascule.engines.haproxy.view import HaproxyGlobals, build_view
from bascule.model import parse_document

GLOBALS = HaproxyGlobals(stats_socket="/run/bascule/haproxy.sock", maxconn=4096, nbthread=2)
# what any configuration holds: the reserve, the stats socket and its connections, the
# master CLI, two threads
BASE = RESERVED + 1 + STATS_CONNECTIONS + MASTER_CLI + 2 * PER_THREAD


def service(index: int = 0, **fields: Any) -> dict[str, Any]:
    return {
        "name": f"web-{index}",
        "address": "198.18.0.100",
        "port": 8000 + index,
        "check": {"type": "none"},
        "real_servers": [{"address": f"198.18.0.{n + 4}", "port": 80} for n in range(3)],
        **fields,
    }


def descriptors(*services: dict[str, Any], globals_: HaproxyGlobals = GLOBALS) -> Descriptors:
    return build_view(parse_document({"virtual_services": list(services)}), globals_).descriptors


def test_an_empty_configuration_holds_only_haproxys_own() -> None:
    counted = descriptors()
    assert (counted.listeners, counted.checks) == (0, 0)
    assert counted.fixed == BASE == 39  # measured: show info's Maxsock minus 2 x maxconn


def test_each_bind_address_is_one_listener() -> None:
    assert descriptors(service(0), service(1), service(2)).fixed == BASE + 3


def test_a_port_range_is_one_listener_per_port() -> None:
    counted = descriptors(service(extra_ports=["9000-9009", 9100]))
    assert counted.listeners == 1 + 10 + 1
    assert listeners_of("198.18.0.1:9000-9009 accept-proxy") == 10
    assert listeners_of("[2001:2::1]:443 ssl crt-list '/x'") == 1
    assert listeners_of("[::]:80-81 v6only") == 2


def test_a_dual_stack_service_binds_each_vip() -> None:
    assert descriptors(service(address6="2001:2::100")).listeners == 2


def test_each_checked_server_holds_one_and_a_check_port_another() -> None:
    assert descriptors(service(check={"type": "tcp"})).checks == 3
    assert descriptors(service(check={"type": "tcp", "port": 8080})).checks == 6
    assert descriptors(service(check={"type": "none"})).checks == 0


def test_the_peers_listener_is_a_listener_and_its_peer_holds_connections() -> None:
    peered = HaproxyGlobals(
        stats_socket="/s", maxconn=10, nbthread=2, local_peer=PeersListener(address="/p.sock")
    )
    persisted = service(persistence={"method": "source_ip"})
    assert descriptors(persisted, globals_=peered).listeners == 2
    # its one peer (this process) may hold 3 connections
    assert descriptors(persisted, globals_=peered).peers == 1
    assert descriptors(persisted, globals_=peered).fixed == BASE + 2 + PER_PEER
    # no stick table, no peers section
    assert descriptors(service(), globals_=peered).listeners == 1
    assert listeners_of("'unix@/p.sock' mode 600") == 1
    assert listeners_of("'198.18.0.1:7000' ssl crt '/c.pem'") == 1


def test_each_thread_holds_a_poller_and_a_wake_up_pipe() -> None:
    one = HaproxyGlobals(stats_socket="/s", maxconn=10, nbthread=1)
    four = HaproxyGlobals(stats_socket="/s", maxconn=10, nbthread=4, cpus=(0, 1, 2, 3))
    assert descriptors(globals_=four).fixed - descriptors(globals_=one).fixed == 3 * PER_THREAD


def test_maxconn_fills_the_limit_two_descriptors_per_connection() -> None:
    counted = Descriptors(listeners=1000, checks=0, nbthread=2)
    maxconn = counted.fit(20000)
    assert counted.maxsock(maxconn) <= 20000 < counted.maxsock(maxconn + 1)
    assert counted.fit(20000, ceiling=500) == 500


def test_a_configuration_that_leaves_too_little_room_is_refused_naming_its_parts() -> None:
    counted = Descriptors(listeners=1000, checks=10000, nbthread=2)
    assert counted.fit(counted.fixed + 2 * MIN_MAXCONN) == MIN_MAXCONN
    with pytest.raises(DescriptorShortage) as refused:
        counted.fit(counted.fixed + 2 * MIN_MAXCONN - 1)
    message = str(refused.value)
    for part in ("1000 listeners", "10000 health checks", "room for 99 connections", "NOFILE"):
        assert part in message


def test_the_view_sizes_maxconn_from_the_descriptor_limit() -> None:
    limited = HaproxyGlobals(
        stats_socket="/s", maxconn=1_000_000, nbthread=2, descriptor_limit=20000
    )
    document = {"virtual_services": [service(i, check={"type": "tcp"}) for i in range(10)]}
    view = build_view(parse_document(document), limited)
    assert view.descriptors.fixed == BASE + 10 + 30
    assert view.maxconn == (20000 - BASE - 40) // 2
    assert f"maxconn {view.maxconn}" in view.global_settings
    # without a limit, maxconn is the one given
    assert build_view(parse_document(document), GLOBALS).maxconn == 4096
