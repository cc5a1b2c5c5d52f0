"""Processes started in a session of their own, with descriptors they inherit (net/processes.py),
and the HAProxy shell's check that an adopted master still holds them."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from bascule.engines.haproxy.shell import HaproxyPaths, HaproxyShell
from bascule.net.processes import send_signal, spawn_session


def _wait_exec(pid: int, binary: str) -> None:
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}/comm").read_text().strip() != binary:
        assert time.monotonic() < deadline, f"{pid} did not exec {binary}"
        time.sleep(0.01)


def test_a_child_holds_the_inherited_descriptor_and_the_shell_sees_it(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()  # close-on-exec, as the daemon's are
    other_read, other_write = os.pipe()
    pid = spawn_session("sleep", ["sleep", "30"], tmp_path / "child.log", inherit={3: write_fd})
    try:
        _wait_exec(pid, "sleep")
        assert os.getsid(pid) == pid  # a session of its own
        held = Path(f"/proc/{pid}/fd/3").stat()
        assert (held.st_dev, held.st_ino) == (os.fstat(write_fd).st_dev, os.fstat(write_fd).st_ino)
        assert not Path(f"/proc/{pid}/fd/{write_fd}").exists() or write_fd == 3
        paths = HaproxyPaths.under(tmp_path / "haproxy")
        paths.run_dir.mkdir()
        paths.pid_file.write_text(f"{pid}\n")
        assert HaproxyShell(paths, inherit={3: write_fd}).missing_inherited() == []
        assert HaproxyShell(paths, inherit={3: other_write}).missing_inherited() == [3]
        assert HaproxyShell(paths, inherit={9: write_fd}).missing_inherited() == [9]
    finally:
        send_signal(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        for fd in (read_fd, write_fd, other_read, other_write):
            os.close(fd)


def test_the_standard_descriptors_are_not_inheritable_numbers(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="standard"):
        spawn_session("true", ["true"], tmp_path / "child.log", inherit={1: 0})
