"""Request logs: HAProxy's lines, received on a unix datagram socket and kept on disk.

HAProxy sends each request's line (``option httplog`` / ``tcplog``, engines/haproxy/logs.py)
to ``requests.sock`` without waiting: when this reader is slow the socket's buffer fills and
HAProxy drops lines, never requests. The receiver appends each line to ``requests.log`` and
rotates it at ``max_bytes`` (``requests.log.1`` .. ``.<keep>``, the oldest removed), so the
disk use is bounded. ``read`` serves ``bascule logs`` and ``GET /api/v1/logs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bascule.text import has_control

log = logging.getLogger("bascule.request_logs")

# HAProxy's syslog header (RFC 3164 by default): "<134>Dec  5 14:50:00 haproxy[42]: "
_HEADER = re.compile(r"^<\d+>.*?\]: ")
# The accept date of httplog and tcplog lines: "[05/Dec/2026:14:50:00.123]" (8.2.3)
_DATE = re.compile(r"\[(\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2})(?:\.\d+)?\]")
_MAX_DATAGRAM = 65536


@dataclass(frozen=True, kw_only=True)
class RequestLine:
    """One line: when HAProxy accepted the request, the service (its frontend), the text."""

    time: datetime | None
    service: str
    text: str


def parse(text: str) -> RequestLine:
    """A line as HAProxy writes it: ``client:port [date] frontend backend/server ...``."""
    words = text.split(" ", 3)
    service = words[2].rstrip("~") if len(words) > 2 else ""  # "site~": an SSL frontend
    match = _DATE.search(text)
    when = None
    if match is not None:
        with contextlib.suppress(ValueError):
            # HAProxy writes the load balancer's local time
            when = datetime.strptime(match[1], "%d/%b/%Y:%H:%M:%S").astimezone()
    return RequestLine(time=when, service=service, text=text)


class RequestLogFile:
    """``requests.log`` and its rotated predecessors, capped at ``max_bytes`` each."""

    def __init__(self, path: Path, *, max_bytes: int, keep: int) -> None:
        if max_bytes < 1 or keep < 1:
            raise ValueError("max_bytes and keep must be at least 1")
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    def write(self, line: str) -> None:
        data = (line + "\n").encode()
        with contextlib.suppress(FileNotFoundError):
            if self.path.stat().st_size + len(data) > self.max_bytes:
                self._rotate()
        with self.path.open("ab") as out:
            out.write(data)

    def _rotate(self) -> None:
        self._numbered(self.keep).unlink(missing_ok=True)
        for number in range(self.keep - 1, 0, -1):
            older = self._numbered(number)
            if older.exists():
                older.replace(self._numbered(number + 1))
        self.path.replace(self._numbered(1))

    def _numbered(self, number: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{number}")

    def files(self) -> list[Path]:
        """Oldest first: ``.<keep>`` .. ``.1``, then the current file."""
        numbered = [self._numbered(n) for n in range(self.keep, 0, -1)]
        return [path for path in (*numbered, self.path) if path.exists()]

    def read(
        self, *, service: str | None = None, since: datetime | None = None, limit: int = 200
    ) -> list[RequestLine]:
        """The last ``limit`` lines (oldest first) of ``service`` (all: None) since ``since``."""
        chosen: list[RequestLine] = []
        for path in self.files():
            with path.open("rb") as lines:
                for raw in lines:
                    line = parse(raw.decode(errors="replace").rstrip("\n"))
                    if service is not None and line.service != service:
                        continue
                    if since is not None and (line.time is None or line.time < since):
                        continue
                    chosen.append(line)
            chosen = chosen[-limit:]
        return chosen


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, file: RequestLogFile) -> None:
        self.file = file

    def datagram_received(self, data: bytes, addr: object) -> None:
        text = _HEADER.sub("", data.decode(errors="replace").rstrip("\n"), count=1)
        if has_control(text):  # HAProxy escapes what it logs; anything else is not its line
            text = "".join(c if c.isprintable() else "?" for c in text)
        try:
            self.file.write(text)
        except OSError as exc:  # a full disk loses lines, never stops the daemon
            log.warning("cannot write a request log line", extra={"error": str(exc)})


def bind(path: Path) -> socket.socket:
    """The unix datagram socket HAProxy sends to, bound (0600, in a 0700 directory)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * _MAX_DATAGRAM)
    sock.bind(str(path))
    path.chmod(0o600)
    return sock


async def listen(sock: socket.socket, file: RequestLogFile) -> asyncio.DatagramTransport:
    """Write every line that arrives on ``sock`` (from ``bind``) to ``file``."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Receiver(file), sock=sock)
    return transport
