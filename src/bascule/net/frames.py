"""Ethernet frames: ARP, and IPv4 or IPv6 carrying TCP or an ICMP echo, built and read (pure).

Where it sits: ``bascule dsr verify`` (dsr/verify.py) sends these frames from the load
balancer's interface on a packet socket, exactly as the DSR ingress rules would forward a
client's packet, and reads what comes back with ``parse_arp`` and ``parse_ip`` (its probe,
dsr/probe.py, says what an answer means). Nothing here touches a socket or the clock: values
in, bytes out; bytes in, a frozen value (or None for a frame of another kind) out.

Formats: Ethernet II, ARP for IPv4 over Ethernet (RFC 826, probes as in RFC 5227), IPv4
(RFC 791), IPv6 (RFC 8200, without extension headers), TCP (RFC 9293), ICMP echo (RFC 792)
and ICMPv6 echo (RFC 4443). IPv6's neighbour discovery, ARP's counterpart, is net/ndp.py.
The family of a frame is the family of its addresses.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass, replace

from bascule.net import icmp
from bascule.net.addresses import mac_bytes, mac_text
from bascule.net.checksum import internet_checksum

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
BROADCAST = "ff:ff:ff:ff:ff:ff"
MIN_FRAME = 60  # an Ethernet frame without its FCS is at least 60 octets (padded)

ARP_REQUEST = 1
ARP_REPLY = 2
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_ICMPV6 = 58

_ETHERNET = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")  # htype, ptype, hlen, plen, oper, sha, spa, tha, tpa
_IPV4 = struct.Struct("!BBHHHBBH4s4s")  # ver/ihl, tos, length, id, flags/frag, ttl, proto, sum
_TCP = struct.Struct("!HHIIBBHHH")  # sport, dport, seq, ack, offset, flags, window, sum, urg
_PSEUDO = struct.Struct("!4s4sBBH")  # source, destination, zero, protocol, length
_IPV6 = struct.Struct("!IHBB16s16s")  # version/class/flow, payload length, next, hops, addresses
_PSEUDO6 = struct.Struct("!16s16sI3xB")  # source, destination, length, zero, next header

_IP_DONT_FRAGMENT = 0x4000
_TTL = 64
_TCP_WINDOW = 64240
_TCP_MSS = 1460


class TcpFlag(enum.IntFlag):
    fin = 0x01
    syn = 0x02
    rst = 0x04
    psh = 0x08
    ack = 0x10


NO_FLAGS = TcpFlag(0)


# -- the Ethernet and IPv4 envelopes -----------------------------------------------------------


def _ipv4(address: str) -> bytes:
    return ipaddress.IPv4Address(address).packed


def _ipv4_text(raw: bytes) -> str:
    return str(ipaddress.IPv4Address(raw))


def _ethernet(destination: str, source: str, ethertype: int, payload: bytes) -> bytes:
    frame = _ETHERNET.pack(mac_bytes(destination), mac_bytes(source), ethertype) + payload
    return frame.ljust(MIN_FRAME, b"\x00")


def _v6(address: str) -> bool:
    return ipaddress.ip_address(address).version == 6


def _ip_packet(source: str, destination: str, protocol: int, ident: int, payload: bytes) -> bytes:
    if _v6(destination):
        return ipv6_packet(source, destination, protocol, payload)
    fields = [0x45, 0, _IPV4.size + len(payload), ident & 0xFFFF, _IP_DONT_FRAGMENT, _TTL]
    header = _IPV4.pack(*fields, protocol, 0, _ipv4(source), _ipv4(destination))
    header = header[:10] + struct.pack("!H", internet_checksum(header)) + header[12:]
    return header + payload


def ipv6_packet(
    source: str, destination: str, next_header: int, payload: bytes, *, hops: int = _TTL
) -> bytes:
    """An IPv6 header (no extension header) and its payload."""
    header = _IPV6.pack(
        6 << 28,
        len(payload),
        next_header,
        hops,
        ipaddress.IPv6Address(source).packed,
        ipaddress.IPv6Address(destination).packed,
    )
    return header + payload


def ip_frame(destination_mac: str, source_mac: str, packet: bytes) -> bytes:
    """An IP packet (either family, by its version) in an Ethernet frame."""
    ethertype = ETH_P_IPV6 if packet[0] >> 4 == 6 else ETH_P_IP
    return _ethernet(destination_mac, source_mac, ethertype, packet)


def transport_checksum(source: str, destination: str, protocol: int, segment: bytes) -> int:
    """The checksum of a TCP segment or ICMPv6 message over its pseudo-header (RFC 9293 3.1,
    RFC 8200 8.1); ICMP for IPv4 has none and is summed alone."""
    if _v6(destination):
        pseudo = _PSEUDO6.pack(
            ipaddress.IPv6Address(source).packed,
            ipaddress.IPv6Address(destination).packed,
            len(segment),
            protocol,
        )
    else:
        pseudo = _PSEUDO.pack(_ipv4(source), _ipv4(destination), 0, protocol, len(segment))
    return internet_checksum(pseudo + segment)


# -- ARP ----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Arp:
    """One ARP message: ``sender_mac`` says it holds ``sender_ip``."""

    operation: int  # ARP_REQUEST | ARP_REPLY
    sender_mac: str
    sender_ip: str
    target_mac: str
    target_ip: str
    source_mac: str  # the Ethernet source (normally the sender's MAC)


def arp_probe(source_mac: str, target_ip: str) -> bytes:
    """A broadcast "who has ``target_ip``?" with sender address 0.0.0.0 (an RFC 5227 probe).

    A probe teaches no host anything about the asker (there is no sender address to put in a
    neighbour table), yet every host that would claim ``target_ip`` answers it, to
    ``source_mac``: Linux answers probes under the same ``arp_ignore`` rule as other requests
    (net/ipv4/arp.c, "IPv4 duplicate address detection packet").
    """
    body = _ARP.pack(
        1,  # Ethernet
        ETH_P_IP,
        6,
        4,
        ARP_REQUEST,
        mac_bytes(source_mac),
        bytes(4),
        bytes(6),
        _ipv4(target_ip),
    )
    return _ethernet(BROADCAST, source_mac, ETH_P_ARP, body)


def arp_reply(sender_mac: str, sender_ip: str, target_mac: str, target_ip: str) -> bytes:
    """An ARP reply: ``sender_ip`` is at ``sender_mac``, unicast to ``target_mac``."""
    body = _ARP.pack(
        1,
        ETH_P_IP,
        6,
        4,
        ARP_REPLY,
        mac_bytes(sender_mac),
        _ipv4(sender_ip),
        mac_bytes(target_mac),
        _ipv4(target_ip),
    )
    return _ethernet(target_mac, sender_mac, ETH_P_ARP, body)


def parse_arp(frame: bytes) -> Arp | None:
    """The ARP message of an Ethernet frame; None for any other frame."""
    if len(frame) < _ETHERNET.size + _ARP.size:
        return None
    _, source, ethertype = _ETHERNET.unpack_from(frame)
    if ethertype != ETH_P_ARP:
        return None
    htype, ptype, hlen, plen, operation, sha, spa, tha, tpa = _ARP.unpack_from(
        frame, _ETHERNET.size
    )
    if (htype, ptype, hlen, plen) != (1, ETH_P_IP, 6, 4):
        return None
    return Arp(
        operation=operation,
        sender_mac=mac_text(sha),
        sender_ip=_ipv4_text(spa),
        target_mac=mac_text(tha),
        target_ip=_ipv4_text(tpa),
        source_mac=mac_text(source),
    )


# -- IPv4: TCP and ICMP -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Segment:
    """What ``parse_ipv4`` read from a frame: the addresses and, for TCP or ICMP, its header."""

    source_mac: str
    destination_mac: str
    source: str
    destination: str
    protocol: int
    source_port: int = 0  # TCP
    destination_port: int = 0  # TCP
    seq: int = 0  # TCP; ICMP echo: the sequence number
    ack: int = 0  # TCP; ICMP echo: the identifier
    flags: TcpFlag = NO_FLAGS  # TCP
    icmp_type: int = -1  # ICMP or ICMPv6


def tcp_segment(
    *,
    source_mac: str,
    destination_mac: str,
    source: str,
    destination: str,
    source_port: int,
    destination_port: int,
    seq: int,
    ack: int = 0,
    flags: TcpFlag,
    ident: int = 0,
) -> bytes:
    """An Ethernet frame holding one TCP segment without data; a SYN carries an MSS option."""
    options = struct.pack("!BBH", 2, 4, _TCP_MSS) if flags & TcpFlag.syn else b""
    offset = (_TCP.size + len(options)) // 4
    window = 0 if flags & TcpFlag.rst else _TCP_WINDOW
    header = _TCP.pack(
        source_port, destination_port, seq, ack, offset << 4, int(flags), window, 0, 0
    )
    segment = header + options
    checksum = transport_checksum(source, destination, IPPROTO_TCP, segment)
    segment = segment[:16] + struct.pack("!H", checksum) + segment[18:]
    packet = _ip_packet(source, destination, IPPROTO_TCP, ident, segment)
    return ip_frame(destination_mac, source_mac, packet)


def icmp_echo(
    *,
    source_mac: str,
    destination_mac: str,
    source: str,
    destination: str,
    identifier: int,
    sequence: int,
    reply: bool = False,
) -> bytes:
    """An ICMP echo request (or reply) with a short payload; ICMPv6 between IPv6 addresses."""
    if _v6(destination):
        message = icmp.echo(identifier, sequence, b"bascule dsr verify", v6=True, reply=reply)
        checksum = transport_checksum(source, destination, IPPROTO_ICMPV6, message)
        message = message[:2] + struct.pack("!H", checksum) + message[4:]
        packet = ipv6_packet(source, destination, IPPROTO_ICMPV6, message)
    else:
        message = icmp.echo(identifier, sequence, b"bascule dsr verify", reply=reply)
        packet = _ip_packet(source, destination, IPPROTO_ICMP, identifier, message)
    return ip_frame(destination_mac, source_mac, packet)


def parse_ip(frame: bytes) -> Segment | None:
    """``parse_ipv4`` or ``parse_ipv6``, by the frame's Ethernet type."""
    if len(frame) >= _ETHERNET.size and _ETHERNET.unpack_from(frame)[2] == ETH_P_IPV6:
        return parse_ipv6(frame)
    return parse_ipv4(frame)


