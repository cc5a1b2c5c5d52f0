"""The frames of ``dsr verify``: ARP probes, TCP SYN/RST, ICMP echo, and reading answers."""

from __future__ import annotations

import struct

import pytest

from bascule.engines.nftables.frames import (
    ARP_REPLY,
    ARP_REQUEST,
    IPPROTO_TCP,
    MIN_FRAME,
    Answer,
    TcpFlag,
    VipProbe,
    arp_probe,
    arp_reply,
    checksum,
    icmp_echo,
    mac_bytes,
    parse_arp,
    parse_ipv4,
    tcp_segment,
)

LB = "02:00:00:00:00:02"
RS = "02:00:00:00:00:0b"
OTHER = "02:00:00:00:00:63"
VIP = "198.18.0.100"


def probe(*, tcp: bool = True) -> VipProbe:
    return VipProbe(
        lb_mac=LB,
        server_mac=RS,
        source="198.18.0.2",
        source_port=40000,
        vip=VIP,
        port=80,
        isn=0xFFFFFFFF,  # the ack of its SYN-ACK wraps to 0
        tcp=tcp,
    )


def test_checksum_of_rfc1071_example() -> None:
    # RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2, so the checksum is 220d
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert checksum(b"\x01") == ~0x0100 & 0xFFFF  # odd length: padded with a zero


def test_mac_bytes_refuses_what_is_not_a_mac() -> None:
    assert mac_bytes("02:00:00:00:00:0B") == bytes.fromhex("02000000000b")
    for bad in ("02:00:00:00:00", "02-00-00-00-00-0b", "0g:00:00:00:00:0b", "2:0:0:0:0:b"):
        with pytest.raises(ValueError, match="is not a MAC address"):
            mac_bytes(bad)


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
    syn = probe().request()
    assert parse_arp(syn) is None
    assert parse_arp(b"\x00" * 10) is None
    assert parse_ipv4(arp_probe(LB, VIP)) is None
    assert parse_ipv4(b"\x00" * 20) is None
    not_ethernet_arp = bytearray(arp_probe(LB, VIP))
    not_ethernet_arp[14:16] = b"\x00\x06"  # IEEE 802 hardware
    assert parse_arp(bytes(not_ethernet_arp)) is None


def test_syn_has_valid_checksums_and_an_mss_option() -> None:
    frame = probe().request()
    ip_header = frame[14:34]
    segment = frame[34 : 14 + struct.unpack("!H", ip_header[2:4])[0]]

    assert checksum(ip_header) == 0
    pseudo = ip_header[12:20] + struct.pack("!BBH", 0, IPPROTO_TCP, len(segment))
    assert checksum(pseudo + segment) == 0
    assert segment[12] >> 4 == 6  # 24-octet header: the MSS option
    assert segment[20:24] == bytes.fromhex("020405b4")  # MSS 1460
    parsed = parse_ipv4(frame)
    assert parsed is not None
    assert (parsed.source_mac, parsed.destination_mac) == (LB, RS)
    assert (parsed.source, parsed.destination) == ("198.18.0.2", VIP)
    assert (parsed.source_port, parsed.destination_port) == (40000, 80)
    assert (parsed.seq, parsed.flags) == (0xFFFFFFFF, TcpFlag.syn)


def test_reset_follows_the_syn() -> None:
    parsed = parse_ipv4(probe().reset())

    assert parsed is not None
    assert parsed.flags == TcpFlag.rst
    assert parsed.seq == 0  # isn + 1, wrapped
    assert (parsed.destination_mac, parsed.destination, parsed.destination_port) == (RS, VIP, 80)


def reply(
    flags: TcpFlag, *, ack: int = 0, mac: str = RS, source: str = VIP, sport: int = 80
) -> bytes:
    return tcp_segment(
        source_mac=mac,
        destination_mac=LB,
        source=source,
        destination="198.18.0.2",
        source_port=sport,
        destination_port=40000,
        seq=12345,
        ack=ack,
        flags=flags,
    )


def test_answers_to_the_syn() -> None:
    syn_ack = TcpFlag.syn | TcpFlag.ack
    check = probe()

    assert check.answer(reply(syn_ack)) == (Answer.accepted, RS)
    assert check.answer(reply(TcpFlag.rst | TcpFlag.ack)) == (Answer.refused, RS)
    assert check.answer(reply(syn_ack, mac=OTHER)) == (Answer.foreign, OTHER)
    # not ours: wrong ack, wrong source address or port, a plain ACK, an ARP frame
    assert check.answer(reply(syn_ack, ack=5)) is None
    assert check.answer(reply(syn_ack, source="198.18.0.11")) is None
    assert check.answer(reply(syn_ack, sport=81)) is None
    assert check.answer(reply(TcpFlag.ack)) is None
    assert check.answer(arp_probe(RS, VIP)) is None


def test_icmp_echo_for_udp_services() -> None:
    check = probe(tcp=False)
    request = parse_ipv4(check.request())
    assert request is not None
    assert (request.icmp_type, request.ack, request.destination) == (8, 0xFFFF, VIP)
    frame = check.request()
    assert checksum(frame[34 : 14 + struct.unpack("!H", frame[16:18])[0]]) == 0

    def echo(mac: str, identifier: int) -> bytes:
        return icmp_echo(
            source_mac=mac,
            destination_mac=LB,
            source=VIP,
            destination="198.18.0.2",
            identifier=identifier,
            sequence=1,
            reply=True,
        )

    assert check.answer(echo(RS, 0xFFFF)) == (Answer.accepted, RS)
    assert check.answer(echo(OTHER, 0xFFFF)) == (Answer.foreign, OTHER)
    assert check.answer(echo(RS, 7)) is None
    assert check.answer(check.request()) is None  # our own request is no answer
