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
they schedule by Maglev and count 0 here. Pure: no I/O.
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


_TUPLE = re.compile(r"(src|dst|sport|dport)=(\S+)")
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
