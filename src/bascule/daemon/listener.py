"""The HTTPS listener's guard: bounded connections and bounded time to send a request.

The I/O shell in front of the HTTPS app, before any byte reaches the flow of a change. uvicorn
alone accepts every connection, waits 60 s for a TLS handshake and forever for a request's
headers: 500 TLS connections sending one header line every 10 s stayed open, and at systemd's
1,024 descriptors they starved the unix socket (``bascule status``) and the engines, while
asyncio logged 160 MB of "Too many open files" tracebacks a minute. Here:

- **Our own accept loop** (``AcceptLoop``) takes each connection, counts it against
  ``max_per_source`` (an IPv4 address or an IPv6 /64) and closes at once what is over; when
  ``max_connections`` are open, the oldest connection that has not sent a whole request head
  yet makes room (so slow connections from many sources cannot keep a client out); only then
  TLS starts, with ``handshake_timeout``. Running out of descriptors is logged once a minute
  with a count (``Exhaustion``), never per accept.
- **Each connection's protocol** (``GuardedHttpProtocol``, uvicorn's httptools protocol) must
  receive a request's head (request line and headers, at most ``max_head_bytes``) within
  ``head_timeout`` of its first byte, and its whole body within ``body_timeout`` of the head;
  else it is answered 408 (or 431 for a head too large) and closed. Between requests the
  connection may idle for ``idle_timeout`` (uvicorn's keep-alive timeout).
- **Descriptors kept in reserve** (``descriptor_budget``): at start the daemon raises its soft
  RLIMIT_NOFILE to the hard limit, and the listener may hold at most what leaves half of it
  (and at least 256) to the unix socket, SQLite, HAProxy's sockets, health checks and the
  engines' commands.

What uvicorn 0.54 offers was not enough on its own: ``timeout_keep_alive`` bounds the idle
time between two requests (used: ``idle_timeout``) but nothing bounds a request's head or body
once a byte has come; ``h11_max_incomplete_event_size`` bounds the head of the h11 protocol only
(the httptools one is used here, with its own cap); ``limit_concurrency`` answers 503 past a
count but keeps every connection open; and ``loop.create_server`` leaves the TLS handshake at
asyncio's 60 s. Hence the accept loop and the protocol's deadlines.

The limits are settings (``listen_*``; docs/security.md); tests/unit/daemon/test_listener.py
shows each against a real TLS client.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import functools
import logging
import resource
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bascule.net.addresses import client_source

log = logging.getLogger("bascule.listener")

#: Descriptors never given to the HTTPS listener, whatever the limit (see descriptor_budget).
MIN_RESERVE = 256
#: How often running out of descriptors is logged, at most (seconds).
EXHAUSTION_LOG_EVERY = 60.0
#: accept() errors that mean "no descriptor or memory for now": back off and try again.
EXHAUSTED_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


@dataclass(frozen=True, kw_only=True)
class ListenerLimits:
    """The HTTPS listener's bounds (settings ``listen_*``)."""

    max_connections: int = 512
    max_per_source: int = 32
    handshake_timeout: float = 10.0
    head_timeout: float = 10.0
    body_timeout: float = 60.0
    idle_timeout: int = 5
    max_head_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        if min(self.max_connections, self.max_per_source, self.max_head_bytes) < 1:
            raise ValueError("the listener's connection and size limits must be at least 1")
        if min(self.handshake_timeout, self.head_timeout, self.body_timeout) <= 0:
            raise ValueError("the listener's timeouts must be positive")
        if self.idle_timeout < 1:
            raise ValueError("idle_timeout must be at least 1 second")


def raise_descriptor_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
    return soft, max(soft, target)


