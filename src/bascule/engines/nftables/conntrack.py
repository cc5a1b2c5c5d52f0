"""Connection tracking as the L4 engine reads it: open connections and least-connection weights.

Where this sits in the flow of a change: NAT services' connections are tracked by the kernel
(conntrack), never by Bascule. About once a second the engine reads conntrack's table through
its shell (``/proc/net/nf_conntrack`` or ``conntrack -L``); ``parse_conntrack`` reads it,
``active_connections`` counts the open connections each real server holds (the status shows
them) and, for the schedulers that count connections (``Scheduler.counts_connections``),
``least_connection_weights`` turns the counts into the weights the view schedules with::

    least_connection           w = round(LC_SCALE / (1 + active))            (at least 1)
    weighted_least_connection  w = round(LC_SCALE * weight / (1 + active))   (at least 1)

where ``weight`` is the server's runtime weight, for the schedulers whose weights count
(``Scheduler.weighted``). New connections are then spread in inverse proportion to the open
ones. DSR services have no conntrack entries on the load balancer (it never sees a reply):
they schedule by Maglev and count 0 here.

Traffic. A NAT packet of an established connection walks no Bascule rule (``rules.py``): the
bytes each real server receives and sends are conntrack's own accounting (``nf_conntrack_acct``,
which the engine turns on in the load balancer's namespace), read from the same table.
Conntrack forgets a flow some time after it ends (TCP's TIME_WAIT: 120 s), so
``TrafficLedger`` keeps the last figures of the flows it saw and, when one is gone (or its
4-tuple is used again by a new flow, whose figures start over), adds them to the server's
totals for good. The totals are exact for every flow the engine saw at least once before it was
forgotten, that is when the table is read more often than flows are forgotten (the statistics
sampler reads it every 10 s). They start at the open flows' figures when the daemon starts.
Pure: no I/O.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bascule.engines.base import ClientLoad
from bascule.model import RealServer, VirtualService
from bascule.reconcile.planner import ServerRef

LC_SCALE = 1000


@dataclass(frozen=True, kw_only=True)
class Connection:
    """One conntrack entry: the original direction (client -> VIP) and the reply's source."""

    protocol: str
    state: str | None  # TCP state; None for UDP
    source: str
    destination: str
    source_port: int
    destination_port: int
    reply_source: str
    reply_source_port: int
    # conntrack's accounting (0 while nf_conntrack_acct is off): original direction, reply
    packets: int = 0
    bytes: int = 0
    reply_packets: int = 0
    reply_bytes: int = 0


_TCP_STATES = {
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
    "SYN_SENT2",
}
ACTIVE_TCP_STATES = {"SYN_RECV", "ESTABLISHED"}


# One entry: the protocol, the TCP state if any, the original tuple (and its accounting, when
# on), flags such as [UNREPLIED], then the reply tuple (and its accounting).
_ENTRY = re.compile(
    r"\b(tcp|udp)\s+\d+\s+\d+\s+(?:([A-Z_0-9]+)\s+)?"
    r"src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)(?: packets=(\d+) bytes=(\d+))?"
    r"(?: \[[A-Z]+\])* src=(\S+) dst=\S+ sport=(\d+) dport=\d+(?: packets=(\d+) bytes=(\d+))?"
)


def parse_conntrack(text: str) -> list[Connection]:
    """Entries of ``/proc/net/nf_conntrack`` or ``conntrack -L`` (TCP and UDP only)."""
    found: list[Connection] = []
    for match in _ENTRY.finditer(text):
        protocol, state, source, destination, sport, dport = match.group(1, 2, 3, 4, 5, 6)
        packets, size, reply_source, reply_sport, reply_packets, reply_size = match.group(
            7, 8, 9, 10, 11, 12
        )
        found.append(
            Connection(
                protocol=protocol,
                state=(state if state in _TCP_STATES else None) if protocol == "tcp" else None,
                source=source,
                destination=destination,
                source_port=int(sport),
                destination_port=int(dport),
                reply_source=reply_source,
                reply_source_port=int(reply_sport),
                packets=int(packets or 0),
                bytes=int(size or 0),
                reply_packets=int(reply_packets or 0),
                reply_bytes=int(reply_size or 0),
            )
        )
    return found


