"""net/icmp.py and net/checksum.py: echo messages, the judge of what comes back, RFC 1071."""

from __future__ import annotations

import struct

import pytest

from bascule.net import icmp
from bascule.net.checksum import internet_checksum


def test_checksum_of_rfc1071_example() -> None:
    # RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2, so the checksum is 220d
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert internet_checksum(b"\x01") == ~0x0100 & 0xFFFF  # odd length: padded with a zero
    assert internet_checksum(b"\xff") == 0x00FF


def test_an_echo_request_carries_its_checksum() -> None:
    # An echo request with the checksum in place sums to zero (RFC 1071).
    request = icmp.echo(0x4242, 1, b"abcdefgh")
    assert request[:2] == b"\x08\x00"
    assert internet_checksum(request) == 0


def ipv4(payload: bytes) -> bytes:
    return bytes([0x45]) + bytes(19) + payload


def test_judging_echo_replies_and_errors() -> None:
    reply = bytes([0, 0, 0, 0]) + struct.pack("!HH", 7, 9) + b"x"
    assert icmp.judge_echo_reply(reply, ident=7, sequence=9) is True
    assert icmp.judge_echo_reply(reply, ident=8, sequence=9) is None  # another pinger's
    assert icmp.judge_echo_reply(reply, ident=None, sequence=9) is True  # datagram socket
    assert icmp.judge_echo_reply(reply, ident=7, sequence=10) is None
    request = icmp.echo(7, 9, b"x")
    assert icmp.judge_echo_reply(request, ident=7, sequence=9) is None  # our own request
    unreachable = bytes([3, 1, 0, 0, 0, 0, 0, 0]) + ipv4(request)
    assert icmp.judge_echo_reply(unreachable, ident=7, sequence=9) is False
    assert icmp.judge_echo_reply(unreachable, ident=7, sequence=8) is None
    assert icmp.judge_echo_reply(b"\x00", ident=7, sequence=9) is None
    v6_reply = bytes([129, 0, 0, 0]) + struct.pack("!HH", 7, 9)
    assert icmp.judge_echo_reply(v6_reply, ident=7, sequence=9, v6=True) is True
    assert icmp.judge_echo_reply(v6_reply, ident=7, sequence=9) is None
    assert icmp.strip_ipv4_header(ipv4(b"abc")) == b"abc"
    with pytest.raises(ValueError, match="IPv4"):
        icmp.strip_ipv4_header(b"\x60" + bytes(39))


def test_icmpv6_echo_leaves_the_checksum_to_the_kernel_and_replies_have_their_type() -> None:
    assert icmp.echo(7, 9, b"x", v6=True) == bytes([128, 0, 0, 0]) + struct.pack("!HH", 7, 9) + b"x"
    reply = icmp.echo(7, 9, b"x", reply=True)
    assert reply[0] == icmp.ECHO_REPLY and internet_checksum(reply) == 0
    assert icmp.echo_header(reply) == icmp.EchoHeader(type=0, identifier=7, sequence=9)
    assert icmp.echo_header(b"\x00\x00") is None
