"""The pair's sentinel: puts this node's VRRP instance in FAULT the moment a process it needs
ends (``python -m bascule.engines.keepalived.sentinel ALIVE_FILE PID...``).

keepalived's own process tracking (``vrrp_track_process``) listens to the kernel's process
events, which Linux sends only to the initial network namespace, and its track scripts run at
most once a second: neither fails over under a second for a dead daemon or HAProxy on a node
in a namespace. So the engine starts this small process beside keepalived, given the pids of
the daemon and of HAProxy's master: it waits on their pidfds (no polling; Linux 5.3) and,
when the first ends, writes ``1`` to the ``track_file`` keepalived watches (inotify): the
instance goes to FAULT, sends priority 0, and the peer takes over after its skew time. The
engine writes ``0`` again once the processes run (a restarted HAProxy, a new daemon) and
starts a new sentinel for them. A pid that is already gone at start counts as ended.
"""

from __future__ import annotations

import os
import select
import sys


def write_value(path: str, value: int) -> None:
    """Rewrite ``path`` in place (keepalived watches the file for writes)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, f"{value}\n".encode())
    finally:
        os.close(fd)


def watch(alive_file: str, pids: list[int]) -> int:
    """Wait until one of ``pids`` ends, then mark the node failed; the pid that ended."""
    poller = select.poll()
    fds: dict[int, int] = {}
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            write_value(alive_file, 1)
            return pid
        fds[fd] = pid
        poller.register(fd, select.POLLIN)
    while True:
        for fd, _ in poller.poll():
            write_value(alive_file, 1)
            return fds[fd]


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not all(arg.isdigit() for arg in argv[1:]):
        print("usage: sentinel ALIVE_FILE PID...", file=sys.stderr)
        return 2
    ended = watch(argv[0], [int(arg) for arg in argv[1:]])
    print(f"process {ended} ended: this node's VRRP instance is now in FAULT", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
