"""The test packet of ``bascule dsr verify``, and what a real server's answer to it means (pure).

Where it sits: dsr/verify.py sends ``VipProbe.request()`` from the load balancer's interface
on a packet socket, exactly as the DSR ingress rules forward a client's packet: addressed to
the VIP, in a frame addressed to the real server's MAC. It hands every frame it hears to
``VipProbe.answer``, which says whether the server accepted, refused, or whether another host
answered. The frames themselves are built and read by net/frames.py.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bascule.net import icmp
from bascule.net.frames import (
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    TcpFlag,
    icmp_echo,
    parse_ip,
    tcp_segment,
)


class Answer(enum.Enum):
    """What a real server said to a probe sent to the VIP through its MAC."""

    accepted = "accepted"  # TCP SYN-ACK, or ICMP echo reply, from the VIP
    refused = "refused"  # TCP RST from the VIP: the server holds the VIP, nothing listens
    foreign = "foreign"  # an answer from the VIP, but from another MAC than the server's


@dataclass(frozen=True, kw_only=True)
class VipProbe:
    """One test packet to ``vip:port`` sent straight to ``server_mac``, as DSR forwards it.

    ``source``/``source_port``: the load balancer's own address and a port it reserved, so the
    answer comes back to it. ``isn``: the SYN's sequence number (the echo identifier for
    ICMP). ``tcp`` false: an ICMP echo to the VIP (UDP services have no handshake to test).
    An IPv6 VIP (with an IPv6 ``source``) is probed the same way over IPv6 and ICMPv6.
    """

    lb_mac: str
    server_mac: str
    source: str
    source_port: int
    vip: str
    port: int
    isn: int
    tcp: bool = True

    def request(self) -> bytes:
        """The SYN (or echo request)."""
        if not self.tcp:
            return icmp_echo(
                source_mac=self.lb_mac,
                destination_mac=self.server_mac,
                source=self.source,
                destination=self.vip,
                identifier=self.isn,
                sequence=1,
            )
        return self._tcp(seq=self.isn, flags=TcpFlag.syn, ident=self.isn)

    def reset(self) -> bytes:
        """The RST that ends the half-open connection on the server after its SYN-ACK."""
        return self._tcp(seq=(self.isn + 1) & 0xFFFFFFFF, flags=TcpFlag.rst, ident=self.isn + 1)

    def _tcp(self, *, seq: int, flags: TcpFlag, ident: int) -> bytes:
        """A segment of the test connection, from the load balancer to the VIP."""
        return tcp_segment(
            source_mac=self.lb_mac,
            destination_mac=self.server_mac,
            source=self.source,
            destination=self.vip,
            source_port=self.source_port,
            destination_port=self.port,
            seq=seq,
            flags=flags,
            ident=ident,
        )

    def answer(self, frame: bytes) -> tuple[Answer, str] | None:
        """(what it says, the MAC it came from) when ``frame`` answers this probe, else None."""
        segment = parse_ip(frame)
        if segment is None or segment.source != self.vip or segment.destination != self.source:
            return None
        if self.tcp:
            ours = (
                segment.protocol == IPPROTO_TCP
                and segment.source_port == self.port
                and segment.destination_port == self.source_port
                and segment.ack == (self.isn + 1) & 0xFFFFFFFF
            )
            if not ours:
                return None
            if segment.flags & TcpFlag.rst:
                verdict = Answer.refused
            elif segment.flags & (TcpFlag.syn | TcpFlag.ack) == TcpFlag.syn | TcpFlag.ack:
                verdict = Answer.accepted
            else:
                return None
        else:
            v6 = ":" in self.vip
            echo = (
                segment.protocol == (IPPROTO_ICMPV6 if v6 else IPPROTO_ICMP)
                and segment.icmp_type == (icmp.V6_ECHO_REPLY if v6 else icmp.ECHO_REPLY)
                and segment.ack == self.isn & 0xFFFF
            )
            if not echo:
                return None
            verdict = Answer.accepted
        if segment.source_mac != self.server_mac:
            return Answer.foreign, segment.source_mac
        return verdict, segment.source_mac
