"""PROXY protocol end to end (issue 12): sent to real servers that parse it, and accepted from
a load balancer in front.

- ``proxy_protocol: v1`` and ``v2``: tests/tools/proxy_server.py (which refuses a connection
  without a header) answers with the version and the source address it read: the client's;
  its health checks pass because the checks send the header too;
- ``accept_proxy: true``: a second HAProxy in the client namespace, on another address,
  forwards with ``send-proxy``; the real server sees the original client in X-Forwarded-For,
  and a client that connects directly, without a header, is refused.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from daemon import BasculeDaemon
from netns import TOOLS, Topology, wait_ready
from waiting import wait_until

pytestmark = pytest.mark.integration

PROXY_SERVER = TOOLS / "proxy_server.py"
CHECK = {"type": "http", "path": "/health", "interval": 1, "rise": 1, "fall": 1}
FRONT_PORT = 9000


def curl(topology: Topology, url: str) -> subprocess.CompletedProcess[str]:
    return topology.run("client", ["curl", "-sS", "--max-time", "5", url], check=False)


def front_haproxy(topology: Topology, vip: str) -> subprocess.Popen[str]:
    """Another load balancer in front: listens on the client's second address and forwards
    to the VIP with a PROXY v1 header, connecting from that address."""
    assert topology.workdir is not None
    front = topology.client.extra_addresses[0]
    config = Path(topology.workdir) / "front.cfg"
    config.write_text(
        "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n"
        "    timeout server 30s\n\n"
        f"listen front\n    bind {front}:{FRONT_PORT}\n"
        f"    server bascule {vip}:80 send-proxy source {front}\n"
    )
    return topology.popen(
        "client", ["haproxy", "-db", "-f", str(config)], stdout=subprocess.PIPE, text=True
    )


def test_proxy_protocol_to_real_servers_and_from_a_balancer_in_front(
    make_topology: Callable[..., Topology],
) -> None:
    topology = make_topology(real_servers=1, client_extra_addresses=1)
    rs1 = topology.real_servers[0]
    vip = topology.vip()
    topology.start_real_servers()
    parser = topology.popen(
        rs1,
        [sys.executable, str(PROXY_SERVER), "--bind", rs1.address, "--port", "8100"],
        stdout=subprocess.PIPE,
        text=True,
    )
    wait_ready(parser)
    daemon = BasculeDaemon(topology).start()
    try:
        proxied = [{"address": rs1.address, "port": 8100}]
        daemon.apply(
            {
                "virtual_services": [
                    *(
                        {
                            "name": f"pp-{version}",
                            "address": vip,
                            "port": port,
                            "check": CHECK,
                            "proxy_protocol": version,
                            "real_servers": proxied,
                        }
                        for version, port in (("v1", 8001), ("v2", 8002))
                    ),
                    {
                        "name": "behind",
                        "address": vip,
                        "port": 80,
                        "accept_proxy": True,
                        "check": CHECK,
                        "real_servers": [{"address": rs1.address, "port": 80}],
                    },
                ]
            }
        )

        def all_up() -> bool:
            return all(s["up"] == 1 for s in daemon.status()["virtual_services"])

        wait_until("every service up (the checks send the PROXY header)", all_up, timeout=20)
        for version, port in (("v1", 8001), ("v2", 8002)):
            answer = curl(topology, f"http://{vip}:{port}/")
            assert answer.stdout == f"{version} {topology.client.address}\n", answer.stderr

        front = front_haproxy(topology, vip)
        try:
            topology.wait_tcp("client", topology.client.extra_addresses[0], FRONT_PORT)
            url = f"http://{topology.client.extra_addresses[0]}:{FRONT_PORT}/echo"
            echo = curl(topology, url)
            assert echo.returncode == 0, echo.stderr
            assert f'"x_forwarded_for": "{topology.client.address}"' in echo.stdout
        finally:
            topology.stop(front)
        direct = curl(topology, f"http://{vip}/echo")  # no PROXY header: refused
        assert direct.returncode != 0 and "x_forwarded_for" not in direct.stdout
    finally:
        daemon.terminate()
