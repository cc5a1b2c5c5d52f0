"""``bascule dsr verify``: check each real server of a DSR virtual service from the wire.

Where it sits: the service layer (``ConfigService.dsr_verify``) hands a ``forwarding: dsr``
virtual service to a ``DsrVerifier``; ``PacketDsrVerifier`` is the real one. It works on the
load balancer's interface towards the real servers, with a packet socket (root), and needs
no running engine: it sends what the DSR ingress rules would send.

1. Who claims what: for an IPv4 address an RFC 5227 ARP probe (sender 0.0.0.0), for an IPv6
   one a duplicate-address-detection neighbour solicitation (from ``::``, net/ndp.py): so
   nobody learns anything from them. One for each VIP (both of a dual-stack service) and one
   for each real server's address, then about a second of listening. A real server must
   answer for its own address (that gives its MAC) and nobody but the load balancer may
   answer for a VIP; a host that does is named by its MAC, through the real servers'
   answers and the neighbour table (``ip -j neigh``).
2. A test connection through each VIP: a TCP SYN to VIP:port from the load balancer's own
   address of the VIP's family, in a frame addressed to the real server's MAC, exactly as
   DSR forwards a client's SYN. The server must answer SYN-ACK from VIP:port; we then send
   it the RST that removes its half-open connection. A UDP service has no handshake: an
   ICMP (ICMPv6) echo to the VIP shows the server accepts the VIP's packets.

Why the load balancer's own stack stays out of it: the SYN-ACK comes from the VIP, which is
an address of the load balancer itself, so its kernel drops it as a martian source
(fib_validate_source refuses a local source unless accept_local) instead of answering RST;
were the VIP not local yet, its RST would go to the VIP, which no correct real server claims
on the segment. The source port is reserved with a bound socket for the few milliseconds of
the test, so no connection of the load balancer's own can share the 4-tuple.

The machine's facts (routes, links, addresses, neighbours) come from net's async ``Ip``; the
packet socket's blocking sends and receives run in a worker thread (``asyncio.to_thread``),
so the event loop keeps serving while a verification listens. The decisions on what was seen
are report.py's, the frames probe.py's, net/frames.py's and net/ndp.py's: all pure, tested
without root.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from bascule.dsr.probe import Answer, VipProbe
from bascule.dsr.report import DsrReport, RealServerCheck, describe_answer, judge_neighbours
from bascule.errors import EngineError
from bascule.model import Protocol as L4Protocol
from bascule.model import VirtualService
from bascule.net.frames import ARP_REPLY, arp_probe, parse_arp
from bascule.net.iproute import Neighbour
from bascule.net.ndp import parse_advertisement, solicitation_probe
from bascule.net.shell import Ip

LISTEN = 1.0  # seconds of listening for ARP answers and neighbour advertisements
CONNECT_TIMEOUT = 1.0  # seconds to wait for each real server's SYN-ACK
ETH_P_ALL = 0x0003


class DsrVerifier(Protocol):
    async def verify(self, vs: VirtualService) -> DsrReport: ...


class PacketDsrVerifier:
    """The real verifier: ARP and a test connection on the wire (needs root)."""

    def __init__(
        self,
        *,
        listen: float = LISTEN,
        connect_timeout: float = CONNECT_TIMEOUT,
        ip: Ip | None = None,
    ) -> None:
        self.listen = listen
        self.connect_timeout = connect_timeout
        self._ip = ip

    async def verify(self, vs: VirtualService) -> DsrReport:
        return await verify_service(
            vs, listen=self.listen, connect_timeout=self.connect_timeout, ip=self._ip
        )


@dataclass(frozen=True, kw_only=True)
class _Segment:
    """The load balancer's side of the real servers' segment."""

    interface: str
    mac: str
    sources: Mapping[int, str]  # IP version -> an address of ours on it (never a VIP)
    own_macs: frozenset[str]
    unreachable: Mapping[str, str]  # rs address -> why it is not on this segment


class _NoSegment(Exception):
    """The load balancer has no usable side on the real servers' segment (the message: why)."""


