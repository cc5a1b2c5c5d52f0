"""The HTTPS listener's guard (finding 2), against a real TLS server on loopback: the time to
complete a handshake, a request's head and its body is bounded, connections are capped per
source and in all, and running out of descriptors is logged once, not per accept.

Before: uvicorn waited 60 s for a handshake and for ever for a head, held every connection it
was offered, and asyncio logged a traceback per failed accept (160 MB a minute).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bascule.daemon.doors import https_config
from bascule.daemon.listener import (
    MIN_RESERVE,
    ConnectionSlots,
    Exhaustion,
    GuardedServer,
    ListenerLimits,
    descriptor_budget,
    quiet_exhaustion,
)
from bascule.daemon.tls import ensure_certificate

LIMITS = ListenerLimits(
    max_connections=6,
    max_per_source=3,
    handshake_timeout=0.5,
    head_timeout=0.5,
    body_timeout=0.5,
    idle_timeout=1,
    max_head_bytes=8 * 1024,
)
# Generous: the machine is shared; what matters is that the server does not wait for ever.
BOUND = 10.0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


@dataclass
class Served:
    port: int
    server: GuardedServer


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, limits: ListenerLimits) -> AsyncIterator[Served]:
    certificate = ensure_certificate(
        tmp_path / "cert.pem", tmp_path / "key.pem", listen_host="127.0.0.1"
    )
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = https_config(app, "127.0.0.1", 0, certificate, limits)
    config.log_level = "warning"
    config.lifespan = "off"
    server = GuardedServer(config, limits=limits)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(BOUND):
        while not server.started:  # noqa: ASYNC110 (uvicorn has no event)
            await asyncio.sleep(0.01)
    yield Served(port=sock.getsockname()[1], server=server)
    server.should_exit = True
    await task


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with serve(tmp_path, LIMITS) as opened:
        yield opened


@pytest.fixture
async def patient(tmp_path: Path) -> AsyncIterator[Served]:
    """The same limits with a handshake and a head that may take a minute: what makes room
    for a newcomer is the eviction, not a deadline."""
    limits = dataclasses.replace(LIMITS, handshake_timeout=60.0, head_timeout=60.0)
    async with serve(tmp_path, limits) as opened:
        yield opened


def tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def connect(
    served: Served, *, handshake: bool = True
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", served.port, ssl=tls() if handshake else None)


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sends until it closes; fails if it does not close in time."""
    received = b""
    async with asyncio.timeout(seconds):
        while True:
            try:
                chunk = await reader.read(65536)
            except (ConnectionError, ssl.SSLError):
                return received
            if not chunk:
                return received
            received += chunk


async def test_a_request_is_answered(served: Served) -> None:
    reader, writer = await connect(served)
    for _ in range(2):  # and a second one on the same connection
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(BOUND):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            assert await reader.readexactly(2) == b"ok"
    writer.close()


async def test_a_head_sent_line_by_line_is_cut_off(served: Served) -> None:
    reader, writer = await connect(served)
    started = time.monotonic()

    async def trickle() -> None:
        writer.write(b"GET / HTTP/1.1\r\n")
        for index in range(100):
            await asyncio.sleep(0.1)
            if writer.is_closing():
                return
            writer.write(b"X-Slow-%d: yes\r\n" % index)
            try:
                await writer.drain()
            except (ConnectionError, ssl.SSLError):
                return

    trickling = asyncio.create_task(trickle())
    answer = await closed_within(reader, BOUND)
    trickling.cancel()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert time.monotonic() - started < BOUND


async def test_a_handshake_that_never_comes_is_cut_off(served: Served) -> None:
    reader, writer = await connect(served, handshake=False)
    assert await closed_within(reader, BOUND) == b""
    writer.close()


async def test_a_body_that_never_comes_is_cut_off(served: Served) -> None:
    reader, writer = await connect(served)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
    await writer.drain()
    assert (await closed_within(reader, BOUND)).startswith(b"HTTP/1.1 408")


