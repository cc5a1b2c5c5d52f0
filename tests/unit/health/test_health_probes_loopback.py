"""The probes against tiny servers on 127.0.0.1 (no root, no namespaces needed).

The same probes meet real servers in namespaces in tests/integration/test_health_probes.py;
here each failure mode is produced on purpose by a server written for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bascule.health.probes import (
    PROBES,
    Endpoint,
    IcmpMethod,
    describe_error,
    probe_icmp,
    run_probe,
)
from bascule.health.results import CheckResult
from bascule.model import CheckType, Mode
from bascule.model.check import HealthCheck

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
LOCAL = "127.0.0.1"


@contextlib.asynccontextmanager
async def tcp_server(handler: Handler) -> AsyncIterator[int]:
    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(guarded, LOCAL, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def at(port: int, host: str = LOCAL) -> Endpoint:
    return Endpoint(address=LOCAL, port=port, host=host)


async def probe(port: int, **check: object) -> CheckResult:
    return await run_probe(HealthCheck.model_validate(check), at(port))


async def free_port() -> int:
    async with tcp_server(lambda r, w: asyncio.sleep(0)) as port:
        return port


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


def test_every_check_type_of_l4_has_a_probe() -> None:
    allowed = {kind for kind in CheckType if Mode.l4 in kind.modes}
    assert set(PROBES) == allowed - {CheckType.none}  # none is no check at all


async def test_tcp_connects_or_says_why_not() -> None:
    async with tcp_server(silent) as port:
        result = await probe(port, type="tcp")
    assert result.ok and result.detail == "connected" and result.code is None
    assert result.duration_ms > 0 and result.checked_at > 0
    refused = await probe(await free_port(), type="tcp")
    assert not refused.ok and refused.detail == "connection refused"


def http_handler(status: int, body: bytes, seen: list[bytes]) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        seen.append(head + await reader.readexactly(length))
        writer.write(
            b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (status, len(body), body)
        )
        await writer.drain()

    return handle


async def test_http_request_status_and_body() -> None:
    seen: list[bytes] = []
    body = b"x" * 5000 + b"late"  # "late" is past the first 4 KiB
    async with tcp_server(http_handler(200, body, seen)) as port:
        check = HealthCheck(
            type="http",
            method="POST",
            path="/check?x=1",
            headers={"X-Token": "abc"},
            post_data="ping",
            expect_body="^x+$",
        )
        ok = await run_probe(check, at(port, "www.example.com"))
        late = await probe(port, type="http", expect_body="late")
    assert ok.ok and ok.code == 200 and ok.detail == "status 200"
    request = seen[0].decode()
    assert request.startswith("POST /check?x=1 HTTP/1.1\r\n")
    assert "\r\nHost: www.example.com\r\n" in request
    assert "\r\nX-Token: abc\r\n" in request and "\r\nConnection: close\r\n" in request
    assert request.endswith("\r\n\r\nping")
    assert not late.ok and late.code == 200 and late.detail == "status 200, body does not match"


async def test_http_status_ranges_and_non_2xx_bodies() -> None:
    async with tcp_server(http_handler(302, b"moved", [])) as port:
        redirect = await probe(port, type="http", expect_body="nothing like it")
        refused = await probe(port, type="http", expect_status="200-299")
    assert redirect.ok and redirect.code == 302  # the body is only matched on a 2xx
    assert not refused.ok and refused.detail == "status 302, expected 200-299"


async def test_a_server_that_accepts_but_never_answers_fails_within_the_timeout() -> None:
    async with tcp_server(silent) as port:
        loop = asyncio.get_running_loop()
        begin = loop.time()
        results = await asyncio.gather(
            probe(port, type="http"),
            probe(port, type="binary", send_hex="00", expect_hex="01"),
            probe(port, type="smtp"),
        )
        elapsed = loop.time() - begin
    for result in results:
        assert not result.ok and result.detail == "no answer within 1s"
        assert 950 <= result.duration_ms < 3000
    assert elapsed < 3  # together, not one after the other


async def test_binary_prefix_and_banners() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if await reader.readexactly(2) == b"hi":
            writer.write(b"\x01\x02\x03tail")
            await writer.drain()

    async with tcp_server(answer) as port:
        good = await probe(port, type="binary", send_hex="6869", expect_hex="010203")
        not_first = await probe(port, type="binary", send_hex="6869", expect_hex="0203")
        closed = await probe(port, type="binary", send_hex="6f6b", expect_hex="01")

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"+OK POP3 ready\r\n")
        await writer.drain()

    async with tcp_server(greet) as port:
        pop3 = await probe(port, type="pop3")
        imap = await probe(port, type="imap")
    assert good.ok and good.detail == "got 010203"
    assert not not_first.ok and not_first.detail == "expected 0203, got 0102037461696c"
    assert not closed.ok and closed.detail == "expected 01, got nothing"
    assert pop3.ok and pop3.detail == "+OK POP3 ready"
    assert not imap.ok and imap.detail == "unexpected banner '+OK POP3 ready'"


async def test_ldap_and_rdp_conversations() -> None:
    async def ldap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(14)
        writer.write(bytes.fromhex("300c02010161070a010004000400"))
        await writer.drain()

    async def rdp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(19)
        writer.write(bytes.fromhex("030000130ed000001234000208000000"))
        await writer.drain()

    async with tcp_server(ldap) as port:
        ldap_result = await probe(port, type="ldap")
        rdp_on_ldap = await probe(port, type="rdp")
    async with tcp_server(rdp) as port:
        rdp_result = await probe(port, type="rdp")
    assert ldap_result.ok and ldap_result.code == 0
    assert not rdp_on_ldap.ok
    assert rdp_result.ok


def smtp_stub(
    greeting: str, replies: dict[str, str], seen: list[str], done: asyncio.Event
) -> Handler:
    """A tiny SMTP server: ``greeting``, then each command's reply by its verb (lines joined
    by CRLF: "250-a\r\n250 b" is a multiline reply); a verb without one closes. ``done`` is
    set once the client has gone."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(f"{greeting}\r\n".encode())
            await writer.drain()
            while line := (await reader.readline()).decode().rstrip("\r\n"):
                seen.append(line)
                reply = replies.get(line.split(" ")[0])
                if reply is None:
                    return
                writer.write(f"{reply}\r\n".encode())
                await writer.drain()
        finally:
            done.set()

    return handle


