"""The HAProxy shell: files, processes and sockets around a rendered configuration.

Where it sits in the flow of a change: the reconciler's plan reaches the daemon's executor,
the engine (engine.py) renders the desired state into config text (view.py, render.py) and
calls this module to validate it (``haproxy -c``), apply it (atomic swap + seamless reload
through the master CLI, verified, rolled back to the last good file on failure), or to send
runtime-API commands built by runtime.py. Everything here is I/O; every decision about what a
command or an answer means lives in runtime.py and the answers' modules (server_stats.py,
server_states.py, workers.py).

The process model (management.txt 3 and 9.4): one master started with ``-W`` (master-worker)
and ``-S <master socket>``; the master forks one worker that serves the configuration; a
reload makes the master re-execute itself and fork a new worker, which takes the listening
sockets over from the old one through the master's socket pair (``-x sockpair@``, automatic
in master-worker mode), so no connection is refused; the old worker finishes its connections
and leaves. The master runs in its own session so the daemon's death never touches it, and
the next daemon adopts it (``adopt``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bascule.engines.haproxy import runtime as runtime_api
from bascule.engines.haproxy import server_states, server_stats, workers
from bascule.errors import ApplyFailed, EngineError, EngineRejected
from bascule.net.processes import alive as _alive
from bascule.net.processes import send_signal as _signal
from bascule.net.processes import spawn_session as _spawn_session
from bascule.net.processes import wait_dead as _wait_dead

ENGINE = "haproxy"
# sun_path is 108 bytes on Linux, the terminating NUL included (unix(7)).
_MAX_SOCKET_PATH = 107
_POLL = 0.05
_SOCKET_TIMEOUT = 5.0
# A CLI line is read into one buffer (tune.bufsize, 16 kB by default): stay well below it.
_MAX_LINE = 8000
# Connections open at once on one HAProxy socket. The stats socket serves 10 at a time
# (configuration.txt 3.1 "stats maxconn": "By default, the stats socket is limited to 10
# concurrent connections") and drops what its backlog cannot hold: 200 status reads side by
# side lost 179 ("Connection lost"). They queue here instead, in the daemon's event loop.
_SOCKET_SLOTS = 4
#: How long a text ``check`` accepted is installed without being checked again.
ACCEPTED_FOR_S = 30.0
# A connection refused or reset before a line was sent (a worker being replaced, a full
# backlog) is tried again, this many times in all, after 50 ms, 100 ms...
_CONNECT_TRIES = 4


@dataclass(frozen=True, kw_only=True)
class HaproxyPaths:
    """Every file of one HAProxy instance, all under one run directory."""

    run_dir: Path
    config: Path
    stats_socket: Path
    master_socket: Path
    peers_socket: Path
    pid_file: Path
    last_good: Path
    new_config: Path
    rejected: Path
    rejected_output: Path
    log: Path
    # present while servers added at runtime await their deferred reload (engine.py): a
    # daemon that adopts this HAProxy then reloads it
    reload_pending: Path

    @classmethod
    def under(cls, run_dir: Path) -> HaproxyPaths:
        paths = cls(
            run_dir=run_dir,
            config=run_dir / "haproxy.cfg",
            stats_socket=run_dir / "haproxy.sock",
            master_socket=run_dir / "master.sock",
            peers_socket=run_dir / "peers.sock",
            pid_file=run_dir / "haproxy.pid",
            last_good=run_dir / "haproxy.cfg.last-good",
            new_config=run_dir / "haproxy.cfg.new",
            rejected=run_dir / "haproxy.cfg.rejected",
            rejected_output=run_dir / "haproxy.cfg.rejected.txt",
            log=run_dir / "haproxy.log",
            reload_pending=run_dir / "reload-pending",
        )
        for socket_path in (paths.stats_socket, paths.master_socket, paths.peers_socket):
            if len(os.fsencode(socket_path)) > _MAX_SOCKET_PATH:
                raise ValueError(
                    f"unix socket path too long (max {_MAX_SOCKET_PATH} bytes): {socket_path}"
                )
        return paths


class HaproxyShell:
    """Drives one HAProxy master-worker instance living in ``paths.run_dir``."""

    def __init__(
        self,
        paths: HaproxyPaths,
        *,
        binary: str = "haproxy",
        start_timeout: float = 10.0,
        reload_timeout: float = 10.0,
        inherit: Mapping[int, int] | None = None,
    ) -> None:
        """``inherit``: descriptors the master is started with (its number -> the daemon's
        descriptor); it keeps them across its re-executions, so every worker has them."""
        self.paths = paths
        self.binary = binary
        self.inherit = dict(inherit or {})
        self.start_timeout = start_timeout
        self.reload_timeout = reload_timeout
        self._slots = {
            path: asyncio.Semaphore(_SOCKET_SLOTS)
            for path in (paths.stats_socket, paths.master_socket)
        }
        # The text ``check`` last accepted (its digest) and when: the change pipeline checks
        # a configuration before its commit and installs the same text right after, and
        # ``haproxy -c`` of 10,000 servers is not worth doing twice (issue 15).
        self._accepted: tuple[bytes, float] | None = None

    # --- the checker -------------------------------------------------------------------------

    async def version(self) -> str:
        code, output = await self._run(self.binary, "-v")
        if code != 0:
            raise EngineError(f"'{self.binary} -v' failed: {output.strip()}")
        return runtime_api.parse_version(output)

    async def check(self, config_text: str) -> None:
        """Validate ``config_text`` with ``haproxy -c``; keep it and the output if refused."""
        _make_run_dir(self.paths.run_dir)
        fd, name = tempfile.mkstemp(dir=self.paths.run_dir, prefix="haproxy.cfg.check-")
        candidate = Path(name)
        try:
            _write_fd(fd, config_text)
            await self._check_file(candidate)
            self._accepted = (_digest(config_text), time.monotonic())
        finally:
            _remove(candidate)

    def _accepted_lately(self, config_text: str) -> bool:
        """Whether ``check`` accepted this very text within ``ACCEPTED_FOR_S`` (the files it
        reads cannot have changed much since; a reload that fails anyway is rolled back)."""
        accepted, self._accepted = self._accepted, None
        return (
            accepted is not None
            and time.monotonic() - accepted[1] < ACCEPTED_FOR_S
            and accepted[0] == _digest(config_text)
        )

    async def _check_file(self, candidate: Path) -> None:
        code, output = await self._run(self.binary, "-c", "-f", str(candidate))
        if code == 0:
            return
        # The kept file is where the line numbers in the messages point to.
        output = output.replace(str(candidate), str(self.paths.rejected))
        os.replace(candidate, self.paths.rejected)
        _write_file(self.paths.rejected_output, output)
        alerts = runtime_api.alert_lines(output.splitlines()) or [
            output.strip() or f"exit code {code}"
        ]
        raise EngineRejected(ENGINE, "\n".join(alerts), rejected_path=str(self.paths.rejected))

    # --- the process -------------------------------------------------------------------------

    async def is_running(self) -> bool:
        """True when the master named in the pid file lives and answers on its socket."""
        pid = _read_pid(self.paths.pid_file)
        if pid is None or not _alive(pid):
            return False
        try:
            table = await self._show_proc()
        except EngineError:
            return False
        return table.master.pid == pid

    def missing_inherited(self) -> list[int]:
        """The ``inherit`` numbers the running master does not hold as this daemon's very
        descriptor (the same open file: /proc/<pid>/fd/<number>); none when it is not up."""
        pid = _read_pid(self.paths.pid_file)
        if pid is None:
            return []
        missing = []
        for number, fd in self.inherit.items():
            mine = os.fstat(fd)
            try:
                theirs = Path(f"/proc/{pid}/fd/{number}").stat()
            except OSError:
                missing.append(number)
                continue
            if (theirs.st_dev, theirs.st_ino) != (mine.st_dev, mine.st_ino):
                missing.append(number)
        return missing

    async def adopt(self) -> bool:
        """Keep a master left by a previous daemon (True), or clear its leftovers (False)."""
        if await self.is_running():
            return True
        pid = _read_pid(self.paths.pid_file)
        if pid is not None and _alive(pid):
            raise EngineError(
                f"HAProxy master {pid} is alive but its master socket "
                f"{self.paths.master_socket} does not answer; stop it by hand"
            )
        self._remove_runtime_files()
        return False

    async def start(self, config_text: str) -> None:
        """Validate and install ``config_text``, then start the master and wait for its worker."""
        if await self.is_running():
            raise ApplyFailed(f"HAProxy already runs in {self.paths.run_dir}; apply instead")
        await self._install(config_text)
        try:
            await self._launch()
        except ApplyFailed as failure:
            self._set_aside(failure)
            raise

    async def _launch(self) -> None:
        self._remove_runtime_files()
        log_offset = _size(self.paths.log)
        # -W: master-worker; -S: master CLI (management.txt 3, "-S"); no -D: the master stays
        # in the foreground of its own session so its messages (reload failures included, it
        # keeps its stderr across re-executions) reach haproxy.log; -D would send them to
        # /dev/null.
        argv = [
            self.binary,
            "-W",
            "-S",
            f"{self.paths.master_socket},mode,600",
            "-p",
            str(self.paths.pid_file),
            "-f",
            str(self.paths.config),
        ]
        try:
            pid = _spawn_session(self.binary, argv, self.paths.log, inherit=self.inherit)
        except OSError as exc:
            raise ApplyFailed(f"cannot start {self.binary}: {exc}") from exc
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                raise ApplyFailed(
                    "HAProxy did not start: " + self._log_reason(log_offset, "it exited")
                )
            table = await self._try_show_proc()
            started = table is not None and table.master.pid == pid and bool(table.workers)
            if table is not None and started and await self._stats_answers(table.workers[0].pid):
                return
            await asyncio.sleep(_POLL)
        await self._kill(pid)
        raise ApplyFailed(
            "HAProxy did not start: "
            + self._log_reason(log_offset, f"no worker after {self.start_timeout:g} s")
        )

    async def stop(self, *, grace: float = 10.0) -> None:
        """Soft-stop (SIGUSR1: finish connections), then SIGTERM, then SIGKILL; clean up."""
        pid = _read_pid(self.paths.pid_file)
        if pid is not None and _alive(pid):
            # management.txt 4: SIGUSR1 is the graceful stop; the master relays it to workers
            # and leaves when they have.
            _signal(pid, signal.SIGUSR1)
            if not await _wait_dead(pid, grace):
                _signal(pid, signal.SIGTERM)
                if not await _wait_dead(pid, 2.0):
                    await self._kill(pid)
        self._remove_runtime_files()

    async def _kill(self, pid: int) -> None:
        # The master leads its own session and process group; its workers are in it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        await _wait_dead(pid, 2.0)

    def _remove_runtime_files(self) -> None:
        for path in (
            self.paths.pid_file,
            self.paths.master_socket,
            self.paths.stats_socket,
            self.paths.peers_socket,
        ):
            path.unlink(missing_ok=True)

    # --- the apply protocol ------------------------------------------------------------------

    async def apply(self, config_text: str) -> None:
        """Octavia's apply protocol: check, swap atomically, seamless reload, verify, roll back.

        A config the checker refuses raises EngineRejected and leaves the running instance
        untouched. A reload that fails (e.g. an address that cannot be bound, which ``-c``
        does not see) restores the last good file, reloads it and raises ApplyFailed.
        """
        if not await self.is_running():
            await self.start(config_text)
            return
        before = await self._show_proc()
        await self._install(config_text)
        try:
            await self._reload(before)
        except ApplyFailed as failure:
            await self._roll_back(failure)
            raise

    async def _install(self, config_text: str) -> None:
        """Write haproxy.cfg.new, check it, keep the current file as last good, swap."""
        _make_run_dir(self.paths.run_dir)
        _write_file(self.paths.new_config, config_text)
        if not self._accepted_lately(config_text):
            await self._check_file(self.paths.new_config)
        if self.paths.config.exists():
            _copy_atomically(self.paths.config, self.paths.last_good)
        os.replace(self.paths.new_config, self.paths.config)
        _fsync_dir(self.paths.run_dir)

    def rewrite(self, config_text: str) -> None:
        """Install ``config_text`` as the configuration file without reloading: the running
        worker already runs it (real servers changed at runtime, dynamic.py), and the next
        reload, restart or adoption reads the same servers. The file it replaces is kept as
        last good, as a reload keeps it."""
        _make_run_dir(self.paths.run_dir)
        _write_file(self.paths.new_config, config_text)
        if self.paths.config.exists():
            _copy_atomically(self.paths.config, self.paths.last_good)
        os.replace(self.paths.new_config, self.paths.config)
        _fsync_dir(self.paths.run_dir)

    async def _reload(self, before: workers.ProcessTable) -> workers.ProcessTable:
        log_offset = _size(self.paths.log)
        old_pids = {p.pid for p in (*before.workers, *before.old_workers)}
        # management.txt 9.4.1, "reload": same as SIGUSR2 to the master; the master closes the
        # connection while it re-executes itself, so the answer is never awaited.
        with contextlib.suppress(EngineError):
            await self._master("reload", wait=1.0)
        deadline = time.monotonic() + self.reload_timeout
        while time.monotonic() < deadline:
            table = await self._try_show_proc()
            if table is not None and table.master.reloads > before.master.reloads:
                if (table.master.failed_reloads or 0) > (before.master.failed_reloads or 0):
                    raise ApplyFailed(
                        "HAProxy refused to reload: "
                        + self._log_reason(log_offset, "the master reports a failed reload")
                    )
                fresh = [w for w in table.workers if w.pid not in old_pids and w.reloads == 0]
                if fresh and await self._stats_answers(fresh[0].pid):
                    return table
            await asyncio.sleep(_POLL)
        raise ApplyFailed(
            "HAProxy did not reload: "
            + self._log_reason(log_offset, f"no new worker after {self.reload_timeout:g} s")
        )

    async def _roll_back(self, failure: ApplyFailed) -> None:
        if not self._set_aside(failure):
            return
        try:
            await self._reload(await self._show_proc())
        except EngineError as exc:
            raise ApplyFailed(
                f"{failure}; rolling back to the last good config failed too: {exc}"
            ) from exc

    def _set_aside(self, failure: ApplyFailed) -> bool:
        """Keep the failed config and its reason as -rejected; put the last good one back."""
        _copy_atomically(self.paths.config, self.paths.rejected)
        _write_file(self.paths.rejected_output, str(failure) + "\n")
        if not self.paths.last_good.exists():
            return False
        _copy_atomically(self.paths.last_good, self.paths.config)
        return True

    def _log_reason(self, offset: int, fallback: str) -> str:
        try:
            with self.paths.log.open("rb") as log:
                # A rotation (daemon/logfiles.py) may have truncated it since: read it all.
                log.seek(offset if offset <= _size(self.paths.log) else 0)
                text = log.read().decode(errors="replace")
        except OSError:
            return fallback
        return "\n".join(runtime_api.alert_lines(text.splitlines())) or fallback

    # --- the runtime API ---------------------------------------------------------------------

    async def runtime(self, command: str) -> str:
        """Send one command on the stats socket; its answer, or EngineError on an error."""
        answer = await self._exchange(self.paths.stats_socket, runtime_api.command_line([command]))
        return runtime_api.check_answer(answer)

    async def runtime_many(self, commands: Sequence[str]) -> None:
        """Send setter commands, as many per connection as fit on one CLI line, all checked."""
        batch: list[str] = []
        for command in commands:
            if batch and len(runtime_api.command_line([*batch, command])) > _MAX_LINE:
                await self._send_batch(batch)
                batch = []
            batch.append(command)
        if batch:
            await self._send_batch(batch)

    async def request(self, text: str) -> str:
        """Send ``text`` on the stats socket as it is (a command with its payload, see
        transactions.py) and return the answer unchecked: each kind has its own verdict."""
        return await self._exchange(self.paths.stats_socket, text)

    async def _send_batch(self, batch: list[str]) -> None:
        answer = await self._exchange(self.paths.stats_socket, runtime_api.command_line(batch))
        runtime_api.check_answer(answer)

    # Parsed in a worker thread: at 10,000 servers these answers are megabytes, and parsing
    # them on the event loop held every request behind it (issue 15).
    async def show_stat(self) -> list[server_stats.ServerStat]:
        return await asyncio.to_thread(
            server_stats.parse_show_stat, await self.runtime("show stat")
        )

    async def show_servers_state(self) -> list[server_states.ServerRuntimeState]:
        text = await self.runtime("show servers state")
        return await asyncio.to_thread(server_states.parse_servers_state, text)

    async def worker_pids(self) -> list[int]:
        """PIDs of the worker(s) serving the current configuration (not the old ones)."""
        return (await self._show_proc()).worker_pids

    async def _stats_answers(self, worker_pid: int) -> bool:
        """Whether the stats socket answers, and from ``worker_pid`` (not a leaving worker)."""
        try:
            info = await self.runtime("show info")
        except EngineError:
            return False
        return f"Pid: {worker_pid}" in info.splitlines()

    async def _show_proc(self) -> workers.ProcessTable:
        return workers.parse_show_proc(await self._master("show proc"))

    async def _try_show_proc(self) -> workers.ProcessTable | None:
        try:
            return await self._show_proc()
        except EngineError:
            return None  # the master is re-executing itself, or not up yet

    async def _master(self, command: str, *, wait: float = _SOCKET_TIMEOUT) -> str:
        return await self._exchange(self.paths.master_socket, command + "\n", wait=wait)

    async def _exchange(self, path: Path, line: str, *, wait: float = _SOCKET_TIMEOUT) -> str:
        """Write one line, half-close, read the answer to EOF.

        The master CLI keeps a non-interactive connection open until it reads EOF
        (checked on 2.6.12), hence the half-close; the stats socket does not mind it.
        """
        try:
            # the wait for a slot is not the exchange's: a queue of reads is not a failure
            async with self._slots[path]:
                answer = await self._exchange_now(path, line, wait)
        except (OSError, TimeoutError) as exc:
            raise EngineError(f"HAProxy socket {path}: {exc or type(exc).__name__}") from exc
        return answer.decode(errors="replace")

    async def _exchange_now(self, path: Path, line: str, wait: float) -> bytes:
        async with asyncio.timeout(wait):
            reader, writer = await _connect(path)
            try:
                writer.write(line.encode())
                await writer.drain()
                writer.write_eof()
                return await reader.read()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    async def _run(self, *argv: str) -> tuple[int, str]:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await process.communicate()
        except OSError as exc:
            raise EngineError(f"cannot run {argv[0]}: {exc}") from exc
        return process.returncode or 0, output.decode(errors="replace")


async def _connect(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open ``path``, trying again (``_CONNECT_TRIES`` in all) when HAProxy refuses or drops
    the connection before anything was sent, which a busy or reloading socket does; a
    missing socket (HAProxy not running) fails at once."""
    for attempt in range(_CONNECT_TRIES - 1):
        try:
            return await asyncio.open_unix_connection(str(path))
        except (ConnectionRefusedError, ConnectionResetError, BlockingIOError):
            await asyncio.sleep(0.05 * 2**attempt)
    return await asyncio.open_unix_connection(str(path))


# --- file and process helpers (synchronous: small files, quick syscalls) --------------------


def _make_run_dir(run_dir: Path) -> None:
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)


def _write_fd(fd: int, text: str) -> None:
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def _write_file(path: Path, text: str) -> None:
    """Write ``path`` with mode 0600 and fsync it (the config holds secrets one day)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    _write_fd(fd, text)


def _copy_atomically(source: Path, target: Path) -> None:
    staging = target.with_name(target.name + ".tmp")
    shutil.copyfile(source, staging)
    staging.chmod(0o600)
    with staging.open("rb") as file:
        os.fsync(file.fileno())
    os.replace(staging, target)
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_pid(pid_file: Path) -> int | None:
    """The master's pid: the first line of the pid file (-p writes the master's only)."""
    try:
        first = pid_file.read_text().split()[:1]
    except OSError:
        return None
    return int(first[0]) if first and first[0].isdigit() else None


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
