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
            assert ' 200 ' in line and f'"GET /echo?n={number} HTTP/1.1"' in line
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
