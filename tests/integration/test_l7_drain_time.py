"""Drain time end to end (issue 12): a drained server's connections are closed after it.

Two TCP services share one real server (tcp-echo): ``timed`` with ``drain_time``, ``open``
without. A client holds one connection on each, the server is drained in both (``bascule rs
drain``, a runtime change): the ``timed`` connection keeps echoing until the drain time runs
out and is closed then; the ``open`` one still echoes after that (drain alone closes nothing).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from daemon import BasculeDaemon
from netns import Topology
from waiting import holds, wait_until

pytestmark = pytest.mark.integration

DRAIN = 3
TIMED, OPEN = 7000, 7001
# Connects, checks the echo (tcp-echo answers a line with "<name> <peer> <line>"), then
# answers each line of stdin with whether the connection still echoes ("echo") or was
# closed ("closed", and exits).
HOLDER = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
lines = s.makefile("rb")
s.sendall(b"x\\n")
assert lines.readline().endswith(b" x\\n")
print("ready", flush=True)
for _ in sys.stdin:
    try:
        s.sendall(b"y\\n")
        answer = lines.readline()
    except OSError:
        answer = b""
    print("echo" if answer.endswith(b" y\\n") else "closed", flush=True)
    if not answer:
        break
"""


def service(name: str, vip: str, port: int, server: str, **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "address": vip,
        "port": port,
        "type": "generic",
        "check": {"type": "tcp", "interval": 1},
        "real_servers": [{"address": server, "port": 7000}],
        **extra,
    }


class Holder:
    """A client connection held open in the client's namespace."""

    def __init__(self, topology: Topology, vip: str, port: int) -> None:
        self.proc: subprocess.Popen[str] = topology.popen(
            "client",
            [sys.executable, "-c", HOLDER, vip, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.readline() == "ready"

    def readline(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def ask(self) -> str:
        """``echo`` while the connection is open, ``closed`` once it is not."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("?\n")
        self.proc.stdin.flush()
        return self.readline()


def test_drained_connections_are_closed_after_drain_time(
    make_topology: Callable[..., Topology],
) -> None:
    topology = make_topology(real_servers=1)
    (rs1,) = topology.real_servers
    topology.start_real_server(rs1, "--mode", "tcp-echo", port=7000)
    daemon = BasculeDaemon(topology).start()
    vip = topology.vip()
    key = f"{rs1.address}:7000"
    try:
        daemon.apply(
            {
                "virtual_services": [
                    service("timed", vip, TIMED, rs1.address, drain_time=DRAIN),
                    service("open", vip, OPEN, rs1.address),
                ]
            }
        )
        daemon.wait_status("timed", key, "up", timeout=20)
        daemon.wait_status("open", key, "up", timeout=20)
        timed, kept = Holder(topology, vip, TIMED), Holder(topology, vip, OPEN)

        daemon.cli("rs", "drain", "open", key)
        before = time.monotonic()
        daemon.cli("rs", "drain", "timed", key)
        after = time.monotonic()
        assert daemon.server_status("timed", key) == "drain"
        # until the drain time runs out the drained server keeps its connection
        holds(
            "the drained connection echoes",
            lambda: timed.ask() == "echo",
            DRAIN - (time.monotonic() - before) - 0.5,
        )
        wait_until("the drained connection is closed", lambda: timed.ask() == "closed", 10)
        closed = time.monotonic()
        assert closed - before >= DRAIN - 0.2 and closed - after <= DRAIN + 3
        # a service without drain_time leaves its drained server's connections alone
        holds("the connection without drain_time echoes", lambda: kept.ask() == "echo", 1.5)
        wait_until("the daemon logs the cut", lambda: "drain time over" in daemon.log(), 5)
    finally:
        daemon.terminate()
