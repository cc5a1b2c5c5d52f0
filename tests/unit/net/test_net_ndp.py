"""IPv6 on the wire (net/ndp.py, and the IPv6 side of net/frames.py): neighbour discovery
probes and advertisements, TCP and ICMPv6 echo in IPv6 frames, and reading them back.

Checksums are checked the way a receiver checks them: the Internet checksum over the
pseudo-header and the message, checksum included, is zero. The kernel's own acceptance of
these frames is tested on the wire (tests/integration/test_ipv6.py, ``bascule dsr verify``).
"""

from __future__ import annotations

import ipaddress
import struct

from bascule.net.checksum import internet_checksum
from bascule.net.frames import (
    ETH_P_IPV6,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    TcpFlag,
    icmp_echo,
    parse_ip,
    parse_ipv6,
    tcp_segment,
)
from bascule.net.ndp import (
    NEIGHBOUR_SOLICITATION,
    advertisement,
    parse_advertisement,
    solicitation_probe,
    solicited_node,
)

LB = "02:00:00:00:00:02"
RS = "02:00:00:00:00:0b"
VIP = "2001:2::100"
SOURCE = "2001:2::2"


def valid(source: str, destination: str, protocol: int, message: bytes) -> bool:
    pseudo = (
        ipaddress.IPv6Address(source).packed
        + ipaddress.IPv6Address(destination).packed
        + struct.pack("!I3xB", len(message), protocol)
    )
    return internet_checksum(pseudo + message) == 0


def ipv6_parts(frame: bytes) -> tuple[int, int, int, str, str, bytes]:
    """(ethertype, next header, hop limit, source, destination, payload) of a frame."""
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    first, length, next_header, hops = struct.unpack_from("!IHBB", frame, 14)
    assert first >> 28 == 6
    source = str(ipaddress.IPv6Address(frame[22:38]))
    destination = str(ipaddress.IPv6Address(frame[38:54]))
    return ethertype, next_header, hops, source, destination, frame[54 : 54 + length]


def test_solicited_node_groups() -> None:
    assert solicited_node("2001:2::100") == ("ff02::1:ff00:100", "33:33:ff:00:01:00")
    assert solicited_node("2001:2::abcd:1234") == ("ff02::1:ffcd:1234", "33:33:ff:cd:12:34")


def test_a_probe_is_a_dad_solicitation_to_the_solicited_node_group() -> None:
    frame = solicitation_probe(LB, VIP)
    assert frame[:6] == bytes.fromhex("3333ff000100")  # the group's Ethernet address
    ethertype, next_header, hops, source, destination, message = ipv6_parts(frame)
    assert (ethertype, next_header, hops) == (ETH_P_IPV6, IPPROTO_ICMPV6, 255)
    assert (source, destination) == ("::", "ff02::1:ff00:100")  # nothing to learn from it
    assert message[0] == NEIGHBOUR_SOLICITATION
    assert message[8:24] == ipaddress.IPv6Address(VIP).packed
    assert len(message) == 24  # no source link-layer option from ::
    assert valid(source, destination, IPPROTO_ICMPV6, message)
    assert parse_advertisement(frame) is None  # a solicitation is no answer


def test_an_advertisement_round_trips() -> None:
    frame = advertisement(RS, "2001:2::11", LB, SOURCE)
    _, _, hops, source, destination, message = ipv6_parts(frame)
    assert hops == 255 and valid(source, destination, IPPROTO_ICMPV6, message)
    parsed = parse_advertisement(frame)
    assert parsed is not None
    assert (parsed.target, parsed.mac, parsed.solicited) == ("2001:2::11", RS, True)


def test_the_target_link_address_option_names_the_mac() -> None:
    # a proxy may send from another MAC: the option, not the frame's source, says who holds it
    frame = bytearray(advertisement(RS, "2001:2::11", LB, SOURCE))
    frame[6:12] = bytes.fromhex("020000000063")
    parsed = parse_advertisement(bytes(frame))
    assert parsed is not None and parsed.mac == RS


def syn_to_the_vip(seq: int) -> bytes:
    return tcp_segment(
        source_mac=LB,
        destination_mac=RS,
        source=SOURCE,
        destination=VIP,
        source_port=40000,
        destination_port=80,
        seq=seq,
        flags=TcpFlag.syn,
    )


def test_other_frames_are_not_advertisements() -> None:
    assert parse_advertisement(b"") is None
    assert parse_advertisement(syn_to_the_vip(1)) is None


def test_a_syn_to_an_ipv6_vip() -> None:
    frame = syn_to_the_vip(0xFFFFFFFF)
    ethertype, next_header, hops, source, destination, segment = ipv6_parts(frame)
    assert (ethertype, next_header, hops) == (ETH_P_IPV6, IPPROTO_TCP, 64)
    assert valid(source, destination, IPPROTO_TCP, segment)
    parsed = parse_ip(frame)
    assert parsed is not None and parsed == parse_ipv6(frame)
    assert (parsed.source, parsed.destination) == (SOURCE, VIP)
    assert (parsed.source_port, parsed.destination_port, parsed.seq) == (40000, 80, 0xFFFFFFFF)
    assert parsed.flags == TcpFlag.syn
    assert (parsed.source_mac, parsed.destination_mac) == (LB, RS)


def test_an_icmpv6_echo_reply_is_read_back() -> None:
    request = icmp_echo(
        source_mac=LB,
        destination_mac=RS,
        source=SOURCE,
        destination=VIP,
        identifier=0x1234,
        sequence=1,
    )
    _, next_header, _, source, destination, message = ipv6_parts(request)
    assert next_header == IPPROTO_ICMPV6 and message[0] == 128
    assert valid(source, destination, IPPROTO_ICMPV6, message)
    reply = icmp_echo(
        source_mac=RS,
        destination_mac=LB,
        source=VIP,
        destination=SOURCE,
        identifier=0x1234,
        sequence=1,
        reply=True,
    )
    parsed = parse_ip(reply)
    assert parsed is not None
    assert (parsed.protocol, parsed.icmp_type, parsed.ack, parsed.seq) == (58, 129, 0x1234, 1)
