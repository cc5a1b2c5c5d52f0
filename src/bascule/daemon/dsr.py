"""``bascule dsr verify``: check each real server of a DSR virtual service from the wire.

Where it sits: the service layer (``ConfigService.dsr_verify``) hands a ``forwarding: dsr``
virtual service to a ``DsrVerifier``; ``PacketDsrVerifier`` is the real one. It works on the
load balancer's interface towards the real servers, with a packet socket (root), and needs
no running engine: it sends what the DSR ingress rules would send.

1. ARP: one RFC 5227 probe (sender 0.0.0.0, so nobody learns anything from it) for the VIP
   and one for each real server's address, then about a second of listening. A real server
   must answer for its own address (that gives its MAC) and nobody but the load balancer
   may answer for the VIP; a host that does is named by its MAC, through the real servers'
   answers and the neighbour table (``ip -j neigh``).
2. A test connection through the VIP: a TCP SYN to VIP:port from the load balancer's own
   address, in a frame addressed to the real server's MAC, exactly as DSR forwards a
   client's SYN. The server must answer SYN-ACK from VIP:port; we then send it the RST that
   removes its half-open connection. A UDP service has no handshake: an ICMP echo to the
   VIP shows the server accepts the VIP's packets.

Why the load balancer's own stack stays out of it: the SYN-ACK comes from the VIP, which is
an address of the load balancer itself, so its kernel drops it as a martian source
(fib_validate_source refuses a local source unless accept_local) instead of answering RST;
were the VIP not local yet, its RST would go to the VIP, which no correct real server claims
on the segment. The source port is reserved with a bound socket for the few milliseconds of
the test, so no connection of the load balancer's own can share the 4-tuple.

The decisions on what was seen (``judge_arp``) and the parsers of ``ip -j`` output are pure
and tested without root; frames are built and read by engines/nftables/frames.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from bascule.engines.nftables.frames import (
    ARP_REPLY,
    Answer,
    VipProbe,
    arp_probe,
    parse_arp,
)
from bascule.errors import EngineError
from bascule.model import Protocol as L4Protocol
from bascule.model import VirtualService

LISTEN = 1.0  # seconds of listening for ARP answers
CONNECT_TIMEOUT = 1.0  # seconds to wait for each real server's SYN-ACK
ETH_P_ALL = 0x0003
_IP_TIMEOUT = 10.0


@dataclass(frozen=True, kw_only=True)
class RealServerCheck:
    """The verdicts on one real server; a detail says what was seen and what to do."""

    key: str
    address: str
    mac: str | None
    arp_ok: bool
    arp_detail: str
    connect_ok: bool
    connect_detail: str

    @property
    def ok(self) -> bool:
        return self.arp_ok and self.connect_ok


@dataclass(frozen=True, kw_only=True)
class Responder:
    """A host that is not a real server of the service but answers ARP for its VIP."""

    mac: str
    addresses: tuple[str, ...]  # what the neighbour table knows it as (may be empty)


@dataclass(frozen=True, kw_only=True)
class DsrReport:
    service: str
    vip: str
    interface: str
    real_servers: tuple[RealServerCheck, ...]
    others: tuple[Responder, ...] = ()

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.real_servers) and not self.others


class DsrVerifier(Protocol):
    async def verify(self, vs: VirtualService) -> DsrReport: ...


class PacketDsrVerifier:
    """The real verifier: ARP and a test connection on the wire (needs root)."""

    def __init__(self, *, listen: float = LISTEN, connect_timeout: float = CONNECT_TIMEOUT):
        self.listen = listen
        self.connect_timeout = connect_timeout

    async def verify(self, vs: VirtualService) -> DsrReport:
        return await asyncio.to_thread(
            verify_service, vs, listen=self.listen, connect_timeout=self.connect_timeout
        )


# -- pure: ``ip -j`` output and the ARP verdicts ------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Route:
    """``ip -j route get ADDRESS``: how the load balancer reaches an address."""

    interface: str
    gateway: str | None
    source: str | None
    local: bool  # the address is this machine's own


def parse_route(text: str) -> Route | None:
    try:
        entries = json.loads(text or "[]")
    except json.JSONDecodeError:
        return None
    if not entries or not isinstance(entries[0], dict) or "dev" not in entries[0]:
        return None
    entry = entries[0]
    return Route(
        interface=str(entry["dev"]),
        gateway=entry.get("gateway"),
        source=entry.get("prefsrc"),
        local=entry.get("type") == "local",
    )


def parse_neighbours(text: str) -> dict[str, tuple[str, ...]]:
    """MAC -> the addresses ``ip -j neigh show`` maps to it (resolved entries only)."""
    try:
        entries = json.loads(text or "[]")
    except json.JSONDecodeError:
        return {}
    found: dict[str, list[str]] = {}
    for entry in entries:
        mac, address = entry.get("lladdr"), entry.get("dst")
        if not mac or not address or set(entry.get("state", [])) & {"FAILED", "INCOMPLETE"}:
            continue
        found.setdefault(str(mac).lower(), []).append(str(address))
    return {mac: tuple(addresses) for mac, addresses in found.items()}


def parse_link_macs(text: str) -> frozenset[str]:
    """Every MAC of this machine's interfaces, from ``ip -j link show``."""
    try:
        links = json.loads(text or "[]")
    except json.JSONDecodeError:
        return frozenset()
    return frozenset(
        str(link["address"]).lower()
        for link in links
        if link.get("address") and link.get("link_type") == "ether"
    )


