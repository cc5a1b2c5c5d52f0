"""``bascule agent``: the load it computes, the override file, and its systemd unit."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bascule.cli.agent import combined_load, cpu_times, memory_percent, override_load

UNIT = Path(__file__).parents[3] / "docs" / "bascule-agent.service"
BASCULE = str(Path(sys.executable).with_name("bascule"))


def test_cpu_times_count_idle_and_iowait_as_idle() -> None:
    busy, total = cpu_times("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n")
    assert (busy, total) == (150, 1000)


def test_memory_percent_uses_memavailable() -> None:
    assert memory_percent("MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 250 kB\n") == 75


def test_the_load_is_the_scarcer_resource_bounded() -> None:
    assert combined_load(30.4, 12) == 30
    assert combined_load(5, 120) == 100


def test_the_load_file_overrides_when_it_holds_0_to_102(tmp_path: Path) -> None:
    path = tmp_path / "load"
    assert override_load(path) is None
    path.write_text("102\n")
    assert override_load(path) == "102"
    path.write_text("250\n")
    assert override_load(path) is None
    assert override_load(None) is None


def test_the_agent_serves_the_load_file_on_its_url(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "load").write_text("42\n")
    argv = [BASCULE, "agent", "--bind", "127.0.0.1", "--port", str(port)]
    argv += ["--load-file", str(tmp_path / "load")]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/load", timeout=2) as r:
                    body = r.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert body == "42\n"
        (tmp_path / "load").unlink()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/load", timeout=2) as r:
            assert 0 <= int(r.read().decode().splitlines()[0]) <= 100
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_systemd_unit_parses() -> None:
    text = UNIT.read_text()
    sections = [line for line in text.splitlines() if line.startswith("[")]
    assert sections == ["[Unit]", "[Service]", "[Install]"]
    assert "ExecStart=/usr/local/bin/bascule agent " in text
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed; the section check above ran")
    # verify resolves ExecStart's binary: point it at one that exists here.
    unit = Path(UNIT.name)
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    problems = [
        line
        for line in result.stderr.splitlines()
        if str(unit) in line and "/usr/local/bin/bascule" not in line
    ]
    assert not problems, result.stderr
