"""The planned handover's drain in the kernel: the nftables table of an HA pair's node (pure).

Where it sits: beside the keepalived view; daemon/handover.py applies what this renders and
fills the table's sets. A ``bascule ha standby`` moves the VIPs at once, but an established
connection of the old active is not the new active's: its kernel holds no socket for it and
would answer the client's next segment with a reset. For the services with a ``drain_time``
(l7, TCP), the old active keeps such connections that long instead:

- the old active (``draining``): the VIP stays a local address on ``lo`` (``arp_ignore``
  keeps it from answering ARP for it there), so its HAProxy goes on serving the connections
  it holds; replies leave from the VIP straight to the client;
- the new active (``forwarded``, told by the old one over the pair's link): a segment of a
  connection it does not know is sent on to the old active (``dup to``, then dropped: no
  reset). It does not know a connection when the segment is not a SYN and conntrack picks it
  up mid-stream (``ct state new``), or when the entry is the peer's: each node marks the
  connections it accepts (``ct mark``), and conntrackd copies entries with their marks;
- SYNs are never handed over: new connections are the new active's at once.

Both sets' elements carry the drain time as a timeout, so a forwarding ends by itself even if
a daemon dies meanwhile; daemon/handover.py closes the old active's remaining connections at
the drain time (``ss -K``: a reset) and takes the VIP off ``lo``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from bascule.model import Configuration, Mode, Protocol
from bascule.model.high_availability import HaNode

TABLE = "bascule_handover"
#: The ct marks of the connections each node accepts (node 1, node 2 of the pair).
MARKS = (0x0BA5C001, 0x0BA5C002)
#: nftables' chain priorities: after conntrack (-200), before NAT (-100).
PRIORITY = -150
_INTERFACE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")


@dataclass(frozen=True, kw_only=True)
class DrainedService:
    """A service whose old active keeps its connections after a handover."""

    name: str
    address: str
    port: int
    drain_time: int


@dataclass(frozen=True, kw_only=True)
class HandoverView:
    family: str  # "ip" or "ip6": the node addresses' (a VIP of the other family is not drained)
    interface: str
    peer_address: str
    own_mark: int
    peer_mark: int
    services: tuple[DrainedService, ...]


def handover_view(config: Configuration, me: HaNode, peer: HaNode) -> HandoverView | None:
    """The table of ``me`` in the document's pair; None without a pair."""
    pair = config.high_availability
    if pair is None:
        return None
    version = ipaddress.ip_address(me.address).version
    services = tuple(
        DrainedService(
            name=vs.name,
            address=str(ipaddress.ip_address(vs.address)),
            port=vs.port,
            drain_time=int(vs.drain_time),
        )
        for vs in config.virtual_services
        if vs.mode is Mode.l7
        and vs.protocol is Protocol.tcp
        and vs.drain_time
        and not ipaddress.ip_address(vs.address).is_unspecified
        and ipaddress.ip_address(vs.address).version == version
    )
    first = pair.nodes[0].name == me.name
    return HandoverView(
        family="ip" if version == 4 else "ip6",
        interface=pair.interface,
        peer_address=str(ipaddress.ip_address(peer.address)),
        own_mark=MARKS[0] if first else MARKS[1],
        peer_mark=MARKS[1] if first else MARKS[0],
        services=services,
    )


def element(family: str, address: str, port: int, timeout: int) -> str:
    """One ``address . port`` element of a set, expiring after ``timeout`` seconds."""
    ip = ipaddress.ip_address(address)
    if (ip.version == 4) != (family == "ip") or not 1 <= port <= 65535 or timeout < 1:
        raise ValueError(f"not a drained service of this family: {address} port {port}")
    return f"{ip} . {port} timeout {timeout}s"


def render(view: HandoverView) -> str:
    """The table, replacing any earlier one (its sets start empty)."""
    if not _INTERFACE.fullmatch(view.interface):
        raise ValueError(f"{view.interface!r} is not an interface name")
    family, peer = view.family, ipaddress.ip_address(view.peer_address)
    address = "ipv4_addr" if family == "ip" else "ipv6_addr"
    lines = [
        f"table {family} {TABLE}",
        f"delete table {family} {TABLE}",
        f"table {family} {TABLE} {{",
        "    # the old active's connections this node keeps after a handover (VIP on lo)",
        f"    set draining {{ type {address} . inet_service; flags timeout; }}",
        "    # the services whose old active is the peer: what is not this node's goes there",
        f"    set forwarded {{ type {address} . inet_service; flags timeout; }}",
        "    chain prerouting {",
        f"        type filter hook prerouting priority {PRIORITY}; policy accept;",
        f"        {family} daddr . tcp dport @draining accept",
        f"        tcp flags syn / syn,ack ct state new ct mark set {view.own_mark:#x}",
        f"        {family} daddr . tcp dport @forwarded jump hand_over",
        "    }",
        "    chain hand_over {",
        "        fib daddr type != local return",
        *(
            f"        {match} dup to {peer} device {view.interface} drop"
            for match in (f"ct mark {view.peer_mark:#x}", "tcp flags & syn == 0 ct state new")
        ),
        "    }",
        "    chain forward {",
        f"        type filter hook forward priority {PRIORITY}; policy accept;",
        "        # between the VIP leaving the interface and reaching lo: the client sends again",
        f"        {family} daddr . tcp dport @draining drop",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def add_elements(family: str, set_name: str, elements: Iterable[str]) -> str:
    """An nft script adding ``elements`` (``element``) to one of the table's sets."""
    listed = ", ".join(elements)
    return f"add element {family} {TABLE} {set_name} {{ {listed} }}\n" if listed else ""