def parse_addresses(text: str) -> tuple[str, ...]:
    """The IPv4 addresses of ``ip -j -4 address show dev X``, primary first."""
    try:
        links = json.loads(text or "[]")
    except json.JSONDecodeError:
        return ()
    return tuple(
        str(info["local"])
        for link in links
        for info in link.get("addr_info", [])
        if info.get("family") == "inet" and info.get("local")
    )


def judge_arp(
    vs: VirtualService,
    answers: Mapping[str, frozenset[str]],
    own_macs: frozenset[str],
    neighbours: Mapping[str, tuple[str, ...]],
) -> tuple[dict[str, tuple[str | None, bool, str]], tuple[Responder, ...]]:
    """Decide from the ARP answers seen: address -> MAC list of the hosts that answered.

    Returns real server address -> (its MAC, arp_ok, detail), and the other hosts that claim
    the VIP. The load balancer's own MACs never count.
    """
    claimants = set(answers.get(vs.address, frozenset())) - own_macs
    verdicts: dict[str, tuple[str | None, bool, str]] = {}
    server_macs: set[str] = set()
    for rs in vs.real_servers:
        macs = sorted(answers.get(rs.address, frozenset()))
        if not macs:
            verdicts[rs.address] = (
                None,
                False,
                f"no ARP answer for {rs.address} itself: is it up and on this segment?",
            )
            continue
        mac = macs[0]
        server_macs.update(macs)
        conflict = f" ({len(macs)} hosts answer for {rs.address}: {', '.join(macs)})"
        note = conflict if len(macs) > 1 else ""
        if claimants & set(macs):
            verdicts[rs.address] = (
                mac,
                False,
                f"answers ARP for the VIP {vs.address} (as {mac}): clients would bypass the "
                "load balancer; set arp_ignore=1 and arp_announce=2 (bascule dsr script)" + note,
            )
        else:
            verdicts[rs.address] = (
                mac,
                True,
                f"does not answer ARP for the VIP {vs.address}" + note,
            )
    others = tuple(
        Responder(mac=mac, addresses=neighbours.get(mac, ()))
        for mac in sorted(claimants - server_macs)
    )
    return verdicts, others


def describe_answer(answer: tuple[Answer, str] | None, probe: VipProbe, timeout: float) -> str:
    target = f"{probe.vip}:{probe.port}" if probe.tcp else probe.vip
    what = "a SYN" if probe.tcp else "an ICMP echo"
    if answer is None:
        return (
            f"no answer to {what} for {target} within {timeout:g} s: the server does not "
            "accept packets for the VIP (is the VIP on its loopback?) or a firewall drops them"
        )
    verdict, mac = answer
    if verdict is Answer.accepted:
        return f"SYN-ACK from {target}" if probe.tcp else f"echo reply from {target}"
    if verdict is Answer.refused:
        return (
            f"RST from {target}: the server holds the VIP but nothing listens on port "
            f"{probe.port} (or a firewall rejects it)"
        )
    return f"answered from {mac}, not from the server's own MAC {probe.server_mac}"


# -- I/O ------------------------------------------------------------------------------------------


