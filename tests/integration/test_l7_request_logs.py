"""Request logs end to end (issue 12): HAProxy's lines on disk, read with ``bascule logs``, and
sent to a remote syslog server (a UDP or TCP receiver in a real server's namespace; TCP goes
through HAProxy's ring, one line per message).

The lines match the traffic sent: one per request, with the client's address, the service,
the real server, the status and the request line; a service with ``request_log: false`` has
none.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from daemon import BasculeDaemon
from netns import Topology, wait_ready
from waiting import wait_until

pytestmark = pytest.mark.integration

CHECK = {"type": "http", "path": "/health", "interval": 1, "rise": 1, "fall": 1}
RECEIVERS = {
    "udp": """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
with open(sys.argv[3], "ab", buffering=0) as out:
    while True:
        out.write(sock.recv(65536).rstrip(b"\\n") + b"\\n")
""",
    "tcp": """
import socket, sys
server = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
with open(sys.argv[3], "ab", buffering=0) as out:
    while True:
        connection, _ = server.accept()
        with connection, connection.makefile("rb") as lines:
            for line in lines:
                out.write(line.rstrip(b"\\n") + b"\\n")
""",
}


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_request_lines_on_disk_in_bascule_logs_and_at_the_syslog_server(
    make_topology: Callable[..., Topology], protocol: str
) -> None:
    topology = make_topology(real_servers=2)
    rs1, rs2 = topology.real_servers
    assert topology.workdir is not None
    received = Path(topology.workdir) / "syslog.txt"
    topology.start_real_server(rs1)
    receiver = topology.popen(
        rs2,
        [sys.executable, "-c", RECEIVERS[protocol], rs2.address, "5514", str(received)],
        stdout=subprocess.PIPE,
        text=True,
    )
    wait_ready(receiver)
    daemon = BasculeDaemon(topology).start()
    vip = topology.vip()
    servers = [{"address": rs1.address, "port": 80}]
    try:
        daemon.apply(
            {
                "logging": {
                    "syslog": {"address": rs2.address, "port": 5514, "protocol": protocol}
                },
                "virtual_services": [
                    {"name": "web", "address": vip, "port": 80, "check": CHECK,
                     "real_servers": servers},
                    {"name": "quiet", "address": vip, "port": 8080, "check": CHECK,
                     "request_log": False, "real_servers": servers},
                ],
            }
        )  # fmt: skip
        wait_until(
            "both services up",
            lambda: all(s["up"] == 1 for s in daemon.status()["virtual_services"]),
            timeout=20,
        )
        for number in range(5):
            for port in (80, 8080):
                done = topology.run(
                    "client",
                    ["curl", "-sS", "--max-time", "5", f"http://{vip}:{port}/echo?n={number}"],
                    check=False,
                )
                assert done.returncode == 0, done.stderr

        def web_lines() -> list[str]:
            answer = daemon.cli_json("logs", "web")
            return [line["line"] for line in answer["lines"]]

        lines = wait_until("five lines of web", lambda: len(web_lines()) == 5 and web_lines())
        for number, line in enumerate(lines):
            assert line.startswith(f"{topology.client.address}:")
            assert f" web web/{rs1.address}:80 " in line
            assert " 200 " in line and f'"GET /echo?n={number} HTTP/1.1"' in line
        assert daemon.cli_json("logs", "quiet")["lines"] == []  # request_log: false
        text = daemon.cli("logs", "web", "--since", "10m").stdout
        assert text.count('"GET /echo?n=') == 5
        wait_until(
            "the syslog server got the lines",
            lambda: received.exists() and received.read_text().count('"GET /echo?n=') == 5,
        )
        assert f"{topology.client.address}:" in received.read_text()
    finally:
        daemon.terminate()


def test_request_lines_survive_a_reload_and_a_new_daemon_adopting_haproxy(
    make_topology: Callable[..., Topology],
) -> None:
    """HAProxy holds the daemon's pipe (``log fd@3``) from its start: a reload keeps it, and a
    daemon started after a kill -9 reads the same FIFO, so lines resume without a restart."""
    topology = make_topology(real_servers=2)
    rs1, rs2 = topology.real_servers
    topology.start_real_server(rs1)
    topology.start_real_server(rs2)
    daemon = BasculeDaemon(topology).start()
    vip = topology.vip()
    web = {"name": "web", "address": vip, "port": 80, "check": CHECK,
           "real_servers": [{"address": rs1.address, "port": 80}]}  # fmt: skip

    def get(number: int) -> None:
        done = topology.run(
            "client",
            ["curl", "-sS", "--max-time", "5", f"http://{vip}/step?n={number}"],
            check=False,
        )
        assert done.returncode == 0, done.stderr

    def logged(owner: BasculeDaemon, number: int) -> bool:
        lines = owner.cli_json("logs", "web", "--limit", "1000")["lines"]
        return any(f'"GET /step?n={number} HTTP/1.1"' in line["line"] for line in lines)

    successor = None
    try:
        daemon.apply({"virtual_services": [web]})
        wait_until("web up", lambda: daemon.status()["virtual_services"][0]["up"] == 1)
        get(1)
        wait_until("line 1", lambda: logged(daemon, 1))
        workers = daemon.worker_pids()
        # a new service: HAProxy reloads, its new worker writes to the same pipe
        other = {**web, "name": "other", "port": 8080,
                 "real_servers": [{"address": rs2.address, "port": 80}]}  # fmt: skip
        daemon.apply({"virtual_services": [web, other]})
        wait_until("a new worker", lambda: daemon.worker_pids() != workers)
        get(2)
        wait_until("line 2", lambda: logged(daemon, 2))
        daemon.kill()
        get(3)  # HAProxy serves alone; nobody reads its line
        successor = BasculeDaemon(topology, data_dir=daemon.data_dir).start()
        assert "does not hold the request log pipe" not in successor.log()
        get(4)
        wait_until("line 4, after the new daemon adopted HAProxy", lambda: logged(successor, 4))
        assert logged(successor, 1) and logged(successor, 2)
    finally:
        if successor is not None:
            successor.terminate()
        daemon.stop_haproxy()