def descriptor_budget(limits: ListenerLimits, nofile: int) -> ListenerLimits:
    """``limits`` with ``max_connections`` lowered to leave a reserve of descriptors: half
    of ``nofile``, and at least MIN_RESERVE (16 connections at the very least)."""
    reserve = max(MIN_RESERVE, nofile // 2)
    total = max(16, min(limits.max_connections, nofile - reserve))
    per_source = min(limits.max_per_source, total)
    return dataclasses.replace(limits, max_connections=total, max_per_source=per_source)


@dataclass
class ConnectionSlots:
    """How many connections each source holds, and all together; which are still unproven
    (no complete request head yet), oldest first, to make room for a newcomer."""

    limits: ListenerLimits
    per_source: dict[str, int] = field(default_factory=dict)
    total: int = 0
    refused: int = 0
    evicted: int = 0
    unproven: dict[Slot, None] = field(default_factory=dict)  # insertion order: oldest first

    def take(self, source: str) -> Slot | None:
        """A place for a connection from ``source``, or ``None``: its source holds its share
        already. When all places are taken, the oldest connection that has not sent a whole
        request head yet (a slow handshake, a slowloris) gives up its place: a listener full of
        such connections still takes a client that talks."""
        held = self.per_source.get(source, 0)
        if held >= self.limits.max_per_source:
            self.refused += 1
            return None
        if self.total >= self.limits.max_connections:
            if not self.unproven:
                self.refused += 1
                return None
            victim = next(iter(self.unproven))
            victim.evict()
            self.evicted += 1
        self.per_source[source] = self.per_source.get(source, 0) + 1
        self.total += 1
        slot = Slot(self, source)
        self.unproven[slot] = None
        return slot

    def give(self, slot: Slot) -> None:
        self.unproven.pop(slot, None)
        held = self.per_source.get(slot.source, 0)
        if held <= 1:
            self.per_source.pop(slot.source, None)
        else:
            self.per_source[slot.source] = held - 1
        self.total = max(0, self.total - 1)


class Slot:
    """One connection's place in ``ConnectionSlots``, given back exactly once. ``close``
    ends its connection when it is evicted (set by whoever holds the connection)."""

    def __init__(self, slots: ConnectionSlots, source: str) -> None:
        self._slots = slots
        self.source = source
        self._held = True
        self.close: Callable[[], object] | None = None

    def proven(self) -> None:
        """The connection sent a whole request head: it is a client, not a slowloris."""
        self._slots.unproven.pop(self, None)

    def evict(self) -> None:
        """Give the place back now and end the connection."""
        close = self.close
        self.release()
        if close is not None:
            close()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.give(self)


@dataclass
class Exhaustion:
    """Logs running out of descriptors at most once per ``every`` seconds, with a count."""

    every: float = EXHAUSTION_LOG_EVERY
    clock: Callable[[], float] = time.monotonic
    _last: float | None = None
    _since: int = 0

    def note(self, what: str, error: BaseException | None = None) -> None:
        self._since += 1
        now = self.clock()
        if self._last is not None and now - self._last < self.every:
            return
        log.error(
            "out of descriptors or memory: connections are refused meanwhile",
            extra={"where": what, "error": str(error or ""), "times": self._since},
        )
        self._last = now
        self._since = 0


def quiet_exhaustion(
    exhaustion: Exhaustion,
) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """An event loop exception handler that logs running out of descriptors through
    ``exhaustion`` (once a minute, no traceback) and hands anything else to the default: the
    unix socket's accept loop, asyncio's own, otherwise logs a traceback per failed accept."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, OSError) and error.errno in EXHAUSTED_ERRNOS:
            exhaustion.note(str(context.get("message", "event loop")), error)
            return
        loop.default_exception_handler(context)

    return handle


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines on a request's head and body, a cap on the
    head's size, and its connection's slot given back when it closes."""

    def __init__(
        self,
        *args: Any,
        limits: ListenerLimits,
        slot: Slot | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._slot = slot
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes: int | None = None  # counting while a head is being received
        self._tail = b""  # the last bytes of the head so far (its blank line may be split)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self._slot is not None:
            self._slot.close = transport.abort
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        if self._slot is not None:
            self._slot.release()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_bytes is not None:
            # Count the head up to its blank line: a body sent with it is not the head's.
            window = self._tail + data
            end = window.find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else max(0, end + 4 - len(self._tail))
            self._tail = window[-3:]
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse(431, "the request's head is larger than the limit")
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_bytes is None:  # a new request on a kept-alive connection
            self._start_head()

    def on_headers_complete(self) -> None:
        self._stop_deadline()
        self._head_bytes = None
        if self._slot is not None:
            self._slot.proven()
        if _announces_body(self.headers):
            self._deadline = self.loop.call_later(self.limits.body_timeout, self._body_late)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._stop_deadline()
        super().on_message_complete()

    # -- inside -------------------------------------------------------------------------------

    def _start_head(self) -> None:
        self._stop_deadline()
        self._head_bytes = 0
        self._tail = b""
        self._deadline = self.loop.call_later(self.limits.head_timeout, self._head_late)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_late(self) -> None:
        self._deadline = None
        self._refuse(408, "the request's head did not arrive in time")

    def _body_late(self) -> None:
        self._deadline = None
        self._refuse(408, "the request's body did not arrive in time")

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` unless a response has begun, and close the connection."""
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or not cycle.response_started:
            reason = b"Request Timeout" if status == 408 else b"Request Header Fields Too Large"
            body = message.encode()
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                % (status, reason, len(body), body)
            )
        self.transport.close()


def _announces_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


class AcceptLoop:
    """Accepts on ``sock`` with the slots' bounds, then starts TLS and the protocol; the
    object uvicorn's server closes at shutdown (``close``, ``wait_closed``)."""

    def __init__(
        self,
        sock: socket.socket,
        protocol: Callable[[Slot], asyncio.Protocol],
        *,
        tls: ssl.SSLContext | None,
        limits: ListenerLimits,
        backlog: int = 2048,
    ) -> None:
        self.sock = sock
        self.slots = ConnectionSlots(limits)
        self.exhaustion = Exhaustion()
        self._protocol = protocol
        self._tls = tls
        self._limits = limits
        self._starting: set[asyncio.Task[None]] = set()
        sock.listen(backlog)
        sock.setblocking(False)
        self._task = asyncio.create_task(self._accept_forever(), name="https-accept")

    async def _accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                connection, address = await loop.sock_accept(self.sock)
            except OSError as exc:
                if exc.errno in EXHAUSTED_ERRNOS:
                    self.exhaustion.note("accept", exc)
                    await asyncio.sleep(0.1)  # what frees descriptors needs the loop
                continue  # ECONNABORTED and the like: that client left already
            slot = self.slots.take(client_source(str(address[0])))
            if slot is None:
                _drop(connection)
                continue
            task = asyncio.create_task(self._start(connection, slot))
            slot.close = task.cancel  # evicted during its handshake
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)
            # cancelled, even before it ran: the connection is closed and its place given back
            task.add_done_callback(functools.partial(_cancelled, connection, slot))

    async def _start(self, connection: socket.socket, slot: Slot) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(
                lambda: self._protocol(slot),
                connection,
                ssl=self._tls,
                ssl_handshake_timeout=self._limits.handshake_timeout if self._tls else None,
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            # a handshake that failed or took too long; the protocol never saw the connection
            slot.release()
            with contextlib.suppress(OSError):
                connection.close()
            if isinstance(exc, OSError) and exc.errno in EXHAUSTED_ERRNOS:
                self.exhaustion.note("tls", exc)
        except asyncio.CancelledError:
            slot.release()
            with contextlib.suppress(OSError):
                connection.close()
            raise

    def close(self) -> None:
        self._task.cancel()
        for task in self._starting:
            task.cancel()
        with contextlib.suppress(OSError):
            self.sock.close()

    async def wait_closed(self) -> None:
        await asyncio.gather(self._task, *self._starting, return_exceptions=True)


def _cancelled(connection: socket.socket, slot: Slot, task: asyncio.Task[None]) -> None:
    if task.cancelled():
        slot.release()
        with contextlib.suppress(OSError):
            connection.close()


def _drop(connection: socket.socket) -> None:
    """Close an accepted connection over the limits at once (a reset: nothing to linger)."""
    with contextlib.suppress(OSError):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


class GuardedServer(uvicorn.Server):
    """uvicorn's server with ``AcceptLoop`` instead of ``loop.create_server``, and
    ``GuardedHttpProtocol`` for its connections; without uvicorn's own signal handling (the
    daemon owns SIGTERM and SIGINT)."""

    def __init__(self, config: uvicorn.Config, *, limits: ListenerLimits) -> None:
        super().__init__(config)
        self.limits = limits
        self.accepting: AcceptLoop | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sys.exit(STARTUP_FAILURE)
        if not sockets or len(sockets) != 1:
            raise ValueError("the guarded server serves exactly one bound socket")
        config = self.config
        limits = self.limits
        loop = asyncio.get_running_loop()

        def protocol(slot: Slot) -> asyncio.Protocol:
            return GuardedHttpProtocol(
                config=config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=loop,
                limits=limits,
                slot=slot,
            )

        self.accepting = AcceptLoop(
            sockets[0], protocol, tls=config.ssl, limits=limits, backlog=config.backlog
        )
        # uvicorn's shutdown only calls close() and wait_closed() on what it holds here
        self.servers = [self.accepting]  # type: ignore[list-item]
        self.started = True
