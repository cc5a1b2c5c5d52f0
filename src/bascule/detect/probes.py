"""Probing real servers to tell their protocol (asyncio I/O, short timeouts, never hangs).

Where it sits: the service layer calls ``ServiceProber.detect`` for each ``type: auto`` service
before it validates a change, and ``bascule detect`` calls ``detect`` directly. This module
only moves bytes; classify.py judges them and draws the verdict.

Each real server is asked in turn, every question on a fresh connection:

1. connect and send nothing for ``Timing.banner``: server-first protocols (SMTP, FTP, POP3,
   IMAP, SSH...) greet first; a greeting ends the probe of that server;
2. an HTTP/1.0 ``HEAD /`` request (a TLS server refuses it at once, often with an alert);
3. a TLS ClientHello, built by the ssl module on memory BIOs (no handshake is completed);
4. an RDP X.224 Connection Request.

The servers of a service are probed at once; the first recognised answer wins and the other
probes are cancelled. Everything is over within ``Timing.total``: a server that black-holes
connections costs ``Timing.connect`` at most, and whatever is known when the total runs out
decides (see ``classify.conclude``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from bascule.detect.classify import (
    HTTP_REQUEST,
    RDP_CONNECTION_REQUEST,
    Recognition,
    ServerOutcome,
    Verdict,
    classify,
    conclude,
)
from bascule.model.capabilities import CheckType, Protocol, ServiceType
from bascule.model.virtual_service import VirtualService
from bascule.net.addresses import host_port

log = logging.getLogger("bascule.detect")

READ_LIMIT = 4096


@dataclass(frozen=True, kw_only=True)
class Timing:
    """How long each step may take, in seconds."""

    connect: float = 0.5
    banner: float = 0.3
    answer: float = 0.4
    total: float = 2.0


@functools.cache
def client_hello() -> bytes:
    """A TLS ClientHello as Python's ssl module writes it (TLS 1.2 and 1.3, no SNI)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


class _Progress:
    """What is known of one server so far: kept when its probe is cut short by the total."""

    def __init__(self, address: str, port: int) -> None:
        self.address = address
        self.port = port
        self.source = host_port(address, port)
        self.recognition: Recognition | None = None
        self.connected = False
        self.seen = b""
        self.error = ""

    def outcome(self) -> ServerOutcome:
        return ServerOutcome(
            source=self.source,
            recognition=self.recognition,
            connected=self.connected,
            seen=self.seen,
            error=self.error,
        )


def _reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused the connection"
    if exc.errno in {errno.EHOSTUNREACH, errno.ENETUNREACH}:
        return "is unreachable"
    return f"could not be reached ({exc.strerror or exc})"


async def _read(reader: asyncio.StreamReader, wait: float) -> bytes:
    """What the server sends within ``wait`` seconds: until recognised, a line, EOF or 4 KiB."""
    data = b""
    with contextlib.suppress(TimeoutError, OSError):
        async with asyncio.timeout(wait):
            while len(data) < READ_LIMIT:
                chunk = await reader.read(READ_LIMIT - len(data))
                if not chunk:
                    break
                data += chunk
                if classify(data) is not None or b"\n" in data:
                    break
    return data


async def _ask(progress: _Progress, payload: bytes, wait: float, timing: Timing) -> bool:
    """Connect, send ``payload`` (if any), judge the answer; False if no connection."""
    try:
        async with asyncio.timeout(timing.connect):
            reader, writer = await asyncio.open_connection(progress.address, progress.port)
    except TimeoutError:
        progress.error = f"did not accept a connection within {timing.connect:g} s"
        return False
    except OSError as exc:
        progress.error = _reason(exc)
        return False
    progress.connected = True
    try:
        if payload:
            writer.write(payload)
            with contextlib.suppress(OSError):
                await writer.drain()
        data = await _read(reader, wait)
    finally:
        # abort: no lingering FIN_WAIT on a server that ignores us
        writer.transport.abort()
    recognition = classify(data)
    if recognition is not None:
        progress.recognition = recognition
    elif data and not progress.seen:
        progress.seen = data
    return True


async def _probe_server(progress: _Progress, timing: Timing) -> None:
    if not await _ask(progress, b"", timing.banner, timing):
        return
    if progress.recognition is not None or progress.seen:
        return  # it spoke first: its greeting is all there is to learn
    for payload in (HTTP_REQUEST, client_hello(), RDP_CONNECTION_REQUEST):
        await _ask(progress, payload, timing.answer, timing)
        if progress.recognition is not None:
            return


async def detect(
    targets: Sequence[tuple[str, int]], *, port: int, timing: Timing | None = None
) -> Verdict:
    """The verdict on a service whose real servers are ``targets`` (address, port).

    ``port`` is the one the well-known-port fallback looks at when no server answers.
    """
    timing = timing or Timing()
    progresses = [_Progress(address, target_port) for address, target_port in targets]
    tasks = {
        asyncio.create_task(_probe_server(progress, timing)): progress for progress in progresses
    }
    finished: list[ServerOutcome] = []
    pending = set(tasks)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timing.total
    try:
        while pending:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            done, pending = await asyncio.wait(
                pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                progress = tasks[task]
                if not task.cancelled() and task.exception() is not None:
                    log.warning(
                        "detection probe failed",
                        extra={"server": progress.source, "error": repr(task.exception())},
                    )
                    progress.error = progress.error or "could not be probed"
                finished.append(progress.outcome())
            if any(outcome.recognition is not None for outcome in finished):
                break
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    # servers still being probed when the total ran out count with what they showed so far
    unfinished = [tasks[task].outcome() for task in pending]
    for outcome in unfinished:
        if not outcome.connected and not outcome.error:
            outcome = _with_error(outcome, f"did not answer within {timing.total:g} s")
        finished.append(outcome)
    return conclude(port, finished)


def _with_error(outcome: ServerOutcome, error: str) -> ServerOutcome:
    return ServerOutcome(
        source=outcome.source,
        recognition=outcome.recognition,
        connected=outcome.connected,
        seen=outcome.seen,
        error=error,
    )


class ServiceProber:
    """Detects the type of a virtual service from its real servers (the service layer's
    prober; unit tests put a fake in its place)."""

    def __init__(self, timing: Timing | None = None) -> None:
        self.timing = timing or Timing()

    async def detect(self, vs: VirtualService) -> Verdict:
        if vs.protocol is Protocol.udp:
            return Verdict(
                type=ServiceType.generic,
                check=CheckType.icmp,
                evidence="detected: generic — a udp service is not probed "
                "(only TCP answers are recognised)",
                conclusive=False,
            )
        targets = [(rs.address, rs.port) for rs in vs.real_servers]
        port = vs.real_servers[0].port if vs.real_servers else vs.port
        return await detect(targets, port=port, timing=self.timing)
