"""The integration-test infrastructure itself: namespaces, real servers, the traffic client.

No load balancer is involved: traffic goes straight over the bridge, so a failure here is a
broken harness, never a broken engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from netns import (
    REALSERVER,
    Topology,
    TopologyError,
    cleanup_stale,
    list_netns,
    netns_pids,
    require_root,
)
from waiting import answered, wait_until

pytestmark = pytest.mark.integration

# Talks one line protocol exchange from inside a namespace: prints what the server said.
BANNER_PROBE = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
f = s.makefile("rb")
print(f.readline().decode().strip())
s.sendall(sys.argv[3].encode() + b"\\r\\n")
print(f.readline().decode().strip())
"""

BINARY_PROBE = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(bytes.fromhex(sys.argv[3]))
print(s.recv(100).hex())
"""


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); it no longer runs.
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"


def test_subnet_outside_the_benchmarking_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"198\.18\.0\.0/15"):
        Topology(subnet="10.0.0.0/24")


def test_addresses_and_names(topology: Topology) -> None:
    assert topology.lb.address == "198.18.0.2"
    assert topology.client.address == "198.18.0.10"
    assert [h.address for h in topology.real_servers] == [
        "198.18.0.11",
        "198.18.0.12",
        "198.18.0.13",
    ]
    assert topology.vip() == "198.18.0.100"
    names = [host.netns for host in topology.hosts] + [topology.bridge_netns]
    assert all(name.startswith("bsc") and len(name) <= 15 for name in names)
    assert set(names) <= set(list_netns())
    addr = json.loads(topology.run("lb", ["ip", "-j", "-4", "addr", "show", "dev", "eth0"]).stdout)
    assert addr[0]["addr_info"][0]["local"] == "198.18.0.2"
    lo = json.loads(topology.run("rs2", ["ip", "-j", "link", "show", "dev", "lo"]).stdout)
    assert "UP" in lo[0]["flags"]


def test_client_reaches_each_real_server(topology: Topology) -> None:
    topology.start_real_servers()
    for server in topology.real_servers:
        result = topology.run_client(
            "--url", f"http://{server.address}/", "--requests", "30", "--concurrency", "3"
        )
        assert result["failures"] == 0, result["errors"]
        assert result["counts"] == {server.name: 30}
        assert result["seen_clients"] == {topology.client.address: 30}
        assert result["statuses"] == {"200": 30}


def test_lb_reaches_real_servers_with_keepalive(topology: Topology) -> None:
    topology.start_real_servers()
    for server in topology.real_servers:
        result = topology.run_client(
            "--url",
            f"http://{server.address}/",
            "--requests",
            "200",
            "--concurrency",
            "4",
            "--keepalive",
            host="lb",
        )
        assert result["failures"] == 0, result["errors"]
        assert result["counts"] == {server.name: 200}
        assert result["seen_clients"] == {topology.lb.address: 200}
        assert result["stale_retries"] == 0


def test_extra_client_addresses_are_sources(make_topology: Callable[..., Topology]) -> None:
    topology = make_topology(real_servers=1, client_extra_addresses=3)
    assert topology.client.extra_addresses == ("198.18.0.20", "198.18.0.21", "198.18.0.22")
    topology.start_real_servers()
    sources = [arg for address in topology.client.extra_addresses for arg in ("--source", address)]
    result = topology.run_client("--url", "http://198.18.0.11/", "--requests", "30", *sources)
    assert result["failures"] == 0, result["errors"]
    assert result["seen_clients"] == dict.fromkeys(topology.client.extra_addresses, 10)
    assert result["per_source"] == {
        address: {"counts": {"rs1": 10}, "failures": 0}
        for address in topology.client.extra_addresses
    }


def test_echo_forwarded_for_slow_and_health_control(topology: Topology) -> None:
    assert topology.workdir is not None
    control = topology.workdir / "rs1.control"
    topology.start_real_server("rs1", "--control", str(control))
    base = f"http://{topology.real_servers[0].address}"

    echo = json.loads(
        topology.run(
            "client", ["curl", "-sS", "-H", "X-Forwarded-For: 198.18.0.99", f"{base}/echo/x"]
        ).stdout
    )
    assert echo["server"] == "rs1"
    assert echo["client"] == topology.client.address
    assert echo["x_forwarded_for"] == "198.18.0.99"
    assert echo["path"] == "/echo/x"

    result = topology.run_client(
        "--url", f"{base}/", "--header", "X-Forwarded-For: 198.18.0.98", "--requests", "3"
    )
    assert result["seen_forwarded_for"] == {"198.18.0.98": 3}

    slow = topology.run_client("--url", f"{base}/slow?ms=200", "--requests", "1")
    assert slow["ok"] == 1 and slow["latency_ms"]["max"] >= 200

    health = topology.run_client("--url", f"{base}/health", "--requests", "2")
    assert health["ok"] == 2
    control.write_text("down\n")
    health = topology.run_client("--url", f"{base}/health", "--requests", "2")
    assert health["failures"] == 2 and health["statuses"] == {"503": 2}
    control.write_text("up\n")
    assert topology.run_client("--url", f"{base}/health")["ok"] == 1


def test_banner_binary_and_tcp_echo_servers(topology: Topology) -> None:
    rs1 = topology.real_servers[0].address
    banners = {
        25: ("220 smtp.example ESMTP", "HELO client", "250 rs1"),
        21: ("220 ftp.example FTP", "QUIT", "221 Bye"),
        110: ("+OK pop3.example ready", "CAPA", "+OK rs1"),
        143: ("* OK imap.example ready", "a1 CAPABILITY", "a1 OK rs1"),
    }
    for port, (banner, _, _) in banners.items():
        topology.start_real_server("rs1", "--mode", "banner", "--banner", banner, port=port)
    for port, (banner, command, reply) in banners.items():
        out = topology.run("client", [sys.executable, "-c", BANNER_PROBE, rs1, str(port), command])
        assert out.stdout.splitlines() == [banner, reply]

    topology.start_real_server(
        "rs1", "--mode", "binary", "--expect-hex", "cafe", "--reply-hex", "beef", port=7000
    )
    out = topology.run("client", [sys.executable, "-c", BINARY_PROBE, rs1, "7000", "cafe"])
    assert out.stdout.strip() == "beef"

    for server in topology.real_servers:
        topology.start_real_server(server, "--mode", "tcp-echo", port=9000)
    for server in topology.real_servers:
        result = topology.run_client("--tcp", f"{server.address}:9000", "--requests", "10")
        assert result["counts"] == {server.name: 10}, result["errors"]
        assert result["seen_clients"] == {topology.client.address: 10}
        kept = topology.run_client(
            "--tcp", f"{server.address}:9000", "--requests", "10", "--keepalive"
        )
        assert kept["counts"] == {server.name: 10}, kept["errors"]


def test_every_failure_is_counted(topology: Topology) -> None:
    rs1 = topology.real_servers[0].address
    refused = topology.run_client("--url", f"http://{rs1}:8080/", "--requests", "5")
    assert refused["failures"] == 5 and refused["ok"] == 0
    assert refused["error_kinds"] == {"ConnectionRefusedError": 5}
    assert len(refused["errors"]) == 5

    errors = topology.run_client("--url", f"http://{rs1}:8080/", "--requests", "20")
    assert len(errors["errors"]) == 10  # only the first ten are shown

    server = topology.start_real_server("rs1", port=8080)
    topology.start_real_server("rs2")
    assert topology.run_client("--url", f"http://{rs1}:8080/status/502")["statuses"] == {"502": 1}
    topology.stop(server)
    after = topology.run_client("--url", f"http://{rs1}:8080/", "--requests", "3")
    assert after["failures"] == 3

    # Nothing answers at all: a timeout, counted with its text.
    silent = topology.run_client(
        "--url", "http://198.18.0.250/", "--requests", "1", "--timeout", "0.3"
    )
    assert silent["failures"] == 1
    assert silent["errors"][0]["error"].startswith(("TimeoutError", "OSError"))


def test_duration_mode_stops_on_stop_file(topology: Topology) -> None:
    assert topology.workdir is not None
    topology.start_real_servers()
    stop = topology.workdir / "stop"
    progress = topology.workdir / "progress"
    client = topology.start_client(
        "--url",
        f"http://{topology.real_servers[1].address}/",
        "--duration",
        "30",
        "--stop-file",
        str(stop),
        "--progress-file",
        str(progress),
        "--rate",
        "200",
        "--concurrency",
        "2",
        "--keepalive",
    )
    wait_until("20 requests answered", lambda: answered(progress) >= 20)
    stop.touch()
    result = topology.finish_client(client, timeout=10)
    assert result["failures"] == 0, result["errors"]
    assert 20 <= result["ok"] <= 200
    assert result["elapsed"] < 5
    assert set(result["counts"]) == {"rs2"}


def test_duration_mode_rate(topology: Topology) -> None:
    topology.start_real_servers()
    result = topology.run_client(
        "--url", "http://198.18.0.11/", "--duration", "0.5", "--rate", "100"
    )
    assert result["failures"] == 0
    assert 40 <= result["ok"] <= 55


def test_throughput_is_enough_for_load_tests(topology: Topology) -> None:
    topology.start_real_servers()
    result = topology.run_client(
        "--url", "http://198.18.0.12/", "--requests", "1000", "--concurrency", "4", "--keepalive"
    )
    assert result["failures"] == 0, result["errors"]
    assert result["rate"] > 500


def test_everything_is_removed_after_exit() -> None:
    require_root()
    started = time.monotonic()
    with Topology(real_servers=3) as topology:
        build_time = time.monotonic() - started
        names = [host.netns for host in topology.hosts] + [topology.bridge_netns]
        servers = topology.start_real_servers()
        # A process the topology does not track: it must die too.
        stray = topology.run(
            "rs1", ["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"]
        ).stdout.strip()
        pids = [int(stray)] + [pid for name in names for pid in netns_pids(name)]
        assert len(pids) >= 4
        workdir = topology.workdir
    assert build_time < 2
    assert time.monotonic() - started < 4
    assert not set(names) & set(list_netns())
    assert all(server.returncode is not None for server in servers)
    assert all(_pid_gone(pid) for pid in pids)
    assert workdir is not None and not workdir.exists()


def test_everything_is_removed_after_a_failure() -> None:
    require_root()
    names: list[str] = []
    with pytest.raises(RuntimeError, match="boom"), Topology(real_servers=1) as topology:
        names = [host.netns for host in topology.hosts] + [topology.bridge_netns]
        topology.start_real_servers()
        raise RuntimeError("boom")
    assert names and not set(names) & set(list_netns())


def test_a_real_server_that_cannot_start_is_reported(topology: Topology) -> None:
    with pytest.raises(TopologyError, match="realserver rs1"):
        topology.start_real_server("rs1", bind="198.18.0.99")  # not an address of rs1


def test_stale_namespaces_of_dead_runs_are_removed() -> None:
    require_root()
    dead = subprocess.Popen(["true"])
    dead.wait()
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    pid, encoded = dead.pid, ""
    while pid:
        pid, rest = divmod(pid, 36)
        encoded = digits[rest] + encoded
    name = f"bsc{encoded.rjust(5, '0')}zz-cl"
    subprocess.run(["ip", "netns", "add", name], check=True)
    sleeper = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "60"])
    try:
        assert name in cleanup_stale()
        assert name not in list_netns()
    finally:
        sleeper.kill()
        sleeper.wait()
        if name in list_netns():
            subprocess.run(["ip", "netns", "del", name], check=False)


def test_realserver_runs_without_a_namespace_on_loopback() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(REALSERVER), "--bind", "127.0.0.1", "--port", "0", "--name", "x"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    finally:
        proc.terminate()
        proc.communicate(timeout=5)
    assert proc.returncode == 0
