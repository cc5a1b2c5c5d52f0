"""What a real server's first bytes say about its protocol, and the verdict drawn from them (pure).

Where it sits: ``type: auto`` on apply and ``bascule detect`` ask probes.py to talk to the real
servers; probes.py hands every byte it sees to ``classify`` and the outcome of every server to
``conclude``, which returns the ``Verdict``: the service type, the health check that suits the
protocol, and the evidence shown to the user, for instance
``detected: http — "HTTP/1.1 200" from 198.18.0.11:80``. Nothing here touches a socket or the
clock, so the rules are tested on byte captures.

The signatures, in the order ``classify`` tries them:

- ``HTTP/1.x NNN``: an HTTP status line (RFC 9112 section 4) -> ``http``;
- a TLS handshake record (content type 22) carrying a ServerHello (handshake type 2), or a TLS
  alert record (content type 21): a TLS server (RFC 8446 section 5.1) -> ``generic``, TLS
  passthrough, where ``ssl_session_id`` persistence applies;
- a TPKT header (version 3) carrying an X.224 Connection Confirm (code 0xD) -> RDP
  (MS-RDPBCGR 2.2.1.2) -> ``remote_terminal``;
- server-first banners: ``220`` naming SMTP/ESMTP (RFC 5321) -> ``smtp``, any other ``220``
  (RFC 959) -> ``ftp``, ``+OK`` (RFC 1939) -> ``pop3``, ``* OK`` or ``* PREAUTH`` (RFC 9051)
  -> ``imap``: a ``generic`` service with the matching health check.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bascule.model.capabilities import CheckType, ServiceType

#: What the HTTP probe sends: HTTP/1.0 closes the connection after the answer.
HTTP_REQUEST = b"HEAD / HTTP/1.0\r\nUser-Agent: bascule-detect\r\nAccept: */*\r\n\r\n"

#: TPKT v3, length 19; X.224 Connection Request (0xE0) without cookie; RDP_NEG_REQ asking for
#: TLS or CredSSP (MS-RDPBCGR 2.2.1.1). The same bytes as the rdp health check's.
RDP_CONNECTION_REQUEST = bytes.fromhex("030000130ee000000000000100080003000000")

QUOTE_LIMIT = 60


class Protocol(enum.StrEnum):
    """What a real server was recognised as speaking."""

    http = "http"
    tls = "tls"
    rdp = "rdp"
    smtp = "smtp"
    ftp = "ftp"
    pop3 = "pop3"
    imap = "imap"


@dataclass(frozen=True, kw_only=True)
class Recognition:
    """A protocol recognised in the bytes a server sent, with the words that show it."""

    protocol: Protocol
    quote: str


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """The type and check a service gets, and why.

    ``conclusive`` is true when a real server answered in a protocol recognised above; a
    silent server or a well-known port is a guess. ``tls`` marks TLS passthrough, where the
    ``ssl_session_id`` persistence method applies.
    """

    type: ServiceType
    check: CheckType
    evidence: str
    conclusive: bool
    protocol: Protocol | None = None
    tls: bool = False


@dataclass(frozen=True, kw_only=True)
class ServerOutcome:
    """What probing one real server gave: ``source`` is ``198.18.0.11:80``.

    ``recognition`` is set when one of its answers was recognised; ``connected`` when it
    accepted a connection at all; ``seen`` holds the first bytes it sent that were not
    recognised; ``error`` says why it could not be reached.
    """

    source: str
    recognition: Recognition | None = None
    connected: bool = False
    seen: bytes = b""
    error: str = ""


_HTTP_STATUS = re.compile(rb"^(HTTP/1\.[01]) ([1-5][0-9][0-9])(?:[ \r\n]|$)")
_TLS_HANDSHAKE, _TLS_ALERT = 0x16, 0x15
_TLS_SERVER_HELLO = 0x02
_SMTP = re.compile(r"\bE?SMTP\b", re.IGNORECASE)

# (type, check, words after "detected: ") for each protocol
_CHOICES: dict[Protocol, tuple[ServiceType, CheckType, str]] = {
    Protocol.http: (ServiceType.http, CheckType.http, "http"),
    Protocol.tls: (
        ServiceType.generic,
        CheckType.tcp,
        "generic (TLS passthrough; ssl_session_id persistence available)",
    ),
    Protocol.rdp: (ServiceType.remote_terminal, CheckType.rdp, "remote_terminal"),
    Protocol.smtp: (ServiceType.generic, CheckType.smtp, "generic with an smtp check"),
    Protocol.ftp: (ServiceType.generic, CheckType.ftp, "generic with an ftp check"),
    Protocol.pop3: (ServiceType.generic, CheckType.pop3, "generic with a pop3 check"),
    Protocol.imap: (ServiceType.generic, CheckType.imap, "generic with an imap check"),
}

#: The fallback when no real server answers: what usually listens on a port.
WELL_KNOWN_PORTS: dict[int, Protocol] = {
    80: Protocol.http,
    8080: Protocol.http,
    443: Protocol.tls,
    25: Protocol.smtp,
    587: Protocol.smtp,
    21: Protocol.ftp,
    110: Protocol.pop3,
    143: Protocol.imap,
    3389: Protocol.rdp,
}


def classify(data: bytes) -> Recognition | None:
    """The protocol ``data`` (the first bytes a server sent) is in, or None if unknown."""
    if not data:
        return None
    status = _HTTP_STATUS.match(data)
    if status:
        quote = f"{status[1].decode()} {status[2].decode()}"
        return Recognition(protocol=Protocol.http, quote=quote)
    tls = _tls(data)
    if tls is not None:
        return Recognition(protocol=Protocol.tls, quote=tls)
    if _rdp_confirm(data):
        return Recognition(protocol=Protocol.rdp, quote="X.224 Connection Confirm")
    line = first_line(data)
    protocol = _banner(line)
    if protocol is not None:
        return Recognition(protocol=protocol, quote=line)
    return None


def _tls(data: bytes) -> str | None:
    # A TLS record: content type, legacy version 3.x, 16-bit length (RFC 8446 section 5.1).
    if len(data) < 5 or data[1] != 0x03 or data[2] > 0x04:
        return None
    length = int.from_bytes(data[3:5], "big")
    if data[0] == _TLS_HANDSHAKE and len(data) >= 6 and data[5] == _TLS_SERVER_HELLO:
        return "TLS ServerHello"
    if data[0] == _TLS_ALERT and length == 2:
        return "TLS alert"
    return None


def _rdp_confirm(data: bytes) -> bool:
    # TPKT (RFC 1006): version 3, reserved 0, length; then X.224 length indicator and code.
    if len(data) < 7 or data[0] != 0x03 or data[1] != 0x00:
        return False
    return int.from_bytes(data[2:4], "big") >= 7 and data[5] & 0xF0 == 0xD0


def _banner(line: str) -> Protocol | None:
    if line.startswith("220") and line[3:4] in {"", " ", "-"}:
        return Protocol.smtp if _SMTP.search(line) else Protocol.ftp
    if line.startswith("+OK"):
        return Protocol.pop3
    if line.startswith(("* OK", "* PREAUTH")):
        return Protocol.imap
    return None


def first_line(data: bytes, limit: int = QUOTE_LIMIT) -> str:
    """The first line of ``data`` as printable text, cut at ``limit`` characters."""
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    text = "".join(
        chr(byte) if 0x20 <= byte < 0x7F else f"\\x{byte:02x}" for byte in line[: limit * 4]
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- verdicts -------------------------------------------------------------------------------


def recognised(recognition: Recognition, source: str) -> Verdict:
    """A real server answered in a known protocol."""
    kind, check, words = _CHOICES[recognition.protocol]
    return Verdict(
        type=kind,
        check=check,
        evidence=f'detected: {words} — "{recognition.quote}" from {source}',
        conclusive=True,
        protocol=recognition.protocol,
        tls=recognition.protocol is Protocol.tls,
    )


def unrecognised(source: str, seen: bytes) -> Verdict:
    """A real server accepted connections but said nothing Bascule knows."""
    if seen:
        why = f'"{first_line(seen)}" from {source} (not a protocol Bascule recognises)'
    else:
        why = f"{source} accepted connections but answered nothing recognisable"
    return Verdict(
        type=ServiceType.generic,
        check=CheckType.tcp,
        evidence=f"detected: generic with a tcp check — {why}",
        conclusive=False,
    )


def well_known(port: int, reason: str) -> Verdict:
    """The guess from the port alone, when no real server could be asked."""
    protocol = WELL_KNOWN_PORTS.get(port)
    if protocol is None:
        return Verdict(
            type=ServiceType.generic,
            check=CheckType.tcp,
            evidence=f"detected: generic with a tcp check — port {port} is not a well-known "
            f"port ({reason})",
            conclusive=False,
        )
    kind, check, words = _CHOICES[protocol]
    return Verdict(
        type=kind,
        check=check,
        evidence=f"detected: {words} — well-known port {port} ({reason})",
        conclusive=False,
        protocol=protocol,
        tls=protocol is Protocol.tls,
    )


def conclude(port: int, outcomes: Sequence[ServerOutcome]) -> Verdict:
    """The verdict on a service from its servers' outcomes, in the order they came in.

    The first recognised answer wins; else a server that accepted connections makes the
    service ``generic`` with a ``tcp`` check; else the well-known ``port`` decides.
    """
    for outcome in outcomes:
        if outcome.recognition is not None:
            return recognised(outcome.recognition, outcome.source)
    connected = [outcome for outcome in outcomes if outcome.connected]
    if connected:
        talker = next((outcome for outcome in connected if outcome.seen), connected[0])
        return unrecognised(talker.source, talker.seen)
    if not outcomes:
        return well_known(port, "no real server to probe")
    failures = "; ".join(f"{outcome.source} {outcome.error or 'no answer'}" for outcome in outcomes)
    return well_known(port, f"no real server answered: {failures}")