async def _segment(vs: VirtualService, ip: Ip) -> _Segment:
    routes = {rs.address: await ip.route(rs.address) for rs in vs.real_servers}
    interface = vs.interface
    if interface is None:
        direct = [r for r in routes.values() if r and r.gateway is None and not r.local]
        interface = direct[0].interface if direct else None
    if interface is None:
        raise _NoSegment("no real server is on a directly connected segment of this machine")
    unreachable: dict[str, str] = {}
    for address, route in routes.items():
        if route is None:
            unreachable[address] = "no route to it"
        elif route.local:
            unreachable[address] = "it is this machine's own address"
        elif route.gateway is not None:
            unreachable[address] = (
                f"reached through the gateway {route.gateway}: DSR needs it on the segment "
                f"of {interface}"
            )
        elif route.interface != interface:
            unreachable[address] = f"reached through {route.interface}, not {interface}"
    try:
        links = await ip.links()
    except EngineError as exc:
        raise _NoSegment(f"cannot list the interfaces: {exc}") from exc
    link = next((link for link in links if link.name == interface), None)
    if link is None or link.mac is None:
        raise _NoSegment(f"interface {interface} has no MAC address")
    try:
        machine = await ip.addresses(interface)
    except EngineError as exc:
        raise _NoSegment(f"cannot list the addresses of {interface}: {exc}") from exc
    preferred = [r.source for r in routes.values() if r and r.interface == interface and r.source]
    sources: dict[int, str] = {}
    for version in sorted({ipaddress.ip_address(vip).version for vip in vs.addresses}):
        addresses = machine.of(interface, version)
        # a global address before a link-local one (IPv6): the answer's route is simpler
        ranked = sorted(addresses, key=lambda a: ipaddress.ip_address(a).is_link_local)
        usable = [a for a in [*preferred, *ranked] if a not in vs.addresses and a in addresses]
        if not usable:
            raise _NoSegment(f"{interface} has no IPv{version} address of its own besides the VIP")
        sources[version] = usable[0]
    return _Segment(
        interface=interface,
        mac=link.mac,
        sources=sources,
        own_macs=frozenset(link.mac for link in links if link.ethernet and link.mac),
        unreachable=unreachable,
    )


async def _neighbours(ip: Ip, interface: str) -> tuple[Neighbour, ...]:
    """The neighbour table of ``interface``, only to name strangers: empty if unreadable."""
    try:
        return await ip.neighbours(interface)
    except EngineError:
        return ()


class _PacketSocket:
    """A raw packet socket on one interface; frames the machine sends itself are skipped."""

    def __init__(self, interface: str) -> None:
        try:
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError as exc:
            raise EngineError(
                "dsr verify needs root (CAP_NET_RAW) to open a packet socket"
            ) from exc
        try:
            self._sock.bind((interface, ETH_P_ALL))
        except OSError as exc:
            self._sock.close()
            raise EngineError(f"cannot listen on {interface}: {exc}") from exc

    def close(self) -> None:
        self._sock.close()

    def send(self, frame: bytes) -> None:
        self._sock.send(frame)

    def frames(self, deadline: float) -> Iterator[bytes]:
        """Every incoming frame until the monotonic ``deadline``."""
        while (remaining := deadline - time.monotonic()) > 0:
            self._sock.settimeout(remaining)
            try:
                frame, address = self._sock.recvfrom(65535)
            except TimeoutError:
                return
            if address[2] != socket.PACKET_OUTGOING:
                yield frame


def _survey(
    packets: _PacketSocket, mac: str, targets: Sequence[str], listen: float
) -> dict[str, frozenset[str]]:
    """Address -> MACs of the hosts that answered for it within ``listen`` s: an ARP probe
    for an IPv4 address, a neighbour solicitation for an IPv6 one."""
    wanted = set(targets)
    seen: dict[str, set[str]] = {}
    start = time.monotonic()
    for deadline in (start + listen / 2, start + listen):  # twice, in case a frame is lost
        for target in targets:
            probe = solicitation_probe if ":" in target else arp_probe
            packets.send(probe(mac, target))
        for frame in packets.frames(deadline):
            arp = parse_arp(frame)
            if arp is not None and arp.operation == ARP_REPLY and arp.sender_ip in wanted:
                seen.setdefault(arp.sender_ip, set()).add(arp.sender_mac)
                continue
            advertised = parse_advertisement(frame)
            if advertised is not None and advertised.target in wanted:
                seen.setdefault(advertised.target, set()).add(advertised.mac)
    return {address: frozenset(macs) for address, macs in seen.items()}


@dataclass(frozen=True, kw_only=True)
class _ProbeTemplate:
    lb_mac: str
    server_mac: str
    source: str
    vip: str
    port: int
    tcp: bool

    def with_port(self, port: int) -> VipProbe:
        return VipProbe(
            lb_mac=self.lb_mac,
            server_mac=self.server_mac,
            source=self.source,
            source_port=port,
            vip=self.vip,
            port=self.port,
            isn=secrets.randbits(32),
            tcp=self.tcp,
        )


