"""The daemon under systemd: readiness, watchdog and stop notifications, and the journal.

``bascule run`` is a ``Type=notify`` service (deploy/systemd/bascule.service). systemd passes
a datagram socket in ``NOTIFY_SOCKET``; the daemon writes newline-separated ``KEY=value``
assignments to it (sd_notify(3)): ``READY=1`` once the engines run the stored revision and
the API answers, ``STATUS=...`` for ``systemctl status``, ``WATCHDOG=1`` every half of
``WATCHDOG_USEC`` (systemd kills and restarts a daemon whose event loop stops pinging), and
``STOPPING=1`` when it begins to stop. Outside systemd (no ``NOTIFY_SOCKET``) every call is a
no-op, so the same code runs by hand, in tests and under the demo.

The protocol is a few lines over a standard socket, written here rather than taken from a
library: the maintained Python bindings (python-systemd) need libsystemd's C headers to build
and would be a dependency for one ``sendto``.

``journal_stream`` says whether standard error is systemd's journal (``JOURNAL_STREAM``
names the device and inode of the stream it connected, systemd.exec(5)): the log lines then
carry no timestamp of their own (the journal stamps each line) and start with a ``<N>``
syslog priority, which journald reads as the line's level (``SyslogLevelPrefix=``, on by
default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("bascule.systemd")


class Notifier:
    """sd_notify(3) over ``NOTIFY_SOCKET``: silent when the daemon is not a notify service."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; False when there is nobody to tell or the
        message could not be sent (logged: a lost notification must not stop the daemon)."""
        if self.address is None:
            return False
        message = "\n".join(assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            log.warning("cannot notify systemd", extra={"error": str(exc)})
            return False
        return True

    def ready(self, status: str) -> bool:
        """The engines run the stored revision and the API answers."""
        return self.notify("READY=1", f"STATUS={_one_line(status)}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={_one_line(status)}")

    def stopping(self, status: str) -> bool:
        return self.notify("STOPPING=1", f"STATUS={_one_line(status)}")

    async def watchdog(self) -> None:
        """Ping the watchdog at half its timeout for as long as the event loop runs: a loop
        that blocks (or a daemon that hangs) stops the pings and systemd restarts it."""
        if self.address is None or self.watchdog_interval is None:
            return
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval)


def _socket_address(value: str) -> str | bytes | None:
    """``NOTIFY_SOCKET``: a path, or ``@name`` for an abstract socket (a leading NUL)."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock:... and others: not for a daemon on the host


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half of ``WATCHDOG_USEC`` in seconds, if the watchdog is meant for this process."""
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None  # set for another process (a parent that exec'd us keeps its own)
    return int(usec) / 2 / 1_000_000


def _one_line(text: str) -> str:
    return " ".join(text.split())


def journal_stream(environ: Mapping[str, str] | None = None, fd: int = 2) -> bool:
    """Whether ``fd`` (standard error) is connected to systemd's journal."""
    env = os.environ if environ is None else environ
    device, _, inode = env.get("JOURNAL_STREAM", "").partition(":")
    if not device.isdigit() or not inode.isdigit():
        return False
    with contextlib.suppress(OSError):
        stat = os.fstat(fd)
        return (stat.st_dev, stat.st_ino) == (int(device), int(inode))
    return False
