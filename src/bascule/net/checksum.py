"""The Internet checksum of IPv4 headers, TCP segments and ICMP messages (RFC 1071), pure."""

from __future__ import annotations

import struct


def internet_checksum(data: bytes) -> int:
    """The ones' complement of the ones' complement sum of ``data``'s 16-bit words (an odd
    length is padded with a zero octet). Data that carries its checksum sums to 0."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
