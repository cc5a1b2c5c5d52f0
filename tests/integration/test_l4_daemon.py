"""L4 (nftables) through a real `bascule run` in the lb namespace, with real TCP and UDP.

The real servers route the client's addresses back through the load balancer (routed NAT:
they see the client's own address). Bascule's own health checker drives the maps.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from daemon import BasculeDaemon
from netns import Topology
from waiting import answered, wait_until

pytestmark = pytest.mark.integration

INTERVAL, FALL, RISE = 1, 2, 2

# K keep-alive connections to the VIP, one request on each every 50 ms until the stop file
# appears; never reconnects (auto_open off), so a reset is an error, not a silent new server.
# The number of requests answered so far is kept in the progress file after every round.
STICKY_CLIENT = r"""
import http.client, json, os, sys, time
vip, count, stop, progress = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
conns, servers, errors, requests = [], [], [], 0
for _ in range(count):
    c = http.client.HTTPConnection(vip, 80, timeout=5)
    c.request("GET", "/")
    r = c.getresponse(); r.read()
    c.auto_open = 0
    conns.append(c); servers.append(r.getheader("X-Server"))
print("ready", flush=True)
moved = 0
while not os.path.exists(stop) and not errors:
    for i, c in enumerate(conns):
        try:
            c.request("GET", "/")
            r = c.getresponse(); r.read()
            requests += 1
            moved += r.getheader("X-Server") != servers[i]
        except Exception as exc:
            errors.append(f"{i} on {servers[i]}: {type(exc).__name__}: {exc}")
    with open(progress + ".partial", "w") as out:
        out.write(f"{requests}\n")
    os.replace(progress + ".partial", progress)
    time.sleep(0.05)
print(json.dumps({"servers": servers, "errors": errors, "moved": moved, "requests": requests}))
"""

UDP_ECHO = str(Path(__file__).resolve().parent.parent / "tools" / "udp_echo.py")

UDP_CLIENT = r"""
import json, socket, sys
vip, sources, per_source = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
seen = {}
for source in sources:
    for _ in range(per_source):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.bind((source, 0))  # a new source port every time: only the address may matter
        try:
            s.connect((vip, 53))
            s.send(b"hello")
            name, peer = s.recv(2048).decode().split()
            seen.setdefault(source, []).append(f"{name} {peer}")
        except OSError as exc:
            seen.setdefault(source, []).append(f"error: {exc}")
        finally:
            s.close()
print(json.dumps(seen))
"""


def l4_service(topo: Topology, **fields: Any) -> dict[str, Any]:
    service: dict[str, Any] = {
        "name": "web",
        "address": topo.vip(),
        "port": 80,
        "protocol": "tcp",
        "mode": "l4",
        "forwarding": "nat",
        "scheduler": "weighted_round_robin",  # equal weights: an exact rotation
        "check": {"type": "tcp", "interval": INTERVAL, "rise": RISE, "fall": FALL},
        "real_servers": [{"address": rs.address, "port": 80} for rs in topo.real_servers],
    }
    service.update(fields)
    return service


def service_status(daemon: BasculeDaemon, name: str) -> dict[str, Any]:
    return next(s for s in daemon.status()["virtual_services"] if s["name"] == name)


def wait_all_up(daemon: BasculeDaemon, topo: Topology, vs: str, port: int = 80) -> None:
    for rs in topo.real_servers:
        daemon.wait_status(vs, f"{rs.address}:{port}", "up", timeout=15)


def lb_tables(topo: Topology) -> str:
    return topo.run("lb", ["nft", "list", "tables"]).stdout


def rule_handles(topo: Topology) -> dict[int, str]:
    """handle -> chain of every rule in the lb's ip bascule table."""
    done = topo.run("lb", ["nft", "-j", "list", "table", "ip", "bascule"])
    return {
        item["rule"]["handle"]: item["rule"]["chain"]
        for item in json.loads(done.stdout)["nftables"]
        if "rule" in item
    }


