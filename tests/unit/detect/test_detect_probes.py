"""The detection probes (detect/probes.py) against small servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bascule.detect import Timing, detect
from bascule.detect.classify import RDP_CONNECTION_REQUEST
from bascule.detect.probes import ServiceProber, client_hello
from bascule.model import CheckType, ServiceType, parse_document

FAST = Timing(connect=0.5, banner=0.15, answer=0.2, total=1.5)
RDP_CONFIRM = bytes.fromhex("030000130ed000001234000209080001000000")

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def safely(handler: Handler) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.transport.abort()

    return handle


@contextlib.asynccontextmanager
async def serving(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    server = await asyncio.start_server(safely(handler), "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 smtp.example ESMTP ready\r\n")
    await writer.drain()
    await reader.read(100)


async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()


async def rdp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await reader.read(100)
    if request == RDP_CONNECTION_REQUEST:
        writer.write(RDP_CONFIRM)
        await writer.drain()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(100)
    await asyncio.sleep(5)


async def ssh(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"SSH-2.0-OpenSSH_9.2p1\r\n")
    await writer.drain()
    await reader.read(100)


async def tls_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await http(reader, writer)


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    directory: Path = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=rs1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_the_client_hello_is_a_tls_handshake_record() -> None:
    hello = client_hello()
    assert hello[:3] == b"\x16\x03\x01" and hello[5] == 0x01  # handshake, ClientHello


@pytest.mark.parametrize(
    ("handler", "kind", "check", "quote"),
    [
        (banner, ServiceType.generic, CheckType.smtp, '"220 smtp.example ESMTP ready"'),
        (http, ServiceType.http, CheckType.http, '"HTTP/1.1 200"'),
        (rdp, ServiceType.remote_terminal, CheckType.rdp, '"X.224 Connection Confirm"'),
    ],
    ids=["smtp", "http", "rdp"],
)
async def test_real_servers_are_recognised(
    handler: Handler, kind: ServiceType, check: CheckType, quote: str
) -> None:
    async with serving(handler) as port:
        verdict = await detect([("127.0.0.1", port)], port=port, timing=FAST)
    assert (verdict.type, verdict.check, verdict.conclusive) == (kind, check, True)
    assert verdict.evidence.endswith(f"— {quote} from 127.0.0.1:{port}")


async def test_a_tls_server_is_generic_passthrough(tls_context: ssl.SSLContext) -> None:
    async with serving(tls_http, tls=tls_context) as port:
        verdict = await detect([("127.0.0.1", port)], port=port, timing=FAST)
    assert (verdict.type, verdict.check, verdict.tls) == (ServiceType.generic, CheckType.tcp, True)
    assert "ssl_session_id" in verdict.evidence
    assert '"TLS ServerHello"' in verdict.evidence


async def test_a_silent_server_is_generic_tcp_within_the_total() -> None:
    async with serving(silent) as port:
        started = time.monotonic()
        verdict = await detect([("127.0.0.1", port)], port=80)
        elapsed = time.monotonic() - started
    assert (verdict.type, verdict.check, verdict.conclusive) == (
        ServiceType.generic,
        CheckType.tcp,
        False,
    )
    assert "accepted connections but answered nothing recognisable" in verdict.evidence
    assert elapsed < Timing().total + 1.0  # bounded (generous for a busy machine)


async def test_an_unknown_greeting_is_generic_tcp_and_quoted() -> None:
    async with serving(ssh) as port:
        verdict = await detect([("127.0.0.1", port)], port=port, timing=FAST)
    assert verdict.check is CheckType.tcp
    assert '"SSH-2.0-OpenSSH_9.2p1"' in verdict.evidence


async def test_nobody_listening_falls_back_to_the_well_known_port() -> None:
    port = free_port()
    verdict = await detect([("127.0.0.1", port)], port=25, timing=FAST)
    assert (verdict.type, verdict.check, verdict.conclusive) == (
        ServiceType.generic,
        CheckType.smtp,
        False,
    )
    assert verdict.evidence == (
        "detected: generic with an smtp check — well-known port 25 (no real server answered: "
        f"127.0.0.1:{port} refused the connection)"
    )


async def test_one_answering_server_is_enough_and_ends_the_others() -> None:
    down = free_port()
    async with serving(silent) as quiet, serving(http) as web:
        started = time.monotonic()
        verdict = await detect(
            [("127.0.0.1", down), ("127.0.0.1", quiet), ("127.0.0.1", web)], port=80, timing=FAST
        )
        elapsed = time.monotonic() - started
    assert verdict.evidence == f'detected: http — "HTTP/1.1 200" from 127.0.0.1:{web}'
    assert elapsed < FAST.total  # the silent server's probe was cancelled


async def test_the_service_prober_asks_the_real_servers_of_a_service() -> None:
    async with serving(http) as port:
        config = parse_document(
            {
                "virtual_services": [
                    {
                        "name": "web",
                        "address": "198.18.0.100",
                        "port": 80,
                        "type": "auto",
                        "real_servers": [{"address": "127.0.0.1", "port": port}],
                    }
                ]
            }
        )
        verdict = await ServiceProber(FAST).detect(config.virtual_services[0])
    assert verdict.type is ServiceType.http
