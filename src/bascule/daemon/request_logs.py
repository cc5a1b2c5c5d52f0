"""Request logs: HAProxy's lines, received through a named pipe and kept on disk.

HAProxy writes each request's line (``option httplog`` / ``tcplog``, engines/haproxy/logs.py)
to the write end of ``requests.fifo`` it was given at its start (``log fd@3``), without waiting:
when the pipe is full HAProxy drops lines, never requests. The pipe holds 1 MiB, so the daemon
reads it in batches: at most every ``PAUSE`` seconds while lines flow (one wake-up for
thousands of lines), at once when the first line after a quiet spell arrives. The receiver
appends the lines to ``requests.log`` with one write to the file it keeps open and rotates it
at ``max_bytes`` (``requests.log.1`` .. ``.<keep>``, the oldest removed), so the disk use is
bounded. ``read`` serves ``bascule logs`` and ``GET /api/v1/logs``.

Why a pipe rather than the unix datagram socket of before (bench/tls.py and
docs/performance.md "TLS"): a datagram socket queues 10 datagrams (the kernel's
``net.unix.max_dgram_qlen``), so its reader had to wake every few lines and still lost about
a third of them at 10,000 requests/s, at ~10 µs of the daemon's CPU per request; the pipe's
reader spends under 1 µs per line and loses none at the same rate. Nor a ``ring`` forwarding
over a stream socket: in HAProxy 2.6 it costs more per line than the pipe
(engines/haproxy/logs.py). The FIFO outlives the daemon: a daemon that adopts a running
HAProxy opens the same FIFO again, and the lines resume (those written while no daemon read
them are lost: HAProxy logs "Broken pipe").
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bascule.text import has_control

log = logging.getLogger("bascule.request_logs")

# The accept date of httplog and tcplog lines: "[05/Dec/2026:14:50:00.123]" (8.2.3)
_DATE = re.compile(r"\[(\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2})(?:\.\d+)?\]")
# Printable ASCII (space to tilde): what a clean batch of HAProxy's lines holds, besides the
# line feeds between its lines
_PRINTABLE = bytes(range(0x20, 0x7F)) + b"\n"
#: The pipe's capacity asked for (F_SETPIPE_SZ; the kernel's default is 64 KiB): 0.1 s of
#: lines at 50,000 requests/s.
PIPE_SIZE = 1 << 20
#: Seconds the receiver lets lines gather in the pipe after a read (see the module's doc).
PAUSE = 0.05
# Bytes read at one wake-up before writing them (and yielding to the event loop).
_READ_MAX = 4 << 20
# A "line" this long without its line feed is written as it is (HAProxy's lines are shorter:
# engines/haproxy/logs.py PIPE_LINE).
_LINE_MAX = 65536


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


def clean(lines: list[bytes]) -> list[bytes]:
    """HAProxy's lines as the lines to keep: without a syslog header (the daemon's target is
    ``format raw``, engines/haproxy/logs.py: there is none) and without a control character.
    HAProxy escapes what it logs, so its lines are printable ASCII: checked for the whole batch
    at once (``bytes.translate``, in C); only a batch with anything else is taken line by line
    (decoded, every non-printable character replaced by ``?``)."""
    lines = [_strip_header(line.rstrip(b"\n")) for line in lines]
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


class LogPipe:
    """``requests.fifo``: its read end (the receiver's) and a write end the daemon keeps, which
    it gives HAProxy at its start (``write_fd``) and which keeps the read end from seeing an
    end of file while no HAProxy runs. An existing FIFO is kept as it is: an HAProxy started by
    an earlier daemon writes into it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            kept = stat.S_ISFIFO(path.lstat().st_mode)
        except FileNotFoundError:
            kept = False
        if not kept:
            path.unlink(missing_ok=True)  # e.g. the datagram socket of an earlier version
            os.mkfifo(path, 0o600)
        path.chmod(0o600)
        self.read_fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self.write_fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with contextlib.suppress(OSError):  # a smaller pipe only drops lines sooner
            fcntl.fcntl(self.read_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)

    def identity(self) -> tuple[int, int]:
        """The FIFO's (device, inode): what a process holding it shows through /proc."""
        status = os.fstat(self.read_fd)
        return status.st_dev, status.st_ino

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


class Receiver:
    """Reads the pipe when it is readable, everything waiting at once, then pauses (above)."""

    def __init__(self, pipe: LogPipe, file: RequestLogFile, *, pause: float = PAUSE) -> None:
        self.pipe = pipe
        self.file = file
        self.pause = pause
        self._rest = b""  # a line HAProxy has not finished writing yet
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._loop.add_reader(pipe.read_fd, self._readable)

    def _readable(self) -> None:
        chunks: list[bytes] = []
        size = 0
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while size < _READ_MAX:
                data = os.read(self.pipe.read_fd, PIPE_SIZE)
                if not data:
                    break
                chunks.append(data)
                size += len(data)
        if chunks:
            self._take(b"".join(chunks))
        # Let the next lines gather in the pipe: one wake-up per PAUSE while they flow.
        self._loop.remove_reader(self.pipe.read_fd)
        self._timer = self._loop.call_later(0 if size >= _READ_MAX else self.pause, self._resume)

    def _resume(self) -> None:
        self._timer = None
        self._loop.add_reader(self.pipe.read_fd, self._readable)

    def _take(self, data: bytes) -> None:
        text, found, rest = (self._rest + data).rpartition(b"\n")
        if len(rest) > _LINE_MAX:  # not one of HAProxy's lines: kept as it came
            text, found, rest = text + found + rest, b"\n", b""
        self._rest = rest
        if not found:
            return
        lines = [line for line in text.split(b"\n") if line]
        if not lines:
            return
        try:
            self.file.write_lines(clean(lines))
        except OSError as exc:  # a full disk loses lines, never stops the daemon
            log.warning("cannot write request log lines", extra={"error": str(exc)})

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._loop.remove_reader(self.pipe.read_fd)
        self.pipe.close()
        self.file.close()


async def listen(pipe: LogPipe, file: RequestLogFile) -> Receiver:
    """Write every line that arrives in ``pipe`` to ``file``."""
    return Receiver(pipe, file)
