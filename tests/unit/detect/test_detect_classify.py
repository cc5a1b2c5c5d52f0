"""The pure classifier and verdicts of type: auto (detect/classify.py) on real byte captures."""

from __future__ import annotations

import pytest

from bascule.detect.classify import (
    Protocol,
    Recognition,
    ServerOutcome,
    classify,
    conclude,
    first_line,
    recognised,
    well_known,
)
from bascule.model import CheckType, ServiceType

# The first bytes of a ServerHello from Python's ssl server (OpenSSL 3.0) answering
# probes.client_hello(): handshake record, TLS 1.2 legacy version, ServerHello (type 2).
TLS_SERVER_HELLO = bytes.fromhex(
    "160303007a0200007603034e09086bc78a226a1e52cc90e9ef6902cd8e20a4c30a56c8e4990d0d7672ada3"
    "203a01a7005c1ab99e8318cb39ab194bc91fbfd3bd7482de80d3d613ba4b36ce88130200002e002b000203"
)
# A Windows RDP server's X.224 Connection Confirm with RDP_NEG_RSP selecting TLS.
RDP_CONFIRM = bytes.fromhex("030000130ed000001234000209080001000000")

CAPTURES = [
    ("nginx", b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Length: 615\r\n\r\n",
     Protocol.http, "HTTP/1.1 200"),
    ("http/1.0 redirect", b"HTTP/1.0 302 Found\r\nLocation: /login\r\n\r\n",
     Protocol.http, "HTTP/1.0 302"),
    ("http bad request", b"HTTP/1.1 400 Bad Request\r\n", Protocol.http, "HTTP/1.1 400"),
    ("tls server hello", TLS_SERVER_HELLO, Protocol.tls, "TLS ServerHello"),
    ("tls alert", bytes.fromhex("15030100020246"), Protocol.tls, "TLS alert"),
    ("rdp confirm", RDP_CONFIRM, Protocol.rdp, "X.224 Connection Confirm"),
    ("postfix", b"220 mx.example.org ESMTP Postfix (Debian/GNU)\r\n", Protocol.smtp,
     "220 mx.example.org ESMTP Postfix (Debian/GNU)"),
    ("exim", b"220 mail.example.net ESMTP Exim 4.96 Mon, 01 Jan 2024\r\n", Protocol.smtp,
     "220 mail.example.net ESMTP Exim 4.96 Mon, 01 Jan 2024"),
    ("smtp multi-line", b"220-smtp.example SMTP ready\r\n220 go ahead\r\n", Protocol.smtp,
     "220-smtp.example SMTP ready"),
    ("vsftpd", b"220 (vsFTPd 3.0.3)\r\n", Protocol.ftp, "220 (vsFTPd 3.0.3)"),
    ("proftpd", b"220 ProFTPD Server (Debian) [::ffff:198.18.0.11]\r\n", Protocol.ftp,
     "220 ProFTPD Server (Debian) [::ffff:198.18.0.11]"),
    ("dovecot pop3", b"+OK Dovecot (Debian) ready.\r\n", Protocol.pop3,
     "+OK Dovecot (Debian) ready."),
    ("dovecot imap",
     b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE] Dovecot ready.\r\n",
     Protocol.imap, "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABL…"),
    ("imap preauth", b"* PREAUTH IMAP4rev1 server logged in as alice\r\n", Protocol.imap,
     "* PREAUTH IMAP4rev1 server logged in as alice"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "protocol", "quote"),
    [case[1:] for case in CAPTURES],
    ids=[case[0] for case in CAPTURES],
)
def test_captures_are_recognised(data: bytes, protocol: Protocol, quote: str) -> None:
    assert classify(data) == Recognition(protocol=protocol, quote=quote)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2\r\n",
        b"\x00\x01\x02\xffgarbage",
        b"HTTP/2 200\r\n",  # not an HTTP/1.x status line
        b"HTTP/1.1 999 Nope\r\n",
        b"2200 not a reply code\r\n",
        b"\x16\x03\x03\x00",  # a TLS record header cut short
        bytes.fromhex("160303007a01"),  # a ClientHello echoed back is not a ServerHello
        bytes.fromhex("0300000b06e0"),  # a TPKT connection *request*, too short anyway
        b"-ERR go away\r\n",
    ],
    ids=["empty", "ssh", "junk", "http2", "bad status", "2200", "short tls", "client hello",
         "short tpkt", "-ERR"],
)  # fmt: skip
def test_what_is_not_recognised(data: bytes) -> None:
    assert classify(data) is None


def test_quotes_are_printable_and_bounded() -> None:
    assert first_line(b"\x01\x02abc\xff\r\nsecond") == "\\x01\\x02abc\\xff"
    assert first_line(b"x" * 200) == "x" * 59 + "…"


