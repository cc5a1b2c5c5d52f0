"""Connection limits with real traffic: the per-service `max_connections` and
`connections_per_second` on an l7 service (HAProxy: over the limit a connection waits, it is
not answered) and on an l4 NAT service (the kernel: over the limit a new connection is
dropped), and a client's concurrent connections on an l4 NAT service (`ct count`).

Connections are held open by a small client (``HOLD``) that sends a keep-alive request on
each, then waits: while they are held an over-limit connection gets no answer, the held ones
keep working, and once they close a new connection is served again.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from daemon import BasculeDaemon
from netns import Topology
from waiting import wait_until

pytestmark = pytest.mark.integration

# Opens N keep-alive HTTP connections from a source address, one request on each, prints the
# statuses; then one request more on each for every "again" line on stdin; ends on EOF.
HOLD = r"""
import socket, sys
vip, source, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

def ask(sock):
    sock.sendall(f"GET / HTTP/1.1\r\nHost: {vip}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            return "closed"
        head += chunk
    headers, _, body = head.partition(b"\r\n\r\n")
    length = 0
    for line in headers.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += sock.recv(4096)
    return headers.split(b" ")[1].decode()

held = []
for _ in range(count):
    s = socket.create_connection((vip, 80), timeout=5, source_address=(source, 0))
    held.append(s)
    print(ask(s), end=" ", flush=True)
print(flush=True)
for line in sys.stdin:
    print(" ".join(ask(s) for s in held), flush=True)
"""


class Held:
    """``count`` connections from ``source``, held open until ``close``."""

    def __init__(self, topo: Topology, source: str, count: int) -> None:
        self.proc = topo.popen(
            topo.client,
            [sys.executable, "-c", HOLD, topo.vip(), source, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.count = count
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().split()
        assert first == ["200"] * count, first

    def again(self) -> list[str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("again\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().split()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def probe(topo: Topology, source: str, timeout: float = 1.5) -> dict[str, Any]:
    """One request on a new connection from ``source``."""
    url = f"http://{topo.vip()}/"
    return topo.run_client(
        "--url", url, "--source", source, "--requests", "1", "--timeout", str(timeout)
    )


def served(topo: Topology, source: str) -> bool:
    return probe(topo, source, timeout=2)["ok"] == 1


def service(topo: Topology, mode: str, limits: dict[str, Any]) -> dict[str, Any]:
    rs = topo.real_servers[0]
    fields: dict[str, Any] = {"mode": "l4", "forwarding": "nat"} if mode == "l4" else {}
    return {
        "virtual_services": [
            {
                "name": "site",
                "address": topo.vip(),
                "port": 80,
                **fields,
                "check": {"type": "tcp", "interval": 1, "rise": 1},
                "real_servers": [{"address": rs.address, "port": 80}],
                "limits": limits,
            }
        ]
    }


def start(topo: Topology, mode: str, limits: dict[str, Any]) -> BasculeDaemon:
    rs = topo.real_servers[0]
    if mode == "l4":
        topo.route_back_through_lb()
    topo.start_real_server(rs)
    daemon = BasculeDaemon(topo).start(timeout=60)
    try:
        daemon.apply(service(topo, mode, limits))
        daemon.wait_status("site", f"{rs.address}:80", "up", timeout=20)
    except BaseException:
        daemon.stop(data_plane=True)
        raise
    return daemon


@pytest.mark.parametrize("mode", ["l7", "l4"])
def test_max_connections_holds_the_new_one_out_until_one_ends(
    make_topology: Callable[..., Topology], mode: str
) -> None:
    topo = make_topology(real_servers=1, client_extra_addresses=2)
    first, second = topo.client.extra_addresses
    daemon = start(topo, mode, {"max_connections": 2})
    try:
        held = Held(topo, first, 2)
        # a third connection, from another client: not answered (l7: it waits in the
        # accept queue; l4: dropped), while the two held ones keep working
        refused = probe(topo, second)
        assert refused["ok"] == 0 and refused["failures"] == 1, refused
        assert held.again() == ["200", "200"]
        held.close()
        wait_until("a new connection is served", lambda: served(topo, second), timeout=10)
    finally:
        daemon.stop(data_plane=True)


def test_l4_nat_per_client_connections_hold_one_client_only(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=1, client_extra_addresses=2)
    busy, calm = topo.client.extra_addresses
    daemon = start(topo, "l4", {"per_client": {"connections": 2}})
    try:
        held = Held(topo, busy, 2)
        # the busy client's third connection is dropped; another client is served
        refused = probe(topo, busy)
        assert refused["ok"] == 0 and refused["failures"] == 1, refused
        assert probe(topo, calm, timeout=5)["ok"] == 1
        # limits show names the busy client, its two open connections, and that it is held
        shown = daemon.cli_json("limits", "show", "site")
        clients = {c["client"]: c for c in shown["clients"]}
        assert clients[busy]["connections"] == 2 and clients[busy]["limited"], shown
        assert not clients.get(calm, {}).get("limited"), shown
        assert held.again() == ["200", "200"]
        held.close()
        wait_until("the busy client is served again", lambda: served(topo, busy), timeout=10)
    finally:
        daemon.stop(data_plane=True)


def test_l7_connections_per_second_make_new_connections_wait(
    make_topology: Callable[..., Topology],
) -> None:
    """HAProxy's ``rate-limit sessions``: connections over the rate wait to be accepted, so
    30 connections at 5 a second take seconds, and every one is served; a held connection
    keeps working meanwhile."""
    topo = make_topology(real_servers=1, client_extra_addresses=1)
    (source,) = topo.client.extra_addresses
    daemon = start(topo, "l7", {"connections_per_second": 5})
    try:
        held = Held(topo, source, 1)
        started = time.monotonic()
        flood = topo.run_client(
            "--url", f"http://{topo.vip()}/", "--requests", "30", "--timeout", "20"
        )
        elapsed = time.monotonic() - started
        assert flood["ok"] == 30 and flood["failures"] == 0, flood
        # 30 at 5 a second: at least 4 seconds whatever the machine (no upper bound asserted)
        assert elapsed >= 4, elapsed
        assert held.again() == ["200"]
        held.close()
    finally:
        daemon.stop(data_plane=True)


def test_l4_nat_connections_per_second_drop_over_the_rate_and_release(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=1, client_extra_addresses=1)
    (source,) = topo.client.extra_addresses
    daemon = start(topo, "l4", {"connections_per_second": 5})
    try:
        held = Held(topo, source, 1)
        flood = topo.run_client(
            "--url",
            f"http://{topo.vip()}/",
            "--duration",
            "3",
            "--concurrency",
            "8",
            "--timeout",
            "0.5",
        )
        assert flood["failures"] > 0 and flood["ok"] > 0, flood
        # what got through is about the rate (plus the meter's burst), never the flood
        assert flood["ok"] <= (5 + 5) * flood["elapsed"] * 1.5 + 10, flood
        # the established connection was never a new one: it keeps working
        assert held.again() == ["200"]
        held.close()
        wait_until(
            "new connections are served again",
            lambda: served(topo, source),
            timeout=15,
            poll=0.5,  # slower than the rate: a dropped attempt counts in it too
        )
    finally:
        daemon.stop(data_plane=True)
