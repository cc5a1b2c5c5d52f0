"""HAProxy's stats socket under many reads at once (finding 7), against the real HAProxy 2.6.

The stats socket serves 10 connections at a time and drops what its backlog cannot hold:
200 ``show stat`` side by side lost 179 of them ("HAProxy socket ...: Connection lost"), which
``/status`` and ``/metrics`` answered as 500s. The shell queues its connections (a few at a
time) and tries a refused connection again; every read is answered. No root needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bascule.engines.haproxy import server_stats
from bascule.engines.haproxy.shell import HaproxyPaths, HaproxyShell

pytestmark = pytest.mark.integration

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
if not Path(HAPROXY).exists():
    pytest.skip("needs the haproxy binary (Debian package haproxy)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
async def shell() -> AsyncIterator[HaproxyShell]:
    run_dir = Path(tempfile.mkdtemp(prefix="bsc-rt-", dir="/tmp"))
    shell = HaproxyShell(HaproxyPaths.under(run_dir), binary=HAPROXY)
    servers = "".join(f"    server s{i} 127.0.0.1:{free_port()}\n" for i in range(20))
    await shell.start(
        "global\n"
        f"    stats socket {shell.paths.stats_socket} mode 600 level admin\n"
        "defaults\n"
        "    mode http\n"
        "    timeout connect 2s\n"
        "    timeout client 10s\n"
        "    timeout server 10s\n"
        "listen web\n"
        f"    bind 127.0.0.1:{free_port()}\n"
        f"{servers}"
    )
    try:
        yield shell
    finally:
        with contextlib.suppress(Exception):
            await shell.stop(grace=1.0)
        shutil.rmtree(run_dir, ignore_errors=True)


async def test_two_hundred_reads_at_once_are_all_answered(shell: HaproxyShell) -> None:
    stats, states = await asyncio.gather(
        asyncio.gather(*(shell.show_stat() for _ in range(100))),
        asyncio.gather(*(shell.show_servers_state() for _ in range(100))),
    )
    assert all(
        len([s for s in stat if s.kind is server_stats.StatKind.SERVER]) == 20 for stat in stats
    )
    assert all(len(state) == 20 for state in states)
