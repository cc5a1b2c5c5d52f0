"""engines/nftables/conntrack.py: conntrack's table read, open connections counted per real
server, and the least-connection weights made of them."""

from __future__ import annotations

from l4_documents import config

from bascule.engines.nftables.conntrack import (
    LC_SCALE,
    active_connections,
    least_connection_weight,
    least_connection_weights,
    parse_conntrack,
)

PROC = """\
ipv4     2 tcp      6 431999 ESTABLISHED src=198.18.0.10 dst=198.18.0.100 sport=40000 \
dport=80 src=198.18.0.11 dst=198.18.0.10 sport=80 dport=40000 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 119 TIME_WAIT src=198.18.0.10 dst=198.18.0.100 sport=40001 dport=80 \
src=198.18.0.12 dst=198.18.0.10 sport=80 dport=40001 [ASSURED] mark=0 zone=0 use=2
ipv4     2 udp      17 29 src=198.18.0.10 dst=198.18.0.100 sport=5000 dport=53 \
src=198.18.0.12 dst=198.18.0.10 sport=53 dport=5000 mark=0 zone=0 use=2
ipv4     2 icmp     1 29 src=198.18.0.10 dst=198.18.0.11 type=8 code=0 id=1 src=198.18.0.11 \
dst=198.18.0.10 type=0 code=0 id=1 mark=0 use=1
"""
RS1, RS2, RS3 = "198.18.0.11:80", "198.18.0.12:80", "198.18.0.13:80"


def test_parse_conntrack_keeps_tcp_and_udp() -> None:
    connections = parse_conntrack(PROC)
    assert [c.protocol for c in connections] == ["tcp", "tcp", "udp"]
    assert connections[0].state == "ESTABLISHED"
    assert connections[0].reply_source == "198.18.0.11"
    assert connections[2].state is None
    assert parse_conntrack("ipv4 2 tcp 6 1 ESTABLISHED src=198.18.0.10 garbage\n") == []


def test_active_connections_count_open_tcp_and_any_udp_per_server() -> None:
    connections = parse_conntrack(PROC)
    tcp = active_connections(connections, config().virtual_services)
    assert tcp == {("web", RS1): 1, ("web", RS2): 0, ("web", RS3): 0}  # TIME_WAIT is not open
    udp = config(protocol="udp", port=53).virtual_services
    assert active_connections(connections, udp)[("web", "198.18.0.12:80")] == 1


def test_least_connection_formula() -> None:
    plain = config(scheduler="least_connection").virtual_services[0]
    weighted = config(scheduler="weighted_least_connection").virtual_services[0]
    assert least_connection_weight(plain, 3, 0) == LC_SCALE
    assert least_connection_weight(plain, 3, 3) == LC_SCALE // 4
    assert least_connection_weight(weighted, 3, 1) == LC_SCALE * 3 // 2
    assert least_connection_weight(plain, 1, 10**9) == 1


def test_least_connection_weights_per_server_with_the_runtime_weights() -> None:
    services = config(scheduler="weighted_least_connection").virtual_services
    active = {("web", RS1): 3, ("web", RS2): 0}
    weights = {("web", RS1): 2, ("web", RS2): 1}
    assert least_connection_weights(services, active, weights) == {
        ("web", RS1): LC_SCALE * 2 // 4,
        ("web", RS2): LC_SCALE,
        ("web", RS3): LC_SCALE,  # no runtime weight, no connection: 1 and 0
    }
