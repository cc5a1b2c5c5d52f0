"""dsr/probe.py: the test packet of ``dsr verify`` and what a real server's answer means."""

from __future__ import annotations

import struct

from bascule.dsr.probe import Answer, VipProbe
from bascule.net.checksum import internet_checksum
from bascule.net.frames import TcpFlag, arp_probe, icmp_echo, parse_ipv4, tcp_segment

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


def test_the_request_is_a_syn_to_the_vip_in_a_frame_to_the_server() -> None:
    parsed = parse_ipv4(probe().request())

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
    assert internet_checksum(frame[34 : 14 + struct.unpack("!H", frame[16:18])[0]]) == 0

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
