"""Small HTTP origins for integration tests: a Python script run in a real server's namespace
that writes every path it serves to a log file, so a test counts what reached the real server
(a cached or refused request never does)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from netns import Topology


def start_logging_origin(topo: Topology, script: str) -> Callable[[str], int]:
    """Run ``script`` (``argv``: address, log path; prints ``ready``) on the first real server,
    port 80; return how many times a path reached it."""
    rs1 = topo.real_servers[0]
    assert topo.workdir is not None
    log = Path(topo.workdir) / "origin.log"
    log.touch()
    origin = topo.popen(
        rs1, [sys.executable, "-c", script, rs1.address, str(log)], stdout=-1, text=True
    )
    assert origin.stdout is not None and origin.stdout.readline().strip() == "ready"

    def reached(path: str) -> int:
        return log.read_text().splitlines().count(path)

    return reached
