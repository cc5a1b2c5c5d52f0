"""net/frames.py: ARP probes and replies, TCP segments, ICMP echo in frames, and reading them."""

from __future__ import annotations

import struct

from bascule.net.checksum import internet_checksum
from bascule.net.frames import (
    ARP_REPLY,
    ARP_REQUEST,
    IPPROTO_TCP,
    MIN_FRAME,
    TcpFlag,
    arp_probe,
    arp_reply,
    icmp_echo,
    parse_arp,
    parse_ipv4,
    tcp_segment,
)

LB = "02:00:00:00:00:02"
RS = "02:00:00:00:00:0b"
OTHER = "02:00:00:00:00:63"
VIP = "198.18.0.100"


def syn() -> bytes:
    return tcp_segment(
        source_mac=LB,
        destination_mac=RS,
        source="198.18.0.2",
        destination=VIP,
        source_port=40000,
        destination_port=80,
        seq=0xFFFFFFFF,
        flags=TcpFlag.syn,
    )


def test_arp_probe_is_a_broadcast_request_from_0_0_0_0() -> None:
    frame = arp_probe(LB, VIP)

    assert len(frame) == MIN_FRAME
    assert frame[:14] == bytes.fromhex("ffffffffffff0200000000020806")
    assert frame[14:42] == bytes.fromhex("000108000604000102000000000200000000000000000000c6120064")
    parsed = parse_arp(frame)
    assert parsed is not None
    assert (parsed.operation, parsed.sender_ip, parsed.target_ip) == (
        ARP_REQUEST,
        "0.0.0.0",
        VIP,
    )


def test_arp_reply_round_trips() -> None:
    parsed = parse_arp(arp_reply(RS, VIP, LB, "0.0.0.0"))

    assert parsed is not None
    assert parsed.operation == ARP_REPLY
    assert (parsed.sender_mac, parsed.sender_ip, parsed.source_mac) == (RS, VIP, RS)
    assert (parsed.target_mac, parsed.target_ip) == (LB, "0.0.0.0")


def test_parsers_ignore_other_frames() -> None:
    assert parse_arp(syn()) is None
    assert parse_arp(b"\x00" * 10) is None
    assert parse_ipv4(arp_probe(LB, VIP)) is None
    assert parse_ipv4(b"\x00" * 20) is None
    not_ethernet_arp = bytearray(arp_probe(LB, VIP))
    not_ethernet_arp[14:16] = b"\x00\x06"  # IEEE 802 hardware
    assert parse_arp(bytes(not_ethernet_arp)) is None


def test_syn_has_valid_checksums_and_an_mss_option() -> None:
    frame = syn()
    ip_header = frame[14:34]
    segment = frame[34 : 14 + struct.unpack("!H", ip_header[2:4])[0]]

    assert internet_checksum(ip_header) == 0
    pseudo = ip_header[12:20] + struct.pack("!BBH", 0, IPPROTO_TCP, len(segment))
    assert internet_checksum(pseudo + segment) == 0
    assert segment[12] >> 4 == 6  # 24-octet header: the MSS option
    assert segment[20:24] == bytes.fromhex("020405b4")  # MSS 1460
    parsed = parse_ipv4(frame)
    assert parsed is not None
    assert (parsed.source_mac, parsed.destination_mac) == (LB, RS)
    assert (parsed.source, parsed.destination) == ("198.18.0.2", VIP)
    assert (parsed.source_port, parsed.destination_port) == (40000, 80)
    assert (parsed.seq, parsed.flags) == (0xFFFFFFFF, TcpFlag.syn)


def test_icmp_echo_frames_carry_a_valid_echo() -> None:
    frame = icmp_echo(
        source_mac=LB,
        destination_mac=RS,
        source="198.18.0.2",
        destination=VIP,
        identifier=0x1FFFF,  # kept to 16 bits
        sequence=1,
    )
    parsed = parse_ipv4(frame)
    assert parsed is not None
    assert (parsed.icmp_type, parsed.ack, parsed.seq, parsed.destination) == (8, 0xFFFF, 1, VIP)
    assert internet_checksum(frame[34 : 14 + struct.unpack("!H", frame[16:18])[0]]) == 0
