"""IPv6 neighbour discovery (RFC 4861), what ARP is to IPv4: solicitations built, and
advertisements read (pure).

Where it sits: ``bascule dsr verify`` (dsr/verify.py) asks who holds each address of an
IPv6 DSR service, the VIP and the real servers', as it does with ARP for IPv4: one
``solicitation_probe`` per address on a packet socket, then the ``parse_advertisement`` of
every frame heard.

A probe is a duplicate address detection solicitation (RFC 4862 5.4.3): from the unspecified
address ``::``, with no source link-layer address, to the target's solicited-node multicast
group. Like an RFC 5227 ARP probe it teaches no host anything about the asker, yet every host
that holds the target on the interface asked answers it, with an advertisement to all nodes
(``ff02::1``) that carries its link-layer address. Linux answers only for addresses of the
interface the solicitation came in on (net/ipv6/ndisc.c, ``ndisc_recv_ns``), which is why a
real server's VIP on ``lo`` stays quiet on the segment.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from bascule.net.addresses import mac_bytes, mac_text
from bascule.net.frames import (
    ETH_P_IPV6,
    IPPROTO_ICMPV6,
    ip_frame,
    ipv6_packet,
    transport_checksum,
)

NEIGHBOUR_SOLICITATION = 135
NEIGHBOUR_ADVERTISEMENT = 136
_TARGET_LINK_ADDRESS = 2
_HOPS = 255  # RFC 4861 7.1.1: a node drops neighbour discovery with any other hop limit
_UNSPECIFIED = "::"

_ETHERNET = struct.Struct("!6s6sH")
_IPV6 = struct.Struct("!IHBB16s16s")
_MESSAGE = struct.Struct("!BBHI16s")  # type, code, checksum, flags/reserved, target


@dataclass(frozen=True, kw_only=True)
class Advertisement:
    """One neighbour advertisement: ``mac`` says it holds ``target``."""

    target: str
    mac: str  # its target link-layer address option, else the frame's source
    solicited: bool


def solicited_node(address: str) -> tuple[str, str]:
    """(the solicited-node multicast address, its Ethernet group) of an IPv6 address:
    ``ff02::1:ffXX:XXXX`` and ``33:33:ff:XX:XX:XX`` from its last 24 bits (RFC 4291 2.7.1,
    RFC 2464 7)."""
    low = ipaddress.IPv6Address(address).packed[-3:]
    group = ipaddress.IPv6Address(b"\xff\x02" + bytes(9) + b"\x01\xff" + low)
    return str(group), mac_text(b"\x33\x33\xff" + low)


def solicitation_probe(source_mac: str, target: str) -> bytes:
    """A duplicate-address-detection solicitation for ``target``, from ``source_mac``."""
    group, group_mac = solicited_node(target)
    message = _MESSAGE.pack(NEIGHBOUR_SOLICITATION, 0, 0, 0, ipaddress.IPv6Address(target).packed)
    checksum = transport_checksum(_UNSPECIFIED, group, IPPROTO_ICMPV6, message)
    message = message[:2] + struct.pack("!H", checksum) + message[4:]
    packet = ipv6_packet(_UNSPECIFIED, group, IPPROTO_ICMPV6, message, hops=_HOPS)
    return ip_frame(group_mac, source_mac, packet)


def advertisement(sender_mac: str, target: str, destination_mac: str, destination: str) -> bytes:
    """A solicited advertisement: ``target`` is at ``sender_mac`` (what a host answers; for
    tests and for fakes of the wire)."""
    flags = 0x60000000  # solicited, override
    message = _MESSAGE.pack(
        NEIGHBOUR_ADVERTISEMENT, 0, 0, flags, ipaddress.IPv6Address(target).packed
    )
    message += bytes([_TARGET_LINK_ADDRESS, 1]) + mac_bytes(sender_mac)
    checksum = transport_checksum(target, destination, IPPROTO_ICMPV6, message)
    message = message[:2] + struct.pack("!H", checksum) + message[4:]
    packet = ipv6_packet(target, destination, IPPROTO_ICMPV6, message, hops=_HOPS)
    return ip_frame(destination_mac, sender_mac, packet)


def parse_advertisement(frame: bytes) -> Advertisement | None:
    """The neighbour advertisement of an Ethernet frame; None for any other frame."""
    start = _ETHERNET.size + _IPV6.size
    if len(frame) < start + _MESSAGE.size:
        return None
    _, source_mac, ethertype = _ETHERNET.unpack_from(frame)
    if ethertype != ETH_P_IPV6:
        return None
    first, length, next_header, hops, _, _ = _IPV6.unpack_from(frame, _ETHERNET.size)
    if first >> 28 != 6 or next_header != IPPROTO_ICMPV6 or hops != _HOPS:
        return None
    kind, code, _, flags, target = _MESSAGE.unpack_from(frame, start)
    if kind != NEIGHBOUR_ADVERTISEMENT or code != 0:
        return None
    mac = mac_text(source_mac)
    options = frame[start + _MESSAGE.size : start + length]
    while len(options) >= 8 and options[1] > 0:
        size = options[1] * 8
        if options[0] == _TARGET_LINK_ADDRESS and size >= 8:
            mac = mac_text(options[2:8])
        options = options[size:]
    return Advertisement(
        target=str(ipaddress.IPv6Address(target)),
        mac=mac,
        solicited=bool(flags & 0x40000000),
    )