def test_the_evidence_reads_as_the_issue_shows_it() -> None:
    verdict = recognised(classify(b"HTTP/1.1 200 OK\r\n\r\n"), "198.18.0.11:80")  # type: ignore[arg-type]
    assert verdict.evidence == 'detected: http — "HTTP/1.1 200" from 198.18.0.11:80'
    assert (verdict.type, verdict.check, verdict.conclusive) == (
        ServiceType.http,
        CheckType.http,
        True,
    )


@pytest.mark.parametrize(
    ("data", "kind", "check"),
    [
        (TLS_SERVER_HELLO, ServiceType.generic, CheckType.tcp),
        (RDP_CONFIRM, ServiceType.remote_terminal, CheckType.rdp),
        (b"220 smtp.example ESMTP\r\n", ServiceType.generic, CheckType.smtp),
        (b"220 (vsFTPd 3.0.3)\r\n", ServiceType.generic, CheckType.ftp),
        (b"+OK ready\r\n", ServiceType.generic, CheckType.pop3),
        (b"* OK ready\r\n", ServiceType.generic, CheckType.imap),
    ],
)
def test_each_protocol_gives_its_type_and_check(
    data: bytes, kind: ServiceType, check: CheckType
) -> None:
    recognition = classify(data)
    assert recognition is not None
    verdict = recognised(recognition, "198.18.0.11:1")
    assert (verdict.type, verdict.check) == (kind, check)


def test_tls_mentions_ssl_session_id() -> None:
    verdict = recognised(classify(TLS_SERVER_HELLO), "198.18.0.11:443")  # type: ignore[arg-type]
    assert verdict.tls
    assert verdict.evidence == (
        "detected: generic (TLS passthrough; ssl_session_id persistence available) — "
        '"TLS ServerHello" from 198.18.0.11:443'
    )


@pytest.mark.parametrize(
    ("port", "kind", "check"),
    [
        (80, ServiceType.http, CheckType.http),
        (8080, ServiceType.http, CheckType.http),
        (443, ServiceType.generic, CheckType.tcp),
        (25, ServiceType.generic, CheckType.smtp),
        (587, ServiceType.generic, CheckType.smtp),
        (21, ServiceType.generic, CheckType.ftp),
        (110, ServiceType.generic, CheckType.pop3),
        (143, ServiceType.generic, CheckType.imap),
        (3389, ServiceType.remote_terminal, CheckType.rdp),
        (9000, ServiceType.generic, CheckType.tcp),
    ],
)
def test_well_known_ports(port: int, kind: ServiceType, check: CheckType) -> None:
    verdict = well_known(port, "why")
    assert (verdict.type, verdict.check, verdict.conclusive) == (kind, check, False)


OK = ServerOutcome(
    source="198.18.0.12:80",
    recognition=Recognition(protocol=Protocol.http, quote="HTTP/1.1 200"),
    connected=True,
)
SILENT = ServerOutcome(source="198.18.0.13:80", connected=True)
TALKER = ServerOutcome(source="198.18.0.14:80", connected=True, seen=b"SSH-2.0-x\r\n")
DOWN = ServerOutcome(source="198.18.0.11:80", error="refused the connection")


def test_the_first_recognised_answer_wins() -> None:
    assert conclude(80, [DOWN, SILENT, OK]).evidence == (
        'detected: http — "HTTP/1.1 200" from 198.18.0.12:80'
    )


def test_a_silent_server_makes_a_generic_tcp_service() -> None:
    verdict = conclude(80, [DOWN, SILENT])
    assert (verdict.type, verdict.check, verdict.conclusive) == (
        ServiceType.generic,
        CheckType.tcp,
        False,
    )
    assert verdict.evidence == (
        "detected: generic with a tcp check — 198.18.0.13:80 accepted connections but "
        "answered nothing recognisable"
    )


def test_an_unknown_greeting_is_quoted() -> None:
    assert conclude(80, [SILENT, TALKER]).evidence == (
        'detected: generic with a tcp check — "SSH-2.0-x" from 198.18.0.14:80 '
        "(not a protocol Bascule recognises)"
    )


def test_no_answer_falls_back_to_the_well_known_port() -> None:
    verdict = conclude(80, [DOWN])
    assert verdict.type is ServiceType.http
    assert verdict.evidence == (
        "detected: http — well-known port 80 (no real server answered: 198.18.0.11:80 "
        "refused the connection)"
    )
    assert conclude(9000, []).evidence == (
        "detected: generic with a tcp check — port 9000 is not a well-known port "
        "(no real server to probe)"
    )
