"""ICMP and ICMPv6 echo messages (RFC 792, RFC 4443): built and judged, pure.

Where it sits: the health checker's ``icmp`` probe (health/probes.py) sends ``echo`` on an
ICMP socket and asks ``judge_echo_reply`` about what comes back; ``frames.icmp_echo`` puts
the same message in an Ethernet frame for ``bascule dsr verify``. A message here is the ICMP
header and its data, without the IP header.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bascule.net.checksum import internet_checksum

ECHO_REQUEST = 8
ECHO_REPLY = 0
UNREACHABLE = 3
TIME_EXCEEDED = 11
V6_ECHO_REQUEST = 128
V6_ECHO_REPLY = 129
V6_UNREACHABLE = 1
_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
_IPV6_HEADER = 40


@dataclass(frozen=True, kw_only=True)
class EchoHeader:
    """The header of an ICMP message read as an echo's: type, identifier, sequence."""

    type: int
    identifier: int
    sequence: int


def echo(
    identifier: int, sequence: int, payload: bytes, *, v6: bool = False, reply: bool = False
) -> bytes:
    """An echo request (or reply). For ICMPv6 the kernel computes the checksum (it covers a
    pseudo-header this side does not know), so it is left at zero."""
    if v6:
        kind = V6_ECHO_REPLY if reply else V6_ECHO_REQUEST
    else:
        kind = ECHO_REPLY if reply else ECHO_REQUEST
    header = _HEADER.pack(kind, 0, 0, identifier & 0xFFFF, sequence & 0xFFFF)
    if v6:
        return header + payload
    message = header + payload
    return message[:2] + struct.pack("!H", internet_checksum(message)) + message[4:]


def echo_header(message: bytes) -> EchoHeader | None:
    """The header of ``message`` (None if it is too short to hold one)."""
    if len(message) < _HEADER.size:
        return None
    kind, _, _, identifier, sequence = _HEADER.unpack_from(message)
    return EchoHeader(type=kind, identifier=identifier, sequence=sequence)


def strip_ipv4_header(packet: bytes) -> bytes:
    """The payload of an IPv4 packet (a raw IPv4 socket receives the header too)."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        raise ValueError("not an IPv4 packet")
    return packet[(packet[0] & 0x0F) * 4 :]


def judge_echo_reply(
    message: bytes, *, ident: int | None, sequence: int, v6: bool = False
) -> bool | None:
    """Judge one ICMP message (without its IP header) against our echo request.

    True: it is our echo reply. False: it is an error (unreachable, time exceeded) about our
    request. None: it is about something else; keep waiting. ``ident=None`` accepts any
    identifier (an ICMP datagram socket rewrites it with its own).
    """
    header = echo_header(message)
    if header is None:
        return None
    if header.type == (V6_ECHO_REPLY if v6 else ECHO_REPLY):
        ours = (ident is None or header.identifier == ident) and header.sequence == sequence
        return True if ours else None
    if header.type in ({V6_UNREACHABLE} if v6 else {UNREACHABLE, TIME_EXCEEDED}):
        # The error quotes the offending packet: its IP header, then our ICMP header.
        quoted = message[_HEADER.size :]
        try:
            inner = echo_header(quoted[_IPV6_HEADER:] if v6 else strip_ipv4_header(quoted))
        except ValueError:
            return None
        if inner is None:
            return None
        if (ident is None or inner.identifier == ident) and inner.sequence == sequence:
            return False
    return None