def _ip(*args: str) -> str:
    try:
        done = subprocess.run(
            ["ip", "-j", *args], capture_output=True, text=True, timeout=_IP_TIMEOUT, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise EngineError(f"ip {' '.join(args)}: {exc}") from exc
    return done.stdout if done.returncode == 0 else ""


@dataclass(frozen=True, kw_only=True)
class _Segment:
    """The load balancer's side of the real servers' segment."""

    interface: str
    mac: str
    source: str  # an address of ours on it (never the VIP)
    own_macs: frozenset[str]
    unreachable: Mapping[str, str]  # rs address -> why it is not on this segment


class _NoSegment(Exception):
    """The load balancer has no usable side on the real servers' segment (the message: why)."""


def _segment(vs: VirtualService) -> _Segment:
    routes = {rs.address: parse_route(_ip("route", "get", rs.address)) for rs in vs.real_servers}
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
    own_macs = parse_link_macs(_ip("link", "show"))
    links = json.loads(_ip("link", "show", "dev", interface) or "[]")
    if not links or not links[0].get("address"):
        raise _NoSegment(f"interface {interface} has no MAC address")
    addresses = parse_addresses(_ip("-4", "address", "show", "dev", interface))
    preferred = [r.source for r in routes.values() if r and r.interface == interface and r.source]
    usable = [a for a in [*preferred, *addresses] if a != vs.address and a in addresses]
    if not usable:
        raise _NoSegment(f"{interface} has no IPv4 address of its own besides the VIP")
    return _Segment(
        interface=interface,
        mac=str(links[0]["address"]).lower(),
        source=usable[0],
        own_macs=own_macs,
        unreachable=unreachable,
    )


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


def _arp_survey(
    packets: _PacketSocket, mac: str, targets: Sequence[str], listen: float
) -> dict[str, frozenset[str]]:
    """Address -> MACs of the hosts that answered an ARP probe for it within ``listen`` s."""
    wanted = set(targets)
    seen: dict[str, set[str]] = {}
    start = time.monotonic()
    for deadline in (start + listen / 2, start + listen):  # twice, in case a frame is lost
        for target in targets:
            packets.send(arp_probe(mac, target))
        for frame in packets.frames(deadline):
            arp = parse_arp(frame)
            if arp is not None and arp.operation == ARP_REPLY and arp.sender_ip in wanted:
                seen.setdefault(arp.sender_ip, set()).add(arp.sender_mac)
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
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as reserved:
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


def verify_service(
    vs: VirtualService, *, listen: float = LISTEN, connect_timeout: float = CONNECT_TIMEOUT
) -> DsrReport:
    """Check every real server of ``vs`` (blocking: a few seconds at most). Needs root."""
    if ipaddress.ip_address(vs.address).version != 4:
        return _unverifiable(
            vs, vs.interface or "", "IPv6 VIPs are not verified yet (neighbour discovery)"
        )
    if not vs.real_servers:
        return DsrReport(
            service=vs.name, vip=vs.address, interface=vs.interface or "", real_servers=()
        )
    try:
        segment = _segment(vs)
    except _NoSegment as exc:
        return _unverifiable(vs, vs.interface or "", f"not checked: {exc}")
    packets = _PacketSocket(segment.interface)
    try:
        targets = [vs.address, *dict.fromkeys(rs.address for rs in vs.real_servers)]
        answers = _arp_survey(packets, segment.mac, targets, listen)
        neighbours = parse_neighbours(_ip("neigh", "show", "dev", segment.interface))
        verdicts, others = judge_arp(vs, answers, segment.own_macs, neighbours)
        checks = [
            _check_server(packets, segment, vs, rs.key, rs.address, verdicts, connect_timeout)
            for rs in vs.real_servers
        ]
    finally:
        packets.close()
    return DsrReport(
        service=vs.name,
        vip=vs.address,
        interface=segment.interface,
        real_servers=tuple(checks),
        others=others,
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
        template = _ProbeTemplate(
            lb_mac=segment.mac,
            server_mac=mac,
            source=segment.source,
            vip=vs.address,
            port=vs.port,
            tcp=vs.protocol is L4Protocol.tcp,
        )
        probe, answer = _test_connection(packets, template, timeout)
        connect_ok = answer is not None and answer[0] is Answer.accepted
        connect_detail = describe_answer(answer, probe, timeout)
    return RealServerCheck(
        key=key,
        address=address,
        mac=mac,
        arp_ok=arp_ok,
        arp_detail=arp_detail,
        connect_ok=connect_ok,
        connect_detail=connect_detail,
    )
