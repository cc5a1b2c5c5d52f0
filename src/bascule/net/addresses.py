"""How addresses are written: ``host:port`` with IPv6 in brackets, host prefixes, MACs (pure).

Where it sits: every module above ``net`` that prints an address next to a port (a real
server's name in a message, a URL, a ``Host`` header, a socket address in an error) writes it
with ``host_port`` or ``url_host``, so an IPv6 address is always bracketed the same way
(RFC 3986 section 3.2.2). The model, below ``net``, spells a real server's key itself
(``RealServer.key``); a test holds the two to the same spelling.
"""

from __future__ import annotations

import ipaddress


def url_host(address: str) -> str:
    """The host part of a URL or ``Host`` header: ``[2001:db8::1]``, ``198.18.0.1``, a name."""
    host = address.strip("[]")
    return f"[{host}]" if ":" in host else host


def host_port(address: str, port: int | str) -> str:
    """``198.18.0.4:80``, ``[2001:db8::4]:80``, ``example.com:80``."""
    return f"{url_host(address)}:{port}"


def host_prefix(address: str) -> str:
    """The address as a host route or host address: ``198.18.0.100/32``, ``2001:db8::1/128``."""
    return f"{address}/{ipaddress.ip_address(address).max_prefixlen}"


#: The IPv6 prefix that counts as one client: a /64 is what one site or one host usually gets,
#: so an attacker holding one has 2**64 addresses but still one source.
SOURCE_PREFIX_V6 = 64
#: A client address that is not an IP address (a unix socket's peer) is kept to this length.
SOURCE_TEXT = 64


def client_source(address: str) -> str:
    """The client a remote address stands for, for limits per source: an IPv4 address as is,
    an IPv6 address as its /64 (``2001:db8:1:2::/64``; an IPv4-mapped one as the IPv4
    address), anything else cut to ``SOURCE_TEXT`` characters."""
    try:
        parsed = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address[:SOURCE_TEXT]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, SOURCE_PREFIX_V6), strict=False))
    return str(parsed)


def mac_bytes(mac: str) -> bytes:
    """``02:00:c6:12:00:0b`` -> 6 octets; ValueError for anything else."""
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(part) == 2 for part in parts):
        raise ValueError(f"{mac!r} is not a MAC address like 02:00:c6:12:00:0b")
    try:
        return bytes(int(part, 16) for part in parts)
    except ValueError:
        raise ValueError(f"{mac!r} is not a MAC address like 02:00:c6:12:00:0b") from None


def mac_text(raw: bytes) -> str:
    """6 octets -> ``02:00:c6:12:00:0b`` (lower case, as iproute2 prints them)."""
    return ":".join(f"{octet:02x}" for octet in raw)
