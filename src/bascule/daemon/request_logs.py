"""Request logs: HAProxy's lines, received on a unix datagram socket and kept on disk.

HAProxy sends each request's line (``option httplog`` / ``tcplog``, engines/haproxy/logs.py)
to ``requests.sock`` without waiting: when this reader is slow the socket's buffer fills and
HAProxy drops lines, never requests. The receiver appends the lines to ``requests.log`` and
rotates it at ``max_bytes`` (``requests.log.1`` .. ``.<keep>``, the oldest removed), so the
disk use is bounded. ``read`` serves ``bascule logs`` and ``GET /api/v1/logs``.

Under load the receiver takes every datagram waiting (up to ``_BATCH``) at each wake-up and
writes them with one ``write`` to the file it keeps open: a line then costs the daemon a few
µs of CPU instead of about 12 µs one at a time (an open, a stat, a write and a close each, a
regular expression for the syslog header), and it keeps up with HAProxy at tens of thousands
of requests per second where the line-by-line receiver lost more than half (bench/tls.py,
docs/performance.md "TLS").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bascule.text import has_control

log = logging.getLogger("bascule.request_logs")

# The accept date of httplog and tcplog lines: "[05/Dec/2026:14:50:00.123]" (8.2.3)
_DATE = re.compile(r"\[(\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2})(?:\.\d+)?\]")
_MAX_DATAGRAM = 65536
# Printable ASCII (space to tilde): what a clean batch of HAProxy's lines holds, besides the
# line feeds between its lines
_PRINTABLE = bytes(range(0x20, 0x7F)) + b"\n"
# Datagrams read at one wake-up before writing them (and yielding to the event loop).
_BATCH = 512


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
    """``requests.log`` and its rotated predecessors, capped at ``max_bytes`` each.

    The current file stays open between writes (a stat of the path per batch notices that it
    was removed or replaced, and opens it again); ``close`` lets it go."""

    def __init__(self, path: Path, *, max_bytes: int, keep: int) -> None:
        if max_bytes < 1 or keep < 1:
            raise ValueError("max_bytes and keep must be at least 1")
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fd: int | None = None
        self._inode: tuple[int, int] | None = None

    def write(self, line: str) -> None:
        self.write_lines([line.encode()])

    def write_lines(self, lines: list[bytes]) -> None:
        """Append ``lines`` (each without its line feed), rotating first whenever the next
        line would pass ``max_bytes``; one ``write`` per file written."""
        size = self._open()
        chunk: list[bytes] = []
        for line in lines:
            if size and size + len(line) + 1 > self.max_bytes:
                self._append(chunk)
                chunk = []
                self._rotate()
                size = self._open()
            chunk.append(line)
            size += len(line) + 1
        self._append(chunk)

    def _open(self) -> int:
        """The current file open for appending (again if it is not the one open); its size."""
        try:
            status = self.path.stat()
        except FileNotFoundError:
            status = None
        if status is None or (status.st_dev, status.st_ino) != self._inode:
            self.close()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            status = os.fstat(self._fd)
            self._inode = (status.st_dev, status.st_ino)
        return status.st_size

    def _append(self, chunk: list[bytes]) -> None:
        if chunk and self._fd is not None:
            os.write(self._fd, b"\n".join(chunk) + b"\n")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = self._inode = None

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


def clean(datagrams: list[bytes]) -> list[bytes]:
    """Datagrams as the lines to keep: without a syslog header (the daemon's target is
    ``format raw``, engines/haproxy/logs.py: there is none) and without a control character.
    HAProxy escapes what it logs, so its lines are printable ASCII: checked for the whole batch
    at once (``bytes.translate``, in C); only a batch with anything else is taken line by line
    (decoded, every non-printable character replaced by ``?``)."""
    lines = [_strip_header(datagram.rstrip(b"\n")) for datagram in datagrams]
    joined = b"\n".join(lines)
    if not joined.translate(None, _PRINTABLE) and joined.count(b"\n") == len(lines) - 1:
        return lines
    return [_printable(line) for line in lines]


def _strip_header(line: bytes) -> bytes:
    """Without a syslog header ``<134>Dec  5 14:50:00 haproxy[42]: `` if it has one."""
    end = line.find(b">")
    if line.startswith(b"<") and end > 1 and line[1:end].isdigit():
        _, found, text = line.partition(b"]: ")
        if found:
            return text
    return line


def _printable(line: bytes) -> bytes:
    text = line.decode(errors="replace")
    if has_control(text):  # HAProxy escapes what it logs; anything else is not its line
        text = "".join(c if c.isprintable() else "?" for c in text)
    return text.encode()


class Receiver:
    """Reads the socket when it is readable, every waiting datagram at once (see above)."""

    def __init__(self, sock: socket.socket, file: RequestLogFile) -> None:
        self.sock = sock
        self.file = file
        self._loop = asyncio.get_running_loop()
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        datagrams = []
        with contextlib.suppress(BlockingIOError, InterruptedError):
            for _ in range(_BATCH):
                datagrams.append(self.sock.recv(_MAX_DATAGRAM))
        if not datagrams:
            return
        try:
            self.file.write_lines(clean(datagrams))
        except OSError as exc:  # a full disk loses lines, never stops the daemon
            log.warning("cannot write request log lines", extra={"error": str(exc)})

    def close(self) -> None:
        self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
        self.file.close()


def bind(path: Path) -> socket.socket:
    """The unix datagram socket HAProxy sends to, bound (0600, in a 0700 directory)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * _MAX_DATAGRAM)
    sock.bind(str(path))
    path.chmod(0o600)
    return sock


async def listen(sock: socket.socket, file: RequestLogFile) -> Receiver:
    """Write every line that arrives on ``sock`` (from ``bind``) to ``file``."""
    return Receiver(sock, file)
