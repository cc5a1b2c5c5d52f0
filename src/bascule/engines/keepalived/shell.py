"""The keepalived shell: the pair's VRRP process, its files and signals.

Where it sits in the flow of a change: the keepalived engine (engine.py) renders its share of
the document (view.py, render.py) and calls this module to check it (``keepalived -t``),
install it, start keepalived or make it re-read its file (SIGHUP), and stop it. Everything
here is I/O.

The process model (keepalived(8) 2.2): ``keepalived --vrrp --dont-fork --log-console`` in its
own session (its log goes to ``keepalived.log``), started with ``posix_spawn`` so it outlives
the daemon, which adopts it at its next start from its pid file. SIGHUP reloads the file
(VRRP keeps its state: no failover); SIGTERM stops it, and keepalived then sends a priority 0
advert and removes the VIPs, so the peer takes over at once.

Its notify script writes the instance's state (``MASTER``, ``BACKUP``, ``FAULT``) to
``vrrp.state``. Two ``track_file``s hold the node back (FAULT) when not ``0``: ``alive``,
written by the sentinel (sentinel.py, run by ``watch``) when the daemon or HAProxy ends, and
``standby``, set by ``bascule ha standby``. Both are rewritten in place: keepalived watches
them for writes. A
paired node binds VIPs it does not hold (the standby's HAProxy listens on them too, so a
takeover needs no reload): ``net.ipv4.ip_nonlocal_bind`` and its IPv6 twin are set in the
node's network namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bascule.engines.keepalived.sentinel import write_value
from bascule.errors import ApplyFailed, EngineError, EngineRejected
from bascule.net.processes import alive, command_line, send_signal, spawn_session, wait_dead

ENGINE = "keepalived"
_POLL = 0.05
_NONLOCAL_BIND = (
    Path("/proc/sys/net/ipv4/ip_nonlocal_bind"),
    Path("/proc/sys/net/ipv6/ip_nonlocal_bind"),
)
# keepalived -t prints "(file: Line N) message" for each problem
_PROBLEM = re.compile(r"^\((?P<where>[^)]*)\) (?P<text>.*)$")


@dataclass(frozen=True, kw_only=True)
class KeepalivedPaths:
    run_dir: Path
    config: Path
    last_good: Path
    pid_file: Path
    vrrp_pid_file: Path
    notify_script: Path
    state_file: Path
    alive_file: Path
    standby_file: Path
    sentinel_pid_file: Path
    log: Path

    @classmethod
    def under(cls, run_dir: Path) -> KeepalivedPaths:
        return cls(
            run_dir=run_dir,
            config=run_dir / "keepalived.conf",
            last_good=run_dir / "keepalived.conf.last-good",
            pid_file=run_dir / "keepalived.pid",
            vrrp_pid_file=run_dir / "vrrp.pid",
            notify_script=run_dir / "notify.sh",
            state_file=run_dir / "vrrp.state",
            alive_file=run_dir / "alive",
            standby_file=run_dir / "standby",
            sentinel_pid_file=run_dir / "sentinel.pid",
            log=run_dir / "keepalived.log",
        )


def notify_script(state_file: Path) -> str:
    """The notify script: keepalived calls it with (type, name, state, priority)."""
    tmp = state_file.with_name(f".{state_file.name}.tmp")
    return (
        "#!/bin/sh\n"
        "# Written by Bascule: keepalived's notify script, the VRRP state for the daemon.\n"
        f"printf '%s %s\\n' \"$3\" \"$4\" > '{tmp}' && mv -f '{tmp}' '{state_file}'\n"
    )


class KeepalivedShell:
    """Drives one keepalived (VRRP only) living in ``paths.run_dir``."""

    def __init__(
        self,
        paths: KeepalivedPaths,
        *,
        binary: str = "keepalived",
        python: str = sys.executable,
        timeout: float = 10.0,
    ) -> None:
        self.paths = paths
        self.binary = binary
        self.python = python  # runs the sentinel
        self.timeout = timeout

    def prepare(self) -> None:
        """The run directory, the notify script, the standby file (0 unless set) and the
        alive file (1, failed, until a sentinel watches the processes)."""
        self.paths.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.paths.run_dir.chmod(0o700)
        _write_private(self.paths.notify_script, notify_script(self.paths.state_file), mode=0o700)
        if not self.paths.standby_file.exists():
            write_value(str(self.paths.standby_file), 0)
        if not self.paths.alive_file.exists():
            write_value(str(self.paths.alive_file), 1)

    # --- the checker -------------------------------------------------------------------------

    async def check(self, text: str) -> None:
        """``keepalived -t`` on ``text``; EngineRejected with its complaints."""
        self.prepare()
        fd, name = tempfile.mkstemp(dir=self.paths.run_dir, prefix="keepalived.conf.check-")
        candidate = Path(name)
        try:
            with os.fdopen(fd, "w") as file:
                file.write(text)
            code, output = await self._run(self.binary, "--config-test", "-f", str(candidate))
        finally:
            _remove(candidate)
        if code != 0:
            problems = [
                match["text"] for line in output.splitlines() if (match := _PROBLEM.match(line))
            ]
            raise EngineRejected(ENGINE, "; ".join(problems) or output.strip()[-2000:])

    async def _run(self, *argv: str) -> tuple[int, str]:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            async with asyncio.timeout(self.timeout):
                output, _ = await process.communicate()
        except OSError as exc:
            raise EngineError(f"cannot run {argv[0]}: {exc}") from exc
        except TimeoutError as exc:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise EngineError(f"{argv[0]} gave no answer within {self.timeout:g} s") from exc
        return process.returncode or 0, output.decode(errors="replace")

    # --- the process -------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of the keepalived running our configuration, if it runs."""
        try:
            pid = int(self.paths.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if not alive(pid) or str(self.paths.config) not in command_line(pid):
            return None
        return pid

    async def adopt(self) -> bool:
        """Keep a keepalived left by a previous daemon (True), or clear its leftovers."""
        if self.pid() is not None:
            return True
        self.paths.pid_file.unlink(missing_ok=True)
        return False

    async def apply(self, text: str) -> None:
        """Install ``text``: start keepalived, or make the running one re-read it (SIGHUP)."""
        self.prepare()
        allow_nonlocal_bind()
        if self.paths.config.exists():
            shutil.copyfile(self.paths.config, self.paths.last_good)
        _write_private(self.paths.config, text)
        pid = self.pid()
        if pid is None:
            await self._start()
        else:
            send_signal(pid, signal.SIGHUP)

    async def _start(self) -> None:
        self.paths.state_file.unlink(missing_ok=True)
        argv = [
            self.binary,
            "--vrrp",
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "--use-file",
            str(self.paths.config),
            "--pid",
            str(self.paths.pid_file),
            "--vrrp_pid",
            str(self.paths.vrrp_pid_file),
        ]
        try:
            pid = spawn_session(self.binary, argv, self.paths.log)
        except OSError as exc:
            raise ApplyFailed(f"cannot start {self.binary}: {exc}") from exc
        deadline = time.monotonic() + self.timeout
        while self.pid() != pid:
            if not alive(pid):
                raise ApplyFailed(f"keepalived exited at start (see {self.paths.log})")
            if time.monotonic() > deadline:
                send_signal(pid, signal.SIGKILL)
                raise ApplyFailed("keepalived did not write its pid file")
            await asyncio.sleep(_POLL)

    async def stop(self, *, grace: float = 5.0) -> None:
        """SIGTERM: keepalived hands the VIPs over (priority 0) and removes them."""
        pid = self.pid()
        if pid is not None:
            send_signal(pid, signal.SIGTERM)
            if not await wait_dead(pid, max(grace, 1.0)):
                send_signal(pid, signal.SIGKILL)
                await wait_dead(pid, 2.0)
        self.paths.pid_file.unlink(missing_ok=True)
        self.paths.state_file.unlink(missing_ok=True)
        self.stop_sentinel()

    def state(self) -> tuple[str, int | None] | None:
        """The VRRP state the notify script last wrote and its priority, if any."""
        try:
            words = self.paths.state_file.read_text().split()
        except OSError:
            return None
        if not words:
            return None
        priority = int(words[1]) if len(words) > 1 and words[1].isdigit() else None
        return words[0], priority

    def set_standby(self, standby: bool) -> None:
        """Set the standby file: 1 puts the instance in FAULT (the peer takes the VIPs)."""
        self.prepare()
        write_value(str(self.paths.standby_file), 1 if standby else 0)

    def standby(self) -> bool:
        return _set(self.paths.standby_file)

    def failed(self) -> bool:
        """Whether the alive file holds the node back (a needed process ended)."""
        return _set(self.paths.alive_file)

    # --- the sentinel ------------------------------------------------------------------------

    def sentinel(self) -> tuple[int, tuple[int, ...]] | None:
        """The running sentinel's pid and the pids it watches."""
        try:
            pid = int(self.paths.sentinel_pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        argv = command_line(pid) if alive(pid) else []
        alive_file = str(self.paths.alive_file)
        if alive_file not in argv:
            return None
        watched = argv[argv.index(alive_file) + 1 :]
        return pid, tuple(int(w) for w in watched if w.isdigit())

    def watch(self, pids: Sequence[int] | None) -> None:
        """Have a sentinel watch ``pids`` (the node may serve: alive 0); ``None``: a needed
        process is not running, the node is held back (alive 1) until it is."""
        self.prepare()
        current = self.sentinel()
        if pids is not None and current is not None and current[1] == tuple(pids):
            return
        if current is not None:
            send_signal(current[0], signal.SIGKILL)
            alive(current[0])  # reaps it if it is our child
        if pids is None:
            write_value(str(self.paths.alive_file), 1)
            return
        # 0 first: a pid that ends before the sentinel watches it is seen by the sentinel
        write_value(str(self.paths.alive_file), 0)
        argv = [
            self.python,
            "-m",
            "bascule.engines.keepalived.sentinel",
            str(self.paths.alive_file),
            *map(str, pids),
        ]
        pid = spawn_session(self.python, argv, self.paths.run_dir / "sentinel.log")
        _write_private(self.paths.sentinel_pid_file, f"{pid}\n")

    def stop_sentinel(self) -> None:
        current = self.sentinel()
        if current is not None:
            send_signal(current[0], signal.SIGKILL)
            alive(current[0])
        self.paths.sentinel_pid_file.unlink(missing_ok=True)

    async def version(self) -> str:
        _, output = await self._run(self.binary, "--version")
        match = re.search(r"Keepalived v(\S+)", output)
        return match[1] if match else "unknown"


def allow_nonlocal_bind() -> None:
    """Let the data planes bind VIPs this node does not hold (yet)."""
    for path in _NONLOCAL_BIND:
        with contextlib.suppress(FileNotFoundError):
            if path.read_text().strip() != "1":
                path.write_text("1\n")


def _set(path: Path) -> bool:
    try:
        return path.read_text().strip() not in {"", "0"}
    except OSError:
        return False


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _write_private(path: Path, text: str, *, mode: int = 0o600) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.replace(path)
