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

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bascule.model import VirtualService
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


_TUPLE = re.compile(r"(src|dst|sport|dport)=(\S+)")
_ACCOUNTING = re.compile(r"\bpackets=(\d+) bytes=(\d+)")
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


def parse_conntrack(text: str) -> list[Connection]:
    """Entries of ``/proc/net/nf_conntrack`` or ``conntrack -L`` (TCP and UDP only)."""
    found: list[Connection] = []
    for line in text.splitlines():
        words = line.split()
        protocol = next((w for w in words[:4] if w in {"tcp", "udp"}), None)
        if protocol is None:
            continue
        state = next((w for w in words if w in _TCP_STATES), None) if protocol == "tcp" else None
        pairs = _TUPLE.findall(line)
        if len(pairs) < 8:
            continue
        original, reply = dict(pairs[:4]), dict(pairs[4:8])
        counted = [(int(p), int(b)) for p, b in _ACCOUNTING.findall(line)[:2]]
        (packets, size), (reply_packets, reply_size) = (*counted, (0, 0), (0, 0))[:2]
        try:
            found.append(
                Connection(
                    protocol=protocol,
                    state=state,
                    source=original["src"],
                    destination=original["dst"],
                    source_port=int(original["sport"]),
                    destination_port=int(original["dport"]),
                    reply_source=reply["src"],
                    reply_source_port=int(reply["sport"]),
                    packets=packets,
                    bytes=size,
                    reply_packets=reply_packets,
                    reply_bytes=reply_size,
                )
            )
        except (KeyError, ValueError):
            continue
    return found


def _same(a: str, b: str) -> bool:
    return ipaddress.ip_address(a) == ipaddress.ip_address(b)


def active_connections(
    connections: Iterable[Connection], services: Iterable[VirtualService]
) -> dict[ServerRef, int]:
    """(vs name, rs key) -> open connections NATed to it (TCP SYN_RECV/ESTABLISHED, any UDP).

    DSR services have no conntrack entries on the load balancer: they count 0 here.
    """
    counts: dict[ServerRef, int] = {}
    services = list(services)
    for vs in services:
        for rs in vs.real_servers:
            counts[(vs.name, rs.key)] = 0
    for conn in connections:
        if conn.protocol == "tcp" and conn.state not in ACTIVE_TCP_STATES:
            continue
        for vs in services:
            if conn.protocol != vs.protocol.value or not any(
                _same(conn.destination, vip) for vip in vs.addresses
            ):
                continue
            if not any(r.first <= conn.destination_port <= r.last for r in vs.port_ranges):
                continue
            for rs in vs.real_servers:
                if _same(conn.reply_source, rs.address):
                    counts[(vs.name, rs.key)] += 1
    return counts


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
    for vs in services:
        if conn.protocol != vs.protocol.value or not any(
            _same(conn.destination, vip) for vip in vs.addresses
        ):
            continue
        if not any(r.first <= conn.destination_port <= r.last for r in vs.port_ranges):
            continue
        found = [rs for rs in vs.real_servers if _same(conn.reply_source, rs.address)]
        if found:
            rs = next((rs for rs in found if rs.port == conn.reply_source_port), found[0])
            return (vs.name, rs.key)
    return None


class TrafficLedger:
    """Per real server traffic of NAT flows, from successive reads of conntrack's table
    (module docstring). ``read`` must see the reads in order (the engine holds a lock)."""

    def __init__(self) -> None:
        self._flows: dict[FlowKey, tuple[ServerRef, Traffic]] = {}
        self._done: dict[ServerRef, Traffic] = {}

    def read(
        self, connections: Iterable[Connection], services: Iterable[VirtualService]
    ) -> dict[ServerRef, Traffic]:
        """(vs, rs key) -> everything its flows carried, the ended ones and the open ones."""
        services = list(services)
        flows: dict[FlowKey, tuple[ServerRef, Traffic]] = {}
        for conn in connections:
            ref = server_of(conn, services)
            if ref is None:
                continue
            key = (
                conn.protocol,
                conn.source,
                conn.source_port,
                conn.destination,
                conn.destination_port,
            )
            traffic = Traffic(conn.packets, conn.bytes, conn.reply_packets, conn.reply_bytes)
            flows[key] = (ref, traffic)
        for key, (ref, last) in self._flows.items():
            now = flows.get(key)
            if (
                now is None
                or now[0] != ref
                or now[1].packets_in < last.packets_in
                or now[1].packets_out < last.packets_out
            ):  # gone, or its 4-tuple now belongs to a new flow: it ended with ``last``
                self._done[ref] = self._done.get(ref, Traffic()) + last
        self._flows = flows
        totals = dict(self._done)
        for ref, traffic in flows.values():
            totals[ref] = totals.get(ref, Traffic()) + traffic
        return totals


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