async def smtp_probe(greeting: str, replies: dict[str, str]) -> tuple[CheckResult, list[str]]:
    """The smtp probe's result against the stub, and the commands the stub received."""
    seen: list[str] = []
    done = asyncio.Event()
    async with tcp_server(smtp_stub(greeting, replies, seen, done)) as port:
        result = await probe(port, type="smtp")
        await asyncio.wait_for(done.wait(), timeout=5)
    return result, seen


async def test_smtp_greets_then_is_answered_2xx_to_ehlo() -> None:
    esmtp = {"EHLO": "250-mail.example\r\n250-SIZE 10240000\r\n250 8BITMIME", "QUIT": "221 bye"}
    result, seen = await smtp_probe("220 mail.example ESMTP", esmtp)
    assert result.ok and result.code == 250 and result.detail == "220 mail.example ESMTP"
    assert seen == ["EHLO localhost", "QUIT"]


async def test_smtp_falls_back_to_helo_when_ehlo_is_refused() -> None:
    smtp_only = {"EHLO": "502 5.5.2 command not recognized", "HELO": "250 mail.example"}
    result, seen = await smtp_probe("220 mail.example", {**smtp_only, "QUIT": "221 bye"})
    assert result.ok and result.code == 250
    assert seen == ["EHLO localhost", "HELO localhost", "QUIT"]


async def test_smtp_fails_when_both_greetings_are_refused() -> None:
    refusing = {"EHLO": "502 5.5.2 what?", "HELO": "554 5.7.1 go away"}
    result, seen = await smtp_probe("220 mail.example", refusing)
    assert not result.ok and result.code == 554
    assert result.detail == "EHLO answered '502 5.5.2 what?'; HELO answered '554 5.7.1 go away'"
    assert seen == ["EHLO localhost", "HELO localhost"]