async def test_a_head_too_large_is_refused(served: Served) -> None:
    reader, writer = await connect(served)
    writer.write(b"GET / HTTP/1.1\r\n" + b"X-Big: " + b"y" * (16 * 1024) + b"\r\n\r\n")
    await writer.drain()
    assert (await closed_within(reader, BOUND)).startswith(b"HTTP/1.1 431")


async def test_connections_are_capped_per_source(served: Served) -> None:
    held = [await connect(served) for _ in range(LIMITS.max_per_source)]
    with pytest.raises((ConnectionError, ssl.SSLError, asyncio.IncompleteReadError)):
        async with asyncio.timeout(BOUND):
            await connect(served)  # reset before its handshake
    assert served.server.accepting is not None
    assert served.server.accepting.slots.refused >= 1
    held[0][1].close()
    async with asyncio.timeout(BOUND):
        while served.server.accepting.slots.total >= LIMITS.max_per_source:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    reader, writer = await connect(served)  # a place again
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await closed_within(reader, BOUND)).startswith(b"HTTP/1.1 200")
    for _, other in held[1:]:
        other.close()


def test_the_sources_share_and_the_slowest_make_room() -> None:
    slots = ConnectionSlots(LIMITS)
    taken = [slots.take(f"192.0.2.{n}") for n in (1, 1, 1, 1, 2, 2, 2)]
    assert [slot is not None for slot in taken] == [True, True, True, False, True, True, True]
    assert slots.refused == 1 and slots.total == LIMITS.max_connections
    # full: a newcomer takes the place of the oldest connection that has not talked yet
    closed: list[str] = []
    first = taken[0]
    assert first is not None
    first.close = lambda: closed.append("first")
    for slot in taken[1:3]:
        assert slot is not None
        slot.proven()  # these sent a request head: clients, not kept waiting ones
    newcomer = slots.take("192.0.2.3")
    assert newcomer is not None and closed == ["first"] and slots.evicted == 1
    assert slots.total == LIMITS.max_connections
    assert slots.per_source == {"192.0.2.1": 2, "192.0.2.2": 3, "192.0.2.3": 1}
    first.release()  # its connection_lost later: nothing given back twice
    assert slots.total == LIMITS.max_connections


async def test_slow_connections_do_not_keep_a_client_out(patient: Served) -> None:
    served = patient
    # the listener full of connections that never complete a handshake, from many sources
    holders = []
    for n in range(LIMITS.max_connections):
        holder = socket.socket()
        holder.bind((f"127.0.0.{n + 2}", 0))
        holder.connect(("127.0.0.1", served.port))
        holders.append(holder)
    accepting = served.server.accepting
    assert accepting is not None
    async with asyncio.timeout(BOUND):
        while accepting.slots.total < LIMITS.max_connections:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    reader, writer = await connect(served)  # the oldest silent one makes room
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await closed_within(reader, BOUND)).startswith(b"HTTP/1.1 200")
    assert accepting.slots.evicted >= 1
    for holder in holders:
        holder.close()


def test_the_listener_leaves_descriptors_in_reserve() -> None:
    limits = ListenerLimits(max_connections=512, max_per_source=32)
    assert descriptor_budget(limits, 524_288) == limits  # plenty: as configured
    small = descriptor_budget(limits, 1024)
    assert small.max_connections == 1024 - 512
    tiny = descriptor_budget(limits, 300)
    assert tiny.max_connections == 300 - MIN_RESERVE and tiny.max_per_source == 32
    assert descriptor_budget(limits, 100).max_connections == 16


def test_running_out_of_descriptors_is_logged_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    exhaustion = Exhaustion(clock=lambda: now[0])
    handler = quiet_exhaustion(exhaustion)
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR):
            for second in range(120):
                now[0] = float(second)
                for _ in range(1000):  # a flood of failed accepts
                    handler(
                        loop,
                        {
                            "message": "socket.accept() out of system resource",
                            "exception": OSError(errno.EMFILE, "Too many open files"),
                        },
                    )
    finally:
        loop.close()
    records = [r for r in caplog.records if "out of descriptors" in r.getMessage()]
    assert len(records) == 2  # at 0 s and at 60 s, not 120,000
    assert all(r.exc_info is None for r in records)