def parse_ipv6(frame: bytes) -> Segment | None:
    """The IPv6 header of a frame, with its TCP or ICMPv6 echo header; None for other frames
    (a packet with extension headers is returned without its transport header)."""
    if len(frame) < _ETHERNET.size + _IPV6.size:
        return None
    destination_mac, source_mac, ethertype = _ETHERNET.unpack_from(frame)
    if ethertype != ETH_P_IPV6:
        return None
    first, length, next_header, _, source, destination = _IPV6.unpack_from(frame, _ETHERNET.size)
    if first >> 28 != 6:
        return None
    base = Segment(
        source_mac=mac_text(source_mac),
        destination_mac=mac_text(destination_mac),
        source=str(ipaddress.IPv6Address(source)),
        destination=str(ipaddress.IPv6Address(destination)),
        protocol=next_header,
    )
    start = _ETHERNET.size + _IPV6.size
    return _transport(base, frame[start : start + length], icmp_protocol=IPPROTO_ICMPV6)


def _transport(base: Segment, payload: bytes, *, icmp_protocol: int) -> Segment:
    """``base`` with the TCP or ICMP echo header read from ``payload``."""
    if base.protocol == IPPROTO_TCP and len(payload) >= _TCP.size:
        sport, dport, seq, ack, _, flags, _, _, _ = _TCP.unpack_from(payload)
        return replace(
            base,
            source_port=sport,
            destination_port=dport,
            seq=seq,
            ack=ack,
            flags=TcpFlag(flags & 0x1F),
        )
    echo = icmp.echo_header(payload) if base.protocol == icmp_protocol else None
    if echo is not None:
        return replace(base, seq=echo.sequence, ack=echo.identifier, icmp_type=echo.type)
    return base


def parse_ipv4(frame: bytes) -> Segment | None:
    """The IPv4 header of a frame, with its TCP or ICMP echo header; None for other frames.

    Checksums are not verified: the sender's NIC may leave them to offload, and a packet
    socket sees the frame before the stack would check them.
    """
    if len(frame) < _ETHERNET.size + _IPV4.size:
        return None
    destination_mac, source_mac, ethertype = _ETHERNET.unpack_from(frame)
    if ethertype != ETH_P_IP:
        return None
    start = _ETHERNET.size
    version_ihl, _, length, _, fragment, _, protocol, _, source, destination = _IPV4.unpack_from(
        frame, start
    )
    header_length = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4 or header_length < _IPV4.size:
        return None
    base = Segment(
        source_mac=mac_text(source_mac),
        destination_mac=mac_text(destination_mac),
        source=_ipv4_text(source),
        destination=_ipv4_text(destination),
        protocol=protocol,
    )
    payload = frame[start + header_length : start + max(length, header_length)]
    if fragment & 0x1FFF:  # a later fragment has no transport header
        return base
    return _transport(base, payload, icmp_protocol=IPPROTO_ICMP)
