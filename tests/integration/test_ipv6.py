"""IPv6 end to end: a real `bascule run` and real traffic over IPv6 and dual-stack services.

Every host of these topologies has an IPv4 address from 198.18.0.0/24 and an IPv6 one from
2001:2::/64 (netns.py, ``Topology(ipv6=True)``; RFC 5180's benchmarking range): lb 2001:2::2,
client 2001:2::a (+ 2001:2::14.. as extra sources), rsN 2001:2::(a+N), VIPs ``vip6(n)``.

- L7: a dual-stack service (one name, an IPv4 and an IPv6 VIP) whose real servers are
  reached over IPv6, with persistence by source address for clients of both families, and
  every HAProxy check type against IPv6 real servers (test_l7_checks.py's cases).
- L4 NAT: two-armed (the servers route the clients back through the lb: they see the
  client's own IPv6 address), one-armed (subnet_originating: they see the lb's), source
  address persistence per IPv6 client, and a dual-stack NAT service that sends each family
  to the real servers of its family.
- DSR: the real servers set up by `bascule dsr script`, their MACs learnt by neighbour
  discovery, traffic to both VIPs of a dual-stack service answered by the servers straight
  to the client, `bascule dsr verify` passing, then naming a server that holds the IPv6 VIP
  on its segment interface (it answers neighbour solicitations for it).
- Bascule's own probes (the L4 checker's) of every type against IPv6 addresses.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import test_l7_checks as l7_checks
from daemon import BasculeDaemon
from netns import Host, Topology, wait_ready
from test_l4_daemon_methods import Capture, mac_of, running

pytestmark = pytest.mark.integration

CHECK = {"type": "tcp", "interval": 1, "rise": 1, "fall": 2}
RDP_CONFIRM = "0300000b06d00000000000"
HEALTH_PROBES = Path(__file__).resolve().parent / "test_health_probes.py"


def url(address: str, port: int = 80) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}/"


def key(address: str, port: int = 80) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{host}:{port}"


def v6(host: Host) -> str:
    assert host.address6 is not None
    return host.address6


def service_status(daemon: BasculeDaemon, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        s for s in daemon.status()["virtual_services"] if s["name"] == name
    )
    return found


def wait_up(daemon: BasculeDaemon, vs: str, keys: set[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        servers = service_status(daemon, vs)["real_servers"]
        seen = {rs["key"]: rs["status"] for rs in servers}
        if all(seen.get(k) == "up" for k in keys):
            return
        assert time.monotonic() < deadline, f"{vs}: not all up after {timeout}s: {seen}"
        time.sleep(0.2)


def client(topo: Topology, target: str, *args: str) -> dict[str, Any]:
    result = topo.run_client("--url", target, *args)
    assert result["failures"] == 0, result["errors"]
    return result


# -- L7 ---------------------------------------------------------------------------------------


def test_l7_dual_stack_service_over_ipv6_servers_with_source_persistence(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=3, client_extra_addresses=4, ipv6=True)
    topo.start_real_servers()
    service = {
        "name": "web",
        "address": topo.vip(),
        "address6": topo.vip6(),
        "port": 80,
        "type": "http",
        "scheduler": "round_robin",
        "check": {"type": "http", "path": "/", "interval": 1, "rise": 1, "fall": 2},
        "persistence": {"method": "source_ip", "timeout": 600},
        "real_servers": [{"address": v6(rs), "port": 80} for rs in topo.real_servers],
    }
    with running(topo) as daemon:
        daemon.apply({"virtual_services": [service]})
        wait_up(daemon, "web", {key(v6(rs)) for rs in topo.real_servers})
        listening = topo.run("lb", ["ss", "-Hltn", "sport", "=", "80"]).stdout
        assert f"{topo.vip()}:80" in listening and f"[{topo.vip6()}]:80" in listening, listening

        # one service, two VIPs: clients of each family are served, by IPv6 real servers
        for target in (url(topo.vip()), url(topo.vip6())):
            result = client(topo, target, "--requests", "30")
            assert sum(result["counts"].values()) == 30, result
            # L7 proxies: the servers see the load balancer's IPv6 address
            assert result["seen_clients"] == {v6(topo.lb): 30}, result

        # persistence by source address: each client address, of either family, stays on
        # one server over new connections; the stick table is of type ipv6 and keeps both
        placed: dict[str, str] = {}
        families = (topo.client.addresses, topo.client.addresses6)
        for addresses, vip in zip(families, (topo.vip(), topo.vip6()), strict=True):
            for address in addresses:
                result = client(topo, url(vip), "--requests", "12", "--source", address)
                assert len(result["counts"]) == 1, (address, result)
                placed[address] = next(iter(result["counts"]))
        assert len(set(placed.values())) > 1, placed  # and they are spread
        table = daemon.haproxy("show table web")
        assert "type: ipv6" in table, table
        for address in topo.client.addresses6:
            assert f"key={address} " in table, table
        for address in topo.client.addresses:
            assert f"key=::ffff:{address} " in table, table
        # again, later: every client back on its server
        for addresses, vip in zip(families, (topo.vip(), topo.vip6()), strict=True):
            for address in addresses:
                result = client(topo, url(vip), "--requests", "4", "--source", address)
                assert result["counts"] == {placed[address]: 4}, (address, result)

        status = service_status(daemon, "web")
        assert status["address6"] == topo.vip6(), status
        assert status["status"] == "up", status
        table_text = daemon.cli("status").stdout
        assert f"{topo.vip()}, {topo.vip6()}" in table_text, table_text


def test_l7_every_check_type_against_ipv6_real_servers(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=3, ipv6=True)
    assert topo.workdir is not None
    cert = l7_checks.self_signed_certificate(topo.workdir)
    found = l7_checks.cases(https=cert is not None)
    l7_checks.real_server_processes(topo, cert)  # each listens on its IPv4 and IPv6 address
    services = l7_checks.document(topo, found)["virtual_services"]
    by_v4 = {rs.address: v6(rs) for rs in topo.real_servers}
    for service in services:
        service["address"] = topo.vip6()
        for rs in service["real_servers"]:
            rs["address"] = by_v4[rs["address"]]
    names = {
        f"{rs.name}:{port}": key(v6(rs), port)
        for rs in topo.real_servers
        for port in {int(k.partition(":")[2]) for c in found.values() for k in c.servers}
    }
    with running(topo) as daemon:
        daemon.apply({"virtual_services": services})
        deadline = time.monotonic() + l7_checks.SETTLE_TIMEOUT
        report = daemon.status()
        while not l7_checks.settled(report, found, names) and time.monotonic() < deadline:
            time.sleep(0.2)
            report = daemon.status()
    shown = {
        s["name"]: {rs["key"]: (rs["status"], rs["check_result"]) for rs in s["real_servers"]}
        for s in report["virtual_services"]
    }
    assert l7_checks.settled(report, found, names), json.dumps(shown, indent=1)
    # every type was checked, and each misbehaving IPv6 server was found out
    assert {s["name"] for s in report["virtual_services"]} == set(found)
    assert any(status == "down" for s in shown.values() for status, _ in s.values())


# -- L4 NAT -----------------------------------------------------------------------------------


def test_l4_nat_over_ipv6_two_armed_one_armed_persistence_and_dual_stack(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=3, client_extra_addresses=4, ipv6=True)
    topo.route_back_through_lb()  # two-armed: the clients (both families) via the lb
    topo.start_real_servers()
    servers6 = [{"address": v6(rs), "port": 80} for rs in topo.real_servers]
    servers4 = [{"address": rs.address, "port": 80} for rs in topo.real_servers]
    base = {"port": 80, "mode": "l4", "forwarding": "nat", "check": CHECK}
    services = [
        # routed NAT over IPv6, exact rotation
        {
            **base,
            "name": "routed",
            "address": topo.vip6(100),
            "scheduler": "round_robin",
            "real_servers": servers6,
        },
        # one-armed: the servers see the load balancer
        {
            **base,
            "name": "onearm",
            "address": topo.vip6(101),
            "scheduler": "round_robin",
            "subnet_originating": True,
            "real_servers": servers6,
        },
        # persistence by IPv6 source address
        {
            **base,
            "name": "sticky",
            "address": topo.vip6(102),
            "scheduler": "round_robin",
            "persistence": {"method": "source_ip", "timeout": 600},
            "real_servers": servers6,
        },
        # dual-stack: each VIP's clients to the real servers of its family
        {
            **base,
            "name": "dual",
            "address": topo.vip(103),
            "address6": topo.vip6(103),
            "scheduler": "round_robin",
            "real_servers": servers4 + servers6,
        },
    ]
    with running(topo) as daemon:
        daemon.apply({"virtual_services": services})
        every6 = {key(v6(rs)) for rs in topo.real_servers}
        for name in ("routed", "onearm", "sticky"):
            wait_up(daemon, name, every6)
        wait_up(daemon, "dual", every6 | {key(rs.address) for rs in topo.real_servers})
        tables = topo.run("lb", ["nft", "list", "tables"]).stdout
        assert "table ip6 bascule" in tables and "table ip bascule" in tables, tables

        me6 = ("--source", v6(topo.client))  # not one of its extra addresses
        routed = client(topo, url(topo.vip6(100)), "--requests", "90", *me6)
        assert routed["counts"] == {"rs1": 30, "rs2": 30, "rs3": 30}, routed
        assert routed["seen_clients"] == {v6(topo.client): 90}, routed

        onearm = client(topo, url(topo.vip6(101)), "--requests", "90", *me6)
        assert onearm["counts"] == {"rs1": 30, "rs2": 30, "rs3": 30}, onearm
        assert onearm["seen_clients"] == {v6(topo.lb): 90}, onearm

        placed = {}
        for address in topo.client.addresses6:
            result = client(topo, url(topo.vip6(102)), "--requests", "10", "--source", address)
            assert len(result["counts"]) == 1, (address, result)
            assert result["seen_clients"] == {address: 10}, result
            placed[address] = next(iter(result["counts"]))
        assert len(set(placed.values())) > 1, placed

        for vip, me in ((topo.vip(103), topo.client.address), (topo.vip6(103), v6(topo.client))):
            dual = client(topo, url(vip), "--requests", "60", "--source", me)
            assert dual["counts"] == {"rs1": 20, "rs2": 20, "rs3": 20}, (vip, dual)
            assert dual["seen_clients"] == {me: 60}, (vip, dual)
        status = service_status(daemon, "dual")
        assert status["status"] == "up", status
        assert all(rs["total_connections"] >= 20 for rs in status["real_servers"]), status


# -- DSR --------------------------------------------------------------------------------------


def test_dsr_dual_stack_with_neighbour_discovery_script_and_verify(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=3, ipv6=True)
    vip, vip6 = topo.vip(), topo.vip6()
    service = {
        "name": "web",
        "address": vip,
        "address6": vip6,
        "port": 80,
        "mode": "l4",
        "forwarding": "dsr",
        "scheduler": "round_robin",
        "check": CHECK,
        # reached, checked and found (neighbour discovery) on their IPv6 addresses
        "real_servers": [{"address": v6(rs), "port": 80} for rs in topo.real_servers],
    }
    with running(topo) as daemon:
        daemon.apply({"virtual_services": [service]})
        script = daemon.cli("dsr", "script", "web").stdout
        assert f"{vip}/32 dev lo" in script and f"{vip6}/128 dev lo" in script, script
        for server in topo.real_servers:  # what a real server's administrator runs
            topo.run(server, ["sh", "-c", script])
        for server in topo.real_servers:
            topo.start_real_server(server, bind="0.0.0.0,::")  # the VIPs' packets too
        wait_up(daemon, "web", {key(v6(rs)) for rs in topo.real_servers})
        # the servers' MACs came from the neighbour table, filled by IPv6 neighbour discovery
        neighbours = topo.run("lb", ["ip", "-6", "-j", "neigh", "show", "dev", "eth0"]).stdout
        learnt = {n["dst"]: n.get("lladdr") for n in json.loads(neighbours)}
        for server in topo.real_servers:
            assert learnt.get(v6(server)) == mac_of(topo, server), learnt

        server_macs = {mac_of(topo, server): server.name for server in topo.real_servers}
        for target, me in ((vip6, v6(topo.client)), (vip, topo.client.address)):
            capture = Capture(
                topo, "client", "src host", target, "and tcp src port 80", ethernet=True
            )
            result = client(topo, url(target), "--requests", "300")
            replies = capture.lines(at_least=300 * 3)
            counts = result["counts"]
            assert set(counts) == {"rs1", "rs2", "rs3"}, (target, counts)
            assert result["seen_clients"] == {me: 300}, result  # the client's own address
            # the answers come from the VIP in frames of the real servers: not via the lb
            repliers = Counter(line.split()[1] for line in replies)
            assert {server_macs.get(mac) for mac in repliers} == {"rs1", "rs2", "rs3"}, repliers

        status = service_status(daemon, "web")
        assert status["status"] == "up", status
        for rs in status["real_servers"]:
            assert rs["bytes_out"] == 0, rs  # the replies never pass the load balancer

        verified = daemon.cli("dsr", "verify", "web", check=False)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "all checks passed" in verified.stdout, verified.stdout
        assert_verify_json(daemon, ok=True)

        # rs2 holds the IPv6 VIP on its segment interface: it answers neighbour
        # solicitations for it, clients would bypass the load balancer; verify names it
        rs2 = topo.real_servers[1]
        topo.run(rs2, ["ip", "-6", "address", "add", f"{vip6}/128", "dev", "eth0", "nodad"])
        verified = daemon.cli("dsr", "verify", "web", check=False)
        assert verified.returncode == 1, verified.stdout + verified.stderr
        lines = verified.stdout.splitlines()
        [named] = [line for line in lines if key(v6(rs2)) in line]
        assert "FAIL" in named, verified.stdout
        report = assert_verify_json(daemon, ok=False)
        [check] = [c for c in report["real_servers"] if c["address"] == v6(rs2)]
        assert "answers neighbour solicitations for the VIP" in check["arp_detail"], check
        assert vip6 in check["arp_detail"], check
        for other in (topo.real_servers[0], topo.real_servers[2]):
            [line] = [line for line in lines if key(v6(other)) in line]
            assert "FAIL" not in line, verified.stdout


def assert_verify_json(daemon: BasculeDaemon, *, ok: bool) -> dict[str, Any]:
    done = daemon.cli("dsr", "verify", "web", "--json", check=False)
    report: dict[str, Any] = json.loads(done.stdout)
    assert report["ok"] is ok, json.dumps(report, indent=1)
    assert report["vip6"] == daemon.topology.vip6(), report
    return report


# -- Bascule's own probes (the L4 checker) ----------------------------------------------------


def test_every_probe_type_against_ipv6_addresses(make_topology: Callable[..., Topology]) -> None:
    topo = make_topology(real_servers=2, ipv6=True)
    assert topo.workdir is not None
    cert = l7_checks.self_signed_certificate(topo.workdir)
    rs1, rs2 = (v6(rs) for rs in topo.real_servers)
    start = topo.start_real_server
    start("rs1")  # http on :80 (both families)
    start("rs2", "--health-status", "503")
    if cert is not None:
        start("rs1", "--tls-cert", str(cert[0]), "--tls-key", str(cert[1]), port=443)
    banners = {
        25: "220 mail.example ESMTP",
        21: "220 ftp.example FTP ready",
        110: "+OK pop.example ready",
        143: "* OK imap.example ready",
    }
    for port, banner in banners.items():
        start("rs1", "--mode", "banner", "--banner", banner, port=port)
    start(
        "rs1",
        "--mode",
        "binary",
        "--expect-hex",
        l7_checks.PING,
        "--reply-hex",
        l7_checks.PONG,
        port=7009,
    )
    ldap = ["--expect-hex", l7_checks.LDAP_BIND_REQUEST, "--reply-hex"]
    start("rs1", "--mode", "binary", *ldap, l7_checks.LDAP_BIND_SUCCESS, port=389)
    # an X.224 connection confirm in a TPKT, sent as soon as the probe connects
    start("rs1", "--mode", "binary", "--reply-hex", RDP_CONFIRM, port=3389)
    dns = topo.popen(
        "rs1",
        [sys.executable, str(HEALTH_PROBES), "dns-server", rs1, "53", "good"],
        stdout=subprocess.PIPE,
        text=True,
    )
    wait_ready(dns)

    def spec(address: str, port: int, **check: Any) -> dict[str, Any]:
        return {"address": address, "port": port, "host": address, "check": {**check, "timeout": 1}}

    probes = {
        "tcp": spec(rs1, 80, type="tcp"),
        "tcp-refused": spec(rs2, 81, type="tcp"),
        "http": spec(rs1, 80, type="http", path="/"),
        "http-503": spec(rs2, 80, type="http", path="/health"),
        "icmp": spec(rs1, 0, type="icmp"),
        "smtp": spec(rs1, 25, type="smtp"),
        "ftp": spec(rs1, 21, type="ftp"),
        "pop3": spec(rs1, 110, type="pop3"),
        "imap": spec(rs1, 143, type="imap"),
        "ldap": spec(rs1, 389, type="ldap"),
        "binary": spec(rs1, 7009, type="binary", send_hex=l7_checks.PING, expect_hex=b"PONG".hex()),
        "dns": spec(rs1, 53, type="dns"),
        "rdp": spec(rs1, 3389, type="rdp"),
    }
    if cert is not None:
        probes["https"] = spec(rs1, 443, type="https", path="/")
    done = topo.run("lb", [sys.executable, str(HEALTH_PROBES), "probe"], input=json.dumps(probes))
    results: dict[str, dict[str, Any]] = json.loads(done.stdout)
    failing = {"tcp-refused", "http-503"}
    for name, result in results.items():
        assert result["ok"] is (name not in failing), (name, result)
