"""The long-lived processes Bascule starts (HAProxy's master, the STARTTLS front): start them in
a session of their own, tell whether they live, signal them, wait for them to go.

Low-level I/O both engines' shells use (engines never import each other): a data plane must
outlive the daemon, so it is started with ``posix_spawn`` in its own session, never as an
asyncio child whose transport would be reported as leaked when the daemon's loop closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path

_POLL = 0.05


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; reaps it if it is our exited child, and a zombie counts as dead."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        reaped = 0  # not our child (adopted, or started through another parent)
    if reaped == pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # /proc/<pid>/stat: "pid (comm) state ..."; comm may hold spaces, so split after ')'.
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def command_line(pid: int) -> list[str]:
    """The argv of a running process (empty when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def spawn_session(
    binary: str, argv: list[str], log: Path, *, inherit: Mapping[int, int] | None = None
) -> int:
    """Start ``argv`` in a new session, stdin from /dev/null, stdout and stderr appended to
    ``log`` (0600), and each descriptor of ``inherit``'s values as its key (3 and up); its
    pid."""
    inherited = [(os.POSIX_SPAWN_DUP2, fd, number) for number, fd in (inherit or {}).items()]
    if any(number < 3 for number in (inherit or {})):
        raise ValueError("descriptors 0 to 2 are the standard ones")
    log_fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        return os.posix_spawnp(
            binary,
            argv,
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log_fd, 1),
                (os.POSIX_SPAWN_DUP2, log_fd, 2),
                *inherited,  # after the standard ones: log_fd may be one of their numbers
            ],
            setsid=True,
        )
    finally:
        os.close(log_fd)


def send_signal(pid: int, signum: signal.Signals) -> None:
    """``kill(pid, signum)``; a process already gone is no error."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


async def wait_dead(pid: int, wait: float) -> bool:
    """Wait up to ``wait`` seconds for ``pid`` to end; whether it did."""
    deadline = time.monotonic() + wait
    while alive(pid):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL)
    return True