def _test_connection(
    packets: _PacketSocket, template: _ProbeTemplate, timeout: float
) -> tuple[VipProbe, tuple[Answer, str] | None]:
    """Send a probe (again halfway through ``timeout``) and wait for its answer."""
    family = socket.AF_INET6 if ":" in template.source else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as reserved:
        reserved.bind((template.source, 0))
        probe = template.with_port(reserved.getsockname()[1])
        start = time.monotonic()
        answer: tuple[Answer, str] | None = None
        for deadline in (start + timeout / 2, start + timeout):
            packets.send(probe.request())
            for frame in packets.frames(deadline):
                answer = probe.answer(frame)
                if answer is not None:
                    break
            if answer is not None:
                break
        if probe.tcp and answer is not None and answer[0] is Answer.accepted:
            packets.send(probe.reset())
        return probe, answer


def _unverifiable(vs: VirtualService, interface: str, why: str) -> DsrReport:
    return DsrReport(
        service=vs.name,
        vip=vs.address,
        vip6=vs.address6,
        interface=interface,
        real_servers=tuple(
            RealServerCheck(
                key=rs.key,
                address=rs.address,
                mac=None,
                arp_ok=False,
                arp_detail=why,
                connect_ok=False,
                connect_detail=why,
            )
            for rs in vs.real_servers
        ),
    )


async def verify_service(
    vs: VirtualService,
    *,
    listen: float = LISTEN,
    connect_timeout: float = CONNECT_TIMEOUT,
    ip: Ip | None = None,
) -> DsrReport:
    """Check every real server of ``vs`` (a few seconds at most). Needs root."""
    if not vs.real_servers:
        return DsrReport(
            service=vs.name,
            vip=vs.address,
            vip6=vs.address6,
            interface=vs.interface or "",
            real_servers=(),
        )
    ip = ip or Ip()
    try:
        segment = await _segment(vs, ip)
    except _NoSegment as exc:
        return _unverifiable(vs, vs.interface or "", f"not checked: {exc}")
    packets = _PacketSocket(segment.interface)
    try:
        targets = [*vs.addresses, *dict.fromkeys(rs.address for rs in vs.real_servers)]
        answers = await asyncio.to_thread(_survey, packets, segment.mac, targets, listen)
        neighbours = await _neighbours(ip, segment.interface)
        verdicts, others = judge_neighbours(vs, answers, segment.own_macs, neighbours)
        checks = await asyncio.to_thread(
            _check_servers, packets, segment, vs, verdicts, connect_timeout
        )
    finally:
        packets.close()
    return DsrReport(
        service=vs.name,
        vip=vs.address,
        vip6=vs.address6,
        interface=segment.interface,
        real_servers=checks,
        others=others,
    )


def _check_servers(
    packets: _PacketSocket,
    segment: _Segment,
    vs: VirtualService,
    verdicts: Mapping[str, tuple[str | None, bool, str]],
    timeout: float,
) -> tuple[RealServerCheck, ...]:
    """The test connection to each real server in turn (blocking: run in a thread)."""
    return tuple(
        _check_server(packets, segment, vs, rs.key, rs.address, verdicts, timeout)
        for rs in vs.real_servers
    )


def _check_server(
    packets: _PacketSocket,
    segment: _Segment,
    vs: VirtualService,
    key: str,
    address: str,
    verdicts: Mapping[str, tuple[str | None, bool, str]],
    timeout: float,
) -> RealServerCheck:
    why = segment.unreachable.get(address)
    if why is not None:
        return RealServerCheck(
            key=key,
            address=address,
            mac=None,
            arp_ok=False,
            arp_detail=why,
            connect_ok=False,
            connect_detail=f"not tried: {why}",
        )
    mac, arp_ok, arp_detail = verdicts[address]
    if mac is None:
        connect_ok, connect_detail = False, "not tried: no MAC address for the server"
    else:
        # through each VIP (both of a dual-stack service), from our address of its family
        results = []
        for vip in vs.addresses:
            template = _ProbeTemplate(
                lb_mac=segment.mac,
                server_mac=mac,
                source=segment.sources[ipaddress.ip_address(vip).version],
                vip=vip,
                port=vs.port,
                tcp=vs.protocol is L4Protocol.tcp,
            )
            probe, answer = _test_connection(packets, template, timeout)
            accepted = answer is not None and answer[0] is Answer.accepted
            results.append((accepted, describe_answer(answer, probe, timeout)))
        connect_ok = all(accepted for accepted, _ in results)
        connect_detail = "; ".join(detail for _, detail in results)
    return RealServerCheck(
        key=key,
        address=address,
        mac=mac,
        arp_ok=arp_ok,
        arp_detail=arp_detail,
        connect_ok=connect_ok,
        connect_detail=connect_detail,
    )
