"""Wire formats of the health probes: DNS, LDAP bind, RDP connect (pure).

Where it sits: probes.py does the I/O and asks this module to build the bytes it sends and
to judge the bytes it receives (ICMP echo is net/icmp.py's, shared with ``dsr verify``).
Nothing here touches a socket; every function is a value in, a value (or a ValueError naming
what is wrong) out, so the formats are tested without root.
"""

from __future__ import annotations

import struct

# -- DNS (RFC 1035 section 4.1) ---------------------------------------------------------------

DNS_TYPE_A = 1
DNS_TYPE_NS = 2
DNS_CLASS_IN = 1
_DNS_HEADER = struct.Struct("!HHHHHH")  # id, flags, qdcount, ancount, nscount, arcount
_DNS_QR = 0x8000
_DNS_RD = 0x0100
DNS_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def encode_dns_name(name: str) -> bytes:
    """``www.example.com`` -> length-prefixed labels ending with the root's empty label."""
    labels = [label for label in name.rstrip(".").split(".") if label] if name != "." else []
    out = bytearray()
    for label in labels:
        raw = label.encode("ascii")
        if not 1 <= len(raw) <= 63:
            raise ValueError(f"DNS label {label!r} must be 1 to 63 characters")
        out += bytes([len(raw)]) + raw
    out.append(0)
    if len(out) > 255:
        raise ValueError(f"DNS name {name!r} is longer than 255 octets")
    return bytes(out)


def build_dns_query(ident: int, name: str = ".", qtype: int = DNS_TYPE_NS) -> bytes:
    """A standard query with recursion desired, one question (``name``, ``qtype``, IN)."""
    header = _DNS_HEADER.pack(ident & 0xFFFF, _DNS_RD, 1, 0, 0, 0)
    return header + encode_dns_name(name) + struct.pack("!HH", qtype, DNS_CLASS_IN)


def _skip_dns_name(data: bytes, offset: int) -> int:
    """The offset just past the (possibly compressed) name that starts at ``offset``."""
    while True:
        if offset >= len(data):
            raise ValueError("truncated name")
        length = data[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:  # a pointer (section 4.1.4) ends the name
            if offset + 2 > len(data):
                raise ValueError("truncated name pointer")
            return offset + 2
        if length & 0xC0:
            raise ValueError(f"bad label length byte {length:#x}")
        offset += 1 + length


def parse_dns_response(data: bytes, query: bytes) -> int:
    """The RCODE of ``data`` if it is a well-formed response to ``query``, else ValueError.

    Well-formed: a full header with the query's ID and the QR bit, and, when the server
    echoes a question (it should), the very question that was asked.
    """
    if len(data) < _DNS_HEADER.size:
        raise ValueError(f"response of {len(data)} bytes is shorter than a DNS header")
    ident, flags, qdcount, _, _, _ = _DNS_HEADER.unpack_from(data)
    (wanted,) = struct.unpack_from("!H", query)
    if ident != wanted:
        raise ValueError(f"response ID {ident} does not match query ID {wanted}")
    if not flags & _DNS_QR:
        raise ValueError("the QR bit is not set: this is a query, not a response")
    if qdcount:
        question = query[_DNS_HEADER.size :]
        end = _skip_dns_name(data, _DNS_HEADER.size) + 4
        if end > len(data):
            raise ValueError("truncated question section")
        if data[_DNS_HEADER.size : end].lower() != question.lower():
            raise ValueError("the response answers another question")
    return int(flags) & 0x000F


# -- LDAP (RFC 4511 section 4.2): an anonymous simple bind, as HAProxy's ldap-check -----------

# SEQUENCE { messageID 1, [APPLICATION 0] BindRequest { version 3, name "", simple "" } }
LDAP_ANONYMOUS_BIND = bytes.fromhex("300c020101600702010304008000")


def ldap_bind_result(data: bytes) -> int:
    """The resultCode of a BindResponse to LDAP_ANONYMOUS_BIND, else ValueError."""

    def length_at(offset: int) -> tuple[int, int]:
        if offset >= len(data):
            raise ValueError("truncated LDAP message")
        first = data[offset]
        if first < 0x80:
            return first, offset + 1
        size = first & 0x7F
        if not 1 <= size <= 4 or offset + 1 + size > len(data):
            raise ValueError("bad BER length")
        return int.from_bytes(data[offset + 1 : offset + 1 + size], "big"), offset + 1 + size

    if not data or data[0] != 0x30:
        raise ValueError("not an LDAP message (no SEQUENCE)")
    _, offset = length_at(1)
    if offset >= len(data) or data[offset] != 0x02:
        raise ValueError("no messageID")
    id_length, offset = length_at(offset + 1)
    offset += id_length
    if offset >= len(data) or data[offset] != 0x61:
        raise ValueError("not a BindResponse")
    _, offset = length_at(offset + 1)
    if offset + 3 > len(data) or data[offset] != 0x0A or data[offset + 1] != 0x01:
        raise ValueError("no resultCode")
    return data[offset + 2]


# -- RDP (MS-RDPBCGR 2.2.1.1): an X.224 Connection Request over TPKT -------------------------

# TPKT v3, length 19; X.224 CR (0xe0), no cookie; RDP_NEG_REQ asking for TLS or CredSSP.
RDP_CONNECTION_REQUEST = bytes.fromhex("030000130ee000000000000100080003000000")


def is_rdp_connection_confirm(data: bytes) -> bool:
    """True when ``data`` starts with a TPKT carrying an X.224 Connection Confirm."""
    return len(data) >= 6 and data[0] == 0x03 and data[5] & 0xF0 == 0xD0