@functools.lru_cache(maxsize=4096)
def _canonical(address: str) -> str:
    """One spelling per address (conntrack's and the document's may differ for IPv6)."""
    try:
        return ipaddress.ip_address(address).compressed
    except ValueError:
        return address


class _Index:
    """The services by (protocol, VIP), so that each conntrack entry costs a dict lookup and
    no address parsing: the table holds every flow of the last minutes (TIME_WAIT included),
    a hundred thousand entries on a busy load balancer."""

    def __init__(self, services: Iterable[VirtualService]) -> None:
        self.by_vip: dict[tuple[str, str], list[tuple[VirtualService, dict[str, list[RealServer]]]]]
        self.by_vip = {}
        for vs in services:
            servers: dict[str, list[RealServer]] = {}
            for rs in vs.real_servers:
                servers.setdefault(_canonical(rs.address), []).append(rs)
            for vip in vs.addresses:
                key = (vs.protocol.value, _canonical(vip))
                self.by_vip.setdefault(key, []).append((vs, servers))

    def matches(self, conn: Connection) -> list[tuple[VirtualService, list[RealServer]]]:
        """Each service of the entry's VIP and port, with its servers at the reply's source."""
        found = []
        for vs, servers in self.by_vip.get((conn.protocol, _canonical(conn.destination)), ()):
            if not any(r.first <= conn.destination_port <= r.last for r in vs.port_ranges):
                continue
            answering = servers.get(_canonical(conn.reply_source))
            if answering:
                found.append((vs, answering))
        return found


def active_connections(
    connections: Iterable[Connection], services: Iterable[VirtualService]
) -> dict[ServerRef, int]:
    """(vs name, rs key) -> open connections NATed to it (TCP SYN_RECV/ESTABLISHED, any UDP).

    DSR services have no conntrack entries on the load balancer: they count 0 here.
    """
    services = list(services)
    counts: dict[ServerRef, int] = {
        (vs.name, rs.key): 0 for vs in services for rs in vs.real_servers
    }
    index = _Index(services)
    for conn in connections:
        if conn.protocol == "tcp" and conn.state not in ACTIVE_TCP_STATES:
            continue
        for vs, answering in index.matches(conn):
            for rs in answering:
                counts[(vs.name, rs.key)] += 1
    return counts


def client_loads(
    before: Iterable[Connection],
    after: Iterable[Connection],
    vs: VirtualService,
    *,
    held: Iterable[str],
    interval: float,
    top: int,
) -> list[ClientLoad]:
    """The ``top`` busiest clients of the l4 NAT service ``vs`` from two reads of conntrack
    ``interval`` seconds apart: each client's open connections (as ``active_connections``
    counts them) in the second read, its new connections per second (the flows of the second
    read that the first did not have; a flow closed meanwhile is still there, in TIME_WAIT)
    and whether the kernel dropped it lately (``held``: the addresses the limits chain
    recorded when a per-client meter dropped them). Busiest: most new connections, then most
    open ones."""
    vips = {_canonical(address) for address in vs.addresses}

    def ours(conn: Connection) -> bool:
        return (
            conn.protocol == vs.protocol.value
            and _canonical(conn.destination) in vips
            and any(r.first <= conn.destination_port <= r.last for r in vs.port_ranges)
        )

    def flows(connections: Iterable[Connection]) -> dict[tuple[str, str, int, int], Connection]:
        return {
            (conn.protocol, _canonical(conn.source), conn.source_port, conn.destination_port): conn
            for conn in connections
            if ours(conn)
        }

    known, now = flows(before), flows(after)
    open_: dict[str, int] = {}
    new: dict[str, int] = {}
    for key, conn in now.items():
        client = key[1]
        open_.setdefault(client, 0)
        new.setdefault(client, 0)
        if conn.protocol != "tcp" or conn.state in ACTIVE_TCP_STATES:
            open_[client] += 1
        if key not in known:
            new[client] += 1
    holding = {_canonical(address) for address in held}
    for client in holding - open_.keys():  # dropped, none of its flows left: still shown
        open_[client], new[client] = 0, 0
    loads = [
        ClientLoad(
            client=client,
            connections=open_[client],
            connections_per_second=round(new[client] / interval) if interval > 0 else 0,
            requests_per_second=0,
            limited=client in holding,
        )
        for client in open_
    ]
    loads.sort(key=lambda load: (-load.connections_per_second, -load.connections, load.client))
    return loads[:top]


