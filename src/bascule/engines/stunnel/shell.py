"""The stunnel shell: the STARTTLS front's process, files and signals.

Where it sits in the flow of a change: the stunnel engine (engine.py) renders its share of the
document (view.py, render.py) and calls this module to check it, install it, start stunnel or
make it re-read its configuration (SIGHUP), and stop it. Everything here is I/O.

The process model (stunnel 5.68, "SIGNALS"): one ``stunnel4 <file>`` in the foreground of its
own session (``foreground = yes``; its log, stderr, goes to ``stunnel.log``), started with
``posix_spawn`` so it outlives the daemon, which adopts it at its next start from the pid
file. SIGHUP re-reads the file: sessions in flight continue, new ones get the new
configuration and certificates; a file stunnel refuses leaves the running configuration in
place ("Failed to reload the configuration file"), which the shell reads back from the log and
reports, restoring the last good file. SIGTERM stops it.

stunnel has no checking mode: ``check`` runs the candidate in a throwaway process listening on
a free loopback port (the view's check variant) until stunnel says "Configuration successful"
or fails, then stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bascule.errors import ApplyFailed, EngineError, EngineRejected
from bascule.net.processes import alive, command_line, send_signal, spawn_session, wait_dead

ENGINE = "stunnel"
_POLL = 0.05
_SUCCESS = "Configuration successful"
_FAILED = ("Configuration failed", "Failed to reload the configuration file")
# stunnel's errors: "LOG3[ui]: ..." in the log, "[!] ..." before its logging starts
_ERROR = re.compile(r"(?:LOG[0-3]\[[^\]]*\]: |\[!\] )(?P<text>.*)$")
# said at every start of a service that asks for no client certificate: not a problem here
_HARMLESS = ("No trusted certificates found",)


@dataclass(frozen=True, kw_only=True)
class StunnelPaths:
    run_dir: Path
    config: Path
    last_good: Path
    pid_file: Path
    log: Path

    @classmethod
    def under(cls, run_dir: Path) -> StunnelPaths:
        return cls(
            run_dir=run_dir,
            config=run_dir / "stunnel.conf",
            last_good=run_dir / "stunnel.conf.last-good",
            pid_file=run_dir / "stunnel.pid",
            log=run_dir / "stunnel.log",
        )


class StunnelShell:
    """Drives one stunnel process living in ``paths.run_dir``."""

    def __init__(
        self, paths: StunnelPaths, *, binary: str = "stunnel4", timeout: float = 10.0
    ) -> None:
        self.paths = paths
        self.binary = binary
        self.timeout = timeout

    # --- the checker -------------------------------------------------------------------------

    async def check(self, check_text: str) -> None:
        """Run the check variant of a configuration in a throwaway stunnel; EngineRejected
        with stunnel's errors if it refuses it."""
        _make_run_dir(self.paths.run_dir)
        fd, name = tempfile.mkstemp(dir=self.paths.run_dir, prefix="stunnel.conf.check-")
        candidate = Path(name)
        try:
            with os.fdopen(fd, "w") as file:
                file.write(check_text)
            try:
                process = await asyncio.create_subprocess_exec(
                    self.binary,
                    str(candidate),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                )
            except OSError as exc:
                raise EngineError(f"cannot run {self.binary}: {exc}") from exc
            output = await self._until_verdict(process)
        finally:
            _remove(candidate)
        if _SUCCESS not in output:
            raise EngineRejected(ENGINE, "\n".join(_errors(output)) or output.strip()[-2000:])

    async def _until_verdict(self, process: asyncio.subprocess.Process) -> str:
        assert process.stdout is not None
        lines: list[str] = []
        try:
            async with asyncio.timeout(self.timeout):
                while raw := await process.stdout.readline():
                    line = raw.decode(errors="replace").rstrip("\n")
                    lines.append(line)
                    if _SUCCESS in line or any(f in line for f in _FAILED):
                        break
        except TimeoutError:
            lines.append(f"stunnel gave no verdict within {self.timeout:g} s")
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await process.wait()
        return "\n".join(lines)

    # --- the process -------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of the stunnel serving our configuration, if it runs."""
        try:
            pid = int(self.paths.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if not alive(pid) or str(self.paths.config) not in command_line(pid):
            return None
        return pid

    async def is_running(self) -> bool:
        return self.pid() is not None

    async def adopt(self) -> bool:
        """Keep a stunnel left by a previous daemon (True), or clear its leftovers (False)."""
        if self.pid() is not None:
            return True
        self.paths.pid_file.unlink(missing_ok=True)
        return False

    async def apply(self, text: str) -> None:
        """Install ``text``: start stunnel, or make the running one re-read it (SIGHUP). A
        file stunnel refuses is set aside and the last good one put back (ApplyFailed)."""
        _make_run_dir(self.paths.run_dir)
        if self.paths.config.exists():
            shutil.copyfile(self.paths.config, self.paths.last_good)
        _write_private(self.paths.config, text)
        try:
            if self.pid() is None:
                await self._start()
            else:
                await self.reload()
        except ApplyFailed:
            if self.paths.last_good.exists():
                shutil.copyfile(self.paths.last_good, self.paths.config)
            raise

    async def reload(self) -> None:
        """SIGHUP: re-read the configuration and the certificates; verified in the log."""
        pid = self.pid()
        if pid is None:
            raise ApplyFailed("stunnel is not running")
        offset = _size(self.paths.log)
        send_signal(pid, signal.SIGHUP)
        text = await self._log_verdict(offset, pid)
        if _SUCCESS not in text:
            raise ApplyFailed(
                "stunnel refused the new configuration (it keeps the previous one): "
                + ("; ".join(_errors(text)) or "no reason in its log")
            )

    async def _start(self) -> None:
        offset = _size(self.paths.log)
        argv = [self.binary, str(self.paths.config)]
        try:
            pid = spawn_session(self.binary, argv, self.paths.log)
        except OSError as exc:
            raise ApplyFailed(f"cannot start {self.binary}: {exc}") from exc
        text = await self._log_verdict(offset, pid)
        if _SUCCESS not in text:
            send_signal(pid, signal.SIGKILL)
            await wait_dead(pid, 2.0)
            raise ApplyFailed(
                "stunnel did not start: " + ("; ".join(_errors(text)) or "no reason in its log")
            )
        # its pid file is written once it has bound its listeners
        deadline = time.monotonic() + self.timeout
        while self.pid() != pid:
            if not alive(pid):
                raise ApplyFailed(
                    "stunnel exited at start: "
                    + ("; ".join(_errors(self._log_since(offset))) or "see stunnel.log")
                )
            if time.monotonic() > deadline:
                raise ApplyFailed("stunnel did not write its pid file")
            await asyncio.sleep(_POLL)

    async def _log_verdict(self, offset: int, pid: int) -> str:
        """The log from ``offset`` until stunnel says whether it took its configuration."""
        deadline = time.monotonic() + self.timeout
        while True:
            text = self._log_since(offset)
            if _SUCCESS in text or any(f in text for f in _FAILED):
                return text
            if not alive(pid) or time.monotonic() > deadline:
                return text
            await asyncio.sleep(_POLL)

    def _log_since(self, offset: int) -> str:
        try:
            with self.paths.log.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    async def stop(self, *, grace: float = 10.0) -> None:
        """SIGTERM (stunnel ends its sessions), SIGKILL if it lingers; clean up."""
        pid = self.pid()
        if pid is not None:
            send_signal(pid, signal.SIGTERM)
            if not await wait_dead(pid, min(grace, 5.0)):
                send_signal(pid, signal.SIGKILL)
                await wait_dead(pid, 2.0)
        self.paths.pid_file.unlink(missing_ok=True)

    async def version(self) -> str:
        try:
            process = await asyncio.create_subprocess_exec(
                self.binary,
                "-version",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await process.communicate()
        except OSError as exc:
            raise EngineError(f"cannot run {self.binary}: {exc}") from exc
        match = re.search(r"stunnel (\S+)", output.decode(errors="replace"))
        return match[1] if match else "unknown"


def _errors(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        match = _ERROR.search(line)
        if match and not any(h in match["text"] for h in _HARMLESS):
            found.append(match["text"].strip())
    return found


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _make_run_dir(run_dir: Path) -> None:
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