async def test_smtp_fails_on_a_wrong_banner_or_no_smtp_reply() -> None:
    busy, busy_seen = await smtp_probe("554 too busy", {})
    garbage, garbage_seen = await smtp_probe("220 mail.example", {"EHLO": "hello?"})
    gone, _ = await smtp_probe("220 mail.example", {})
    assert not busy.ok and busy.detail == "unexpected banner '554 too busy'" and busy_seen == []
    assert not garbage.ok and garbage.code is None
    assert garbage.detail == "EHLO answered 'hello?'" and garbage_seen == ["EHLO localhost"]
    assert not gone.ok and gone.detail == "EHLO unanswered"


class DnsServer(asyncio.DatagramProtocol):
    def __init__(self, answer: Callable[[bytes], list[bytes]]) -> None:
        self.answer = answer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        for reply in self.answer(data):
            if self.transport is not None:
                self.transport.sendto(reply, addr)


@contextlib.asynccontextmanager
async def dns_server(answer: Callable[[bytes], list[bytes]]) -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: DnsServer(answer), local_addr=(LOCAL, 0)
    )
    try:
        yield transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


def refused_answer(query: bytes) -> bytes:
    return query[:2] + struct.pack("!HHHHH", 0x8185, 1, 0, 0, 0) + query[12:]


async def test_dns_answers_and_failures() -> None:
    async with dns_server(lambda query: [refused_answer(query)]) as port:
        refused = await probe(port, type="dns", host="www.example.com")

    # a late answer to an earlier query (another ID) is ignored, ours is taken
    def stale_then_ours(query: bytes) -> list[bytes]:
        other_id = struct.pack("!H", struct.unpack("!H", query[:2])[0] ^ 0xFFFF)
        return [other_id + b"\x81\x80" + bytes(8), refused_answer(query)]

    async with dns_server(stale_then_ours) as port:
        after_stale = await probe(port, type="dns")
    async with dns_server(lambda query: [query]) as port:
        echoed = await probe(port, type="dns")
    async with dns_server(lambda query: []) as port:
        silent_result = await probe(port, type="dns")
        unreachable_port = port
    nobody = await probe(unreachable_port, type="dns")
    assert refused.ok and refused.code == 5 and refused.detail == "DNS response REFUSED"
    assert after_stale.ok and after_stale.code == 5
    assert not echoed.ok and "QR bit" in echoed.detail
    assert not silent_result.ok and silent_result.detail == "no answer within 1s"
    assert not nobody.ok and nobody.detail == "connection refused"


@pytest.mark.skipif(os.geteuid() != 0, reason="a raw ICMP socket needs root")
async def test_icmp_echo_on_loopback() -> None:
    check = HealthCheck(type="icmp")
    raw = functools.partial(probe_icmp, methods=(IcmpMethod.raw,))
    result = await run_probe(check, at(0), probe=raw)
    assert result.ok and result.detail == "echo reply"


async def test_icmp_without_any_permitted_socket_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("bascule.health.probes._icmp_socket", refuse)
    sockets_only = functools.partial(probe_icmp, methods=(IcmpMethod.raw, IcmpMethod.datagram))
    result = await run_probe(HealthCheck(type="icmp"), at(0), probe=sockets_only)
    assert not result.ok
    assert result.detail == (
        "cannot send ICMP: raw: operation not permitted; datagram: operation not permitted"
    )


async def test_a_check_of_type_none_has_no_probe() -> None:
    with pytest.raises(ValueError, match="has no probe"):
        await run_probe(HealthCheck(type="none"), at(1))


def test_errors_are_described_from_their_root_cause() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)")
        except OSError as inner:
            raise OSError("All connection attempts failed") from ExceptionGroup("x", [inner])
    except OSError as outer:
        assert describe_error(outer) == "connection refused"
    assert describe_error(EOFError()) == "EOFError"