@dataclass(frozen=True)
class Traffic:
    """Packets and bytes both ways: ``in`` from the clients to the server, ``out`` back."""

    packets_in: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(
            self.packets_in + other.packets_in,
            self.bytes_in + other.bytes_in,
            self.packets_out + other.packets_out,
            self.bytes_out + other.bytes_out,
        )


FlowKey = tuple[str, str, int, str, int]  # protocol, client address and port, VIP and port


def server_of(conn: Connection, services: Iterable[VirtualService]) -> ServerRef | None:
    """The (vs, rs key) a conntrack entry was NATed to: its VIP and port, then the real server
    answering (the one on the reply's source port if several share the address)."""
    return _server_of(conn, _Index(services))


def _server_of(conn: Connection, index: _Index) -> ServerRef | None:
    for vs, answering in index.matches(conn):
        rs = next((rs for rs in answering if rs.port == conn.reply_source_port), answering[0])
        return (vs.name, rs.key)
    return None


class TrafficLedger:
    """Per real server traffic of NAT flows, from successive reads of conntrack's table
    (module docstring). ``read`` must see the reads in order (the engine holds a lock)."""

    def __init__(self) -> None:
        # per flow: (ref, packets in, bytes in, packets out, bytes out), plain tuples: the
        # table may hold a hundred thousand flows, read every 10 s
        self._flows: dict[FlowKey, _Seen] = {}
        self._done: dict[ServerRef, list[int]] = {}

    def read(
        self, connections: Iterable[Connection], services: Iterable[VirtualService]
    ) -> dict[ServerRef, Traffic]:
        """(vs, rs key) -> everything its flows carried, the ended ones and the open ones."""
        index = _Index(services)
        flows: dict[FlowKey, _Seen] = {}
        for conn in connections:
            ref = _server_of(conn, index)
            if ref is not None:
                key = (
                    conn.protocol,
                    conn.source,
                    conn.source_port,
                    conn.destination,
                    conn.destination_port,
                )
                flows[key] = (ref, conn.packets, conn.bytes, conn.reply_packets, conn.reply_bytes)
        for key, last in self._flows.items():
            now = flows.get(key)
            # gone, or its 4-tuple now belongs to a new flow: it ended with ``last``
            if now is None or now[0] != last[0] or now[1] < last[1] or now[3] < last[3]:
                _add(self._done.setdefault(last[0], [0, 0, 0, 0]), last)
        self._flows = flows
        totals = {ref: list(done) for ref, done in self._done.items()}
        for seen in flows.values():
            _add(totals.setdefault(seen[0], [0, 0, 0, 0]), seen)
        return {ref: Traffic(*figures) for ref, figures in totals.items()}


_Seen = tuple[ServerRef, int, int, int, int]


def _add(figures: list[int], seen: _Seen) -> None:
    _, packets_in, bytes_in, packets_out, bytes_out = seen
    figures[0] += packets_in
    figures[1] += bytes_in
    figures[2] += packets_out
    figures[3] += bytes_out


def least_connection_weight(vs: VirtualService, weight: int, active: int) -> int:
    """The module docstring's formula: inverse to open connections, times the weight if any."""
    base = LC_SCALE * (weight if vs.scheduler.weighted else 1)
    return max(1, round(base / (1 + active)))


def least_connection_weights(
    services: Iterable[VirtualService],
    active: Mapping[ServerRef, int],
    weights: Mapping[ServerRef, int],
) -> dict[ServerRef, int]:
    """(vs, rs key) -> the weight to schedule with, for every real server of ``services``;
    ``weights`` are the runtime ones (a server without one weighs 1)."""
    return {
        (vs.name, rs.key): least_connection_weight(
            vs, weights.get((vs.name, rs.key), 1), active.get((vs.name, rs.key), 0)
        )
        for vs in services
        for rs in vs.real_servers
    }