def test_l4_nat_tcp_through_the_daemon(make_topology: Callable[..., Topology]) -> None:
    topo = make_topology(real_servers=3)
    topo.route_back_through_lb()
    procs = topo.start_real_servers()
    daemon = BasculeDaemon(topo).start()
    try:
        daemon.apply({"virtual_services": [l4_service(topo)]})
        wait_all_up(daemon, topo, "web")
        assert "table ip bascule" in lb_tables(topo)
        # health, drain and weights below change map elements only: no rule is re-added
        handles = rule_handles(topo)

        # round robin rotates exactly; routed NAT: the servers see the client's own address
        result = topo.run_client("--url", f"http://{topo.vip()}/", "--requests", "300")
        assert result["failures"] == 0, result["errors"]
        assert result["counts"] == {"rs1": 100, "rs2": 100, "rs3": 100}
        assert result["seen_clients"] == {topo.client.address: 300}

        status = service_status(daemon, "web")
        assert status["status"] == "up", status
        assert status["total_connections"] >= 300
        assert status["packets"] >= 300 * 3
        for rs in status["real_servers"]:
            assert rs["total_connections"] >= 100, rs
            assert rs["bytes_in"] > 0 and rs["bytes_out"] > 0, rs
        engine = daemon.status()["engine"]["nftables"]
        assert engine["tables"] == ["ip bascule"]
        assert "round_robin" in engine["dsr_scheduling"]

        # health: a dead server leaves within interval x fall + 1 s, returns after rise
        rs2 = topo.real_servers[1]
        topo.stop(procs[1])
        killed = time.monotonic()
        daemon.wait_status("web", f"{rs2.address}:80", "down", timeout=10)
        removal = time.monotonic() - killed
        assert service_status(daemon, "web")["status"] == "degraded"
        result = topo.run_client("--url", f"http://{topo.vip()}/", "--requests", "60")
        assert result["failures"] == 0, result["errors"]
        assert set(result["counts"]) == {"rs1", "rs3"}
        topo.start_real_server(rs2)
        restarted = time.monotonic()
        daemon.wait_status("web", f"{rs2.address}:80", "up", timeout=10)
        back = time.monotonic() - restarted
        print(f"L4 health: removal {removal:.2f}s, return {back:.2f}s")
        # the status is polled through the CLI (a python process per look): allow for it
        assert removal <= INTERVAL * FALL + 1 + 1.5
        assert back <= INTERVAL * RISE + 1 + 1.5
        result = topo.run_client("--url", f"http://{topo.vip()}/", "--requests", "30")
        assert result["counts"] == {"rs1": 10, "rs2": 10, "rs3": 10}

        # drain and a weight change under load: established connections stay, unreset
        stop = Path(daemon.data_dir.with_name(daemon.data_dir.name + "-stop"))
        progress = Path(daemon.data_dir.with_name(daemon.data_dir.name + "-progress"))
        sticky = topo.popen(
            "client",
            [sys.executable, "-c", STICKY_CLIENT, topo.vip(), "6", str(stop), str(progress)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert sticky.stdout is not None and sticky.stdout.readline().strip() == "ready"
        rs1 = topo.real_servers[0]
        daemon.cli("rs", "drain", "web", f"{rs1.address}:80")
        result = topo.run_client("--url", f"http://{topo.vip()}/", "--requests", "40")
        assert result["failures"] == 0, result["errors"]
        assert set(result["counts"]) == {"rs2", "rs3"}  # new flows avoid the drained one
        assert daemon.server_status("web", f"{rs1.address}:80") == "drain"
        weighted = l4_service(
            topo,
            real_servers=[
                {"address": rs.address, "port": 80, "weight": w}
                for rs, w in zip(topo.real_servers, (3000, 1000, 1000), strict=True)
            ],
        )
        applied = daemon.apply({"virtual_services": [weighted]}).stdout
        assert "replace the configuration" not in applied, applied  # map updates only
        result = topo.run_client("--url", f"http://{topo.vip()}/", "--requests", "250")
        assert result["failures"] == 0, result["errors"]
        assert result["counts"] == {"rs1": 150, "rs2": 50, "rs3": 50}
        assert rule_handles(topo) == handles
        # the held connections go on answering after the drain and the weight change
        held = answered(progress)
        wait_until(
            "three more rounds on the held connections",
            lambda: answered(progress) >= held + 6 * 3 or sticky.poll() is not None,
        )
        stop.touch()
        out, err = sticky.communicate(timeout=30)
        sticky_result = json.loads(out.strip().splitlines()[-1])
        print("sticky", sticky_result)
        assert sticky_result["errors"] == [], (sticky_result, err)
        assert sticky_result["moved"] == 0
        assert "rs1" in sticky_result["servers"]  # one of them lived on the drained server
        assert sticky_result["requests"] > 6 * 5
    finally:
        daemon.terminate()
    # SIGTERM stops the daemon only: the tables stay for the next start to adopt
    assert "bascule" in lb_tables(topo)


def test_l4_real_servers_added_and_removed_at_runtime(
    make_topology: Callable[..., Topology],
) -> None:
    """A NAT real server added to a running L4 service, then removed, is no reload: its
    chain, counter and slots go in place (the change pipeline plans a ``ChangeServers``),
    every other rule keeps its handle, and new connections reach it, then no longer."""
    topo = make_topology(real_servers=3)
    topo.route_back_through_lb()
    topo.start_real_servers()
    rs1, rs2, rs3 = topo.real_servers
    daemon = BasculeDaemon(topo).start()
    try:
        two = [{"address": rs.address, "port": 80} for rs in (rs1, rs2)]
        daemon.apply({"virtual_services": [l4_service(topo, real_servers=two)]})
        for rs in (rs1, rs2):
            daemon.wait_status("web", f"{rs.address}:80", "up", timeout=15)
        handles = rule_handles(topo)
        added = daemon.cli("rs", "add", "web", f"{rs3.address}:80").stdout
        assert "real servers at runtime, no reload" in added, added
        daemon.wait_status("web", f"{rs3.address}:80", "up", timeout=15)
        assert set(handles.items()) < set(rule_handles(topo).items())  # its rules added
        # equal weights: the strict rotation over the three
        result = topo.run_client("--url", f"http://{topo.vip()}/", "--requests", "90")
        assert result["failures"] == 0, result["errors"]
        assert result["counts"] == {"rs1": 30, "rs2": 30, "rs3": 30}
        removed = daemon.cli("rs", "delete", "web", f"{rs3.address}:80").stdout
        assert "real servers at runtime, no reload" in removed, removed
        assert rule_handles(topo) == handles
        result = topo.run_client("--url", f"http://{topo.vip()}/", "--requests", "60")
        assert result["failures"] == 0, result["errors"]
        assert result["counts"] == {"rs1": 30, "rs2": 30}
    finally:
        daemon.terminate()


def test_l4_udp_adoption_after_kill_and_full_stop(make_topology: Callable[..., Topology]) -> None:
    topo = make_topology(real_servers=3, client_extra_addresses=8)
    topo.route_back_through_lb()
    for server in topo.real_servers:
        proc = topo.popen(
            server,
            [sys.executable, UDP_ECHO, server.address, "53", server.name],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    topo.start_real_servers()
    dns = l4_service(
        topo,
        name="dns",
        port=53,
        protocol="udp",
        scheduler="source_ip_hash",
        check={"type": "icmp", "interval": INTERVAL, "rise": 1, "fall": FALL},
        real_servers=[{"address": rs.address, "port": 53} for rs in topo.real_servers],
    )
    document = {"virtual_services": [l4_service(topo), dns]}
    daemon = BasculeDaemon(topo).start()
    second: BasculeDaemon | None = None
    try:
        daemon.apply(document)
        wait_all_up(daemon, topo, "dns", port=53)
        wait_all_up(daemon, topo, "web")

        sources = ",".join(topo.client.extra_addresses)
        done = topo.run("client", [sys.executable, "-c", UDP_CLIENT, topo.vip(), sources, "4"])
        seen: dict[str, list[str]] = json.loads(done.stdout)
        for source, answers in seen.items():
            assert len(set(answers)) == 1, (source, answers)  # new ports, same server
            assert answers[0].split()[1] == source, answers  # routed: the client's address
        assert len({answers[0] for answers in seen.values()}) >= 2
        assert service_status(daemon, "dns")["packets"] >= 8 * 4

        # kill -9: the tables stay in the kernel and traffic keeps flowing
        daemon.kill()
        result = topo.run_client("--url", f"http://{topo.vip()}/", "--requests", "30")
        assert result["failures"] == 0, result["errors"]
        # a restart adopts the tables: new connections never fail meanwhile
        load = topo.start_client("--url", f"http://{topo.vip()}/", "--duration", "4")
        second = BasculeDaemon(topo, data_dir=daemon.data_dir).start(timeout=60)  # a loaded CI
        assert service_status(second, "web")["status"] == "up"
        loaded = topo.finish_client(load)
        assert loaded["failures"] == 0, loaded["errors"]
        assert set(loaded["counts"]) == {"rs1", "rs2", "rs3"}
        assert "adopting Bascule's nftables tables" in second.log()
        again = topo.run("client", [sys.executable, "-c", UDP_CLIENT, topo.vip(), sources, "2"])
        for source, answers in json.loads(again.stdout).items():
            assert set(answers) == set(seen[source]), source  # hashing survives the restart
    finally:
        running = second or daemon
        if running.process is not None and running.process.poll() is None:
            running.stop(data_plane=True)
        daemon.stop_haproxy()
    assert "bascule" not in lb_tables(topo)  # bascule stop --data-plane removes our tables
