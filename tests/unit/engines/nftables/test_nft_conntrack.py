"""engines/nftables/conntrack.py: conntrack's table read, open connections counted per real
server, and the least-connection weights made of them."""

from __future__ import annotations

from l4_documents import config

from bascule.engines.nftables.conntrack import (
    LC_SCALE,
    Traffic,
    TrafficLedger,
    active_connections,
    client_loads,
    least_connection_weight,
    least_connection_weights,
    parse_conntrack,
    server_of,
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


def accounted(port: int, sent: tuple[int, int], answered: tuple[int, int], rs: str = "11") -> str:
    """A conntrack line with nf_conntrack_acct on: packets= bytes= after each direction."""
    return (
        f"ipv4 2 tcp 6 119 ESTABLISHED src=198.18.0.10 dst=198.18.0.100 sport={port} dport=80 "
        f"packets={sent[0]} bytes={sent[1]} src=198.18.0.{rs} dst=198.18.0.10 sport=80 "
        f"dport={port} packets={answered[0]} bytes={answered[1]} [ASSURED] mark=0 use=1\n"
    )


def test_parse_conntrack_reads_the_accounting_of_both_directions() -> None:
    (conn,) = parse_conntrack(accounted(40000, (5, 400), (4, 3000)))
    assert (conn.packets, conn.bytes, conn.reply_packets, conn.reply_bytes) == (5, 400, 4, 3000)
    # accounting off: no figures, zeros
    assert parse_conntrack(PROC)[0].bytes == 0


def test_server_of_finds_the_real_server_a_flow_was_nated_to() -> None:
    services = config().virtual_services
    first, _, udp, *_ = parse_conntrack(PROC)
    assert server_of(first, services) == ("web", RS1)
    assert server_of(udp, services) is None  # the service is TCP


def test_ledger_keeps_the_traffic_of_flows_conntrack_forgot() -> None:
    services = config().virtual_services
    ledger = TrafficLedger()
    read = ledger.read(
        parse_conntrack(
            accounted(40000, (5, 400), (4, 3000)) + accounted(40001, (3, 200), (2, 900), "12")
        ),
        services,
    )
    assert read == {("web", RS1): Traffic(5, 400, 4, 3000), ("web", RS2): Traffic(3, 200, 2, 900)}
    # 40000 grew, 40001 is gone: its last figures stay counted
    read = ledger.read(parse_conntrack(accounted(40000, (7, 600), (5, 4000))), services)
    assert read == {("web", RS1): Traffic(7, 600, 5, 4000), ("web", RS2): Traffic(3, 200, 2, 900)}
    # 40000's 4-tuple now belongs to a new flow (its figures started over): both count
    read = ledger.read(parse_conntrack(accounted(40000, (1, 60), (0, 0))), services)
    assert read[("web", RS1)] == Traffic(8, 660, 5, 4000)
    assert ledger.read([], services) == read  # nothing open: the totals stay


def _flow(client: str, port: int, state: str = "ESTABLISHED", vip: str = "198.18.0.100") -> str:
    return (
        f"ipv4 2 tcp 6 100 {state} src={client} dst={vip} sport={port} dport=80 "
        f"src=198.18.0.11 dst={client} sport=80 dport={port} [ASSURED] mark=0 use=2\n"
    )


def test_client_loads_count_open_and_new_connections_per_client() -> None:
    vs = config().virtual_services[0]
    busy, calm, held = "198.18.0.20", "198.18.0.21", "198.18.0.22"
    before = parse_conntrack(_flow(busy, 1000) + _flow(calm, 2000))
    after = parse_conntrack(
        _flow(busy, 1000)
        + _flow(busy, 1001)
        + _flow(busy, 1002, "TIME_WAIT")  # new and closed since: counts as new, not open
        + _flow(calm, 2000)
        + _flow(calm, 2001, vip="198.18.0.101")  # another VIP: not this service's
    )
    loads = client_loads(before, after, vs, held=[held], interval=0.5, top=10)
    assert [(c.client, c.connections, c.connections_per_second, c.limited) for c in loads] == [
        (busy, 2, 4, False),  # 2 new in half a second
        (calm, 1, 0, False),
        (held, 0, 0, True),  # dropped lately, no flow left: still shown, limited
    ]
    assert len(client_loads(before, after, vs, held=[], interval=1, top=1)) == 1
