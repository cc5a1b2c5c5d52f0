"""Running conntrackd: install its configuration, start it, adopt it, stop it (the I/O).

Where this sits: under the pair's state sync (daemon/pair_state.py), which renders the
configuration (view.py, render.py) and hands it here. conntrackd has no reload and no pid file
of its own: it runs in the foreground in its own session (``spawn_session``), its pid kept in
``conntrackd.pid``, and a new configuration restarts it (the kernel's conntrack table, which
holds the flows, is not conntrackd's: nothing is lost by a restart). A daemon that restarts
adopts the conntrackd that runs its configuration file.

Before the start, TCP window tracking is made liberal in this network namespace
(``nf_conntrack_tcp_be_liberal``): a flow injected from the peer carries the windows the peer
last saw, and a packet a little beyond them must not be ``invalid`` on the new active (its NAT
would not apply and the connection would be reset).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from pathlib import Path

from bascule.engines.conntrackd.view import ConntrackdPaths
from bascule.errors import ApplyFailed
from bascule.net.processes import alive, command_line, send_signal, spawn_session, wait_dead

BE_LIBERAL = Path("/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal")
START_TIMEOUT = 5.0
_POLL = 0.02


class ConntrackdShell:
    """One conntrackd, its files in ``run_dir`` (0700)."""

    def __init__(self, run_dir: Path, *, binary: str = "conntrackd") -> None:
        self.run_dir = run_dir
        self.binary = binary
        self.config = run_dir / "conntrackd.conf"
        self.pid_file = run_dir / "conntrackd.pid"
        self.log = run_dir / "conntrackd.log"

    @property
    def paths(self) -> ConntrackdPaths:
        return ConntrackdPaths(
            lock_file=str(self.run_dir / "conntrackd.lock"),
            socket=str(self.run_dir / "conntrackd.ctl"),
            log_file=str(self.log),
        )

    def pid(self) -> int | None:
        """The pid of the conntrackd running our configuration, if it runs."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if not alive(pid) or str(self.config) not in command_line(pid):
            return None
        return pid

    async def apply(self, text: str) -> bool:
        """Run conntrackd on ``text``: started, restarted on a new text, or left as it is;
        whether it was (re)started."""
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.pid() is not None and self.config.exists() and self.config.read_text() == text:
            return False
        await self.stop()
        self.config.write_text(text)
        self.config.chmod(0o600)
        await self._start()
        return True

    def _prepare_start(self) -> None:
        with contextlib.suppress(OSError):  # no conntrack here: conntrackd's log says why
            BE_LIBERAL.write_text("1\n")
        Path(self.paths.lock_file).unlink(missing_ok=True)  # a killed one's stale lock

    def _listening(self) -> bool:
        """conntrackd answers on its control socket (a connection is accepted), not merely
        that the socket's file exists."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(self.paths.socket)
            except OSError:
                return False
        return True

    async def _start(self) -> None:
        self._prepare_start()
        try:
            pid = spawn_session(self.binary, [self.binary, "-C", str(self.config)], self.log)
        except OSError as exc:
            raise ApplyFailed(f"cannot start {self.binary}: {exc}") from exc
        self.pid_file.write_text(f"{pid}\n")
        deadline = time.monotonic() + START_TIMEOUT
        while not self._listening():
            if not alive(pid):
                raise ApplyFailed(f"conntrackd exited at start (see {self.log})")
            if time.monotonic() > deadline:
                send_signal(pid, signal.SIGKILL)
                raise ApplyFailed("conntrackd did not open its control socket")
            await asyncio.sleep(_POLL)

    async def stop(self, *, grace: float = 5.0) -> None:
        pid = self.pid()
        if pid is not None:
            send_signal(pid, signal.SIGTERM)
            if not await wait_dead(pid, grace):
                send_signal(pid, signal.SIGKILL)
                await wait_dead(pid, 2.0)
        self.pid_file.unlink(missing_ok=True)
