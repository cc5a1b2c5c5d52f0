"""The nftables shell with real traffic in network namespaces (no daemon).

Each test builds a client, the load balancer and real servers (netns.py), applies a ruleset
built by engines/nftables/rules.py with NftablesShell inside the lb namespace, and sends TCP
or UDP traffic from the client to the VIP 198.18.0.100, which the lb holds on its eth0 so
that it answers ARP for it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from netns import Topology

from bascule.engines.nftables.rules import Ruleset, build_ruleset
from bascule.engines.nftables.scheduling import Selection
from bascule.engines.nftables.shell import NftablesShell
from bascule.engines.nftables.view import Environment, L4Inputs
from bascule.model import Configuration

pytestmark = pytest.mark.integration

MAGLEV_SIZE = 65537  # the production size

# Connects from given source ports (HTTP/1.0, so the server closes), prints {port: server}.
FLOW_CLIENT = r"""
import json, socket, sys
vip, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
seen = {}
for port in range(first, first + count):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.settimeout(3)
    try:
        s.bind(("0.0.0.0", port))
        s.connect((vip, 80))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        head = data.split(b"\r\n\r\n")[0].decode()
        seen[port] = next(l.split(":", 1)[1].strip() for l in head.split("\r\n")
                          if l.lower().startswith("x-server:"))
    except OSError as exc:
        seen[port] = f"error: {exc}"
    finally:
        s.close()
print(json.dumps(seen))
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
            seen.setdefault(source, []).append(s.recv(2048).decode().split()[0])
        except OSError as exc:
            seen.setdefault(source, []).append(f"error: {exc}")
        finally:
            s.close()
print(json.dumps(seen))
"""


def l4_service(
    topo: Topology, forwarding: str, *, servers: int | None = None, **fields: Any
) -> dict[str, Any]:
    hosts = topo.real_servers[: servers or len(topo.real_servers)]
    weights = fields.pop("weights", [1000] * len(hosts))
    return {
        "name": "web",
        "address": topo.vip(),
        "port": 80,
        "mode": "l4",
        "forwarding": forwarding,
        "real_servers": [
            {"address": host.address, "port": 80, "weight": weight}
            for host, weight in zip(hosts, weights, strict=True)
        ],
        **fields,
    }


def configuration(*services: dict[str, Any]) -> Configuration:
    # model_validate, not parse_document: the model still refuses mode l4 as "not yet"
    return Configuration.model_validate({"virtual_services": list(services)})


def sysctl(topo: Topology, host: str, *settings: str) -> None:
    topo.run(host, ["sysctl", "-qw", *settings])


def prepare_lb(topo: Topology) -> NftablesShell:
    """The VIP on the lb's eth0, forwarding on, no ICMP redirects (they would send the client
    straight to a real server, which has no VIP in the NAT case)."""
    topo.run("lb", ["ip", "address", "add", f"{topo.vip()}/32", "dev", "eth0"])
    sysctl(
        topo,
        "lb",
        "net.ipv4.ip_forward=1",
        "net.ipv4.conf.all.send_redirects=0",
        "net.ipv4.conf.eth0.send_redirects=0",
    )
    return NftablesShell(netns=topo.lb.netns)


def apply(engine: NftablesShell, config: Configuration, inputs: L4Inputs) -> Ruleset:
    ruleset = build_ruleset(config, inputs)
    asyncio.run(engine.apply(ruleset))
    return ruleset


def http(topo: Topology, *args: str) -> dict[str, Any]:
    return topo.run_client("--url", f"http://{topo.vip()}/", *args)


def shares(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {name: count / total for name, count in counts.items()}


def assert_shares(counts: Mapping[str, int], expected: Mapping[str, float]) -> None:
    got = shares(counts)
    print("shares", {name: round(share, 3) for name, share in sorted(got.items())})
    for name, share in expected.items():
        assert got.get(name, 0.0) == pytest.approx(share, abs=0.05), (counts, expected)


def test_nat_routed_schedulers_see_the_client(make_topology: Callable[..., Topology]) -> None:
    topo = make_topology(real_servers=3)
    engine = prepare_lb(topo)
    topo.route_back_through_lb()
    topo.start_real_servers()
    inputs = L4Inputs()

    apply(engine, configuration(l4_service(topo, "nat")), inputs)
    result = http(topo, "--requests", "300")
    assert result["failures"] == 0, result["errors"]
    assert result["counts"] == {"rs1": 100, "rs2": 100, "rs3": 100}  # round robin: exact
    assert result["seen_clients"] == {topo.client.address: 300}  # routed: the client's own

    counters = asyncio.run(engine.counter_values())
    new = {name: v.packets for (_, name), v in counters.items() if name.startswith("new/")}
    assert sorted(new.values()) == [100, 100, 100]

    # conntrack remembers each connection; cutting one server's entries leaves the others
    rs1 = topo.real_servers[0].address
    asyncio.run(engine.flush_connections(topo.vip(), 80, rs1))
    left = asyncio.run(engine.connections())
    assert {c.reply_source for c in left if c.destination == topo.vip()} == {
        topo.real_servers[1].address,
        topo.real_servers[2].address,
    }

    wrr = l4_service(topo, "nat", scheduler="weighted_round_robin", weights=[3000, 1000, 1000])
    apply(engine, configuration(wrr), inputs)
    result = http(topo, "--requests", "500")
    assert result["failures"] == 0, result["errors"]
    assert_shares(result["counts"], {"rs1": 0.6, "rs2": 0.2, "rs3": 0.2})

    # least connection: the daemon passes conntrack-derived weights in
    lc = l4_service(topo, "nat", scheduler="least_connection")
    counted = (2000, 1000, 1000)  # what the driver derives from conntrack, one per server
    busy = L4Inputs(
        weights={
            ("web", f"{rs.address}:80"): weight
            for rs, weight in zip(topo.real_servers, counted, strict=True)
        }
    )
    apply(engine, configuration(lc), busy)
    result = http(topo, "--requests", "400")
    assert_shares(result["counts"], {"rs1": 0.5, "rs2": 0.25, "rs3": 0.25})

    fixed = l4_service(topo, "nat", scheduler="fixed_weighting", weights=[1000, 2000, 1500])
    apply(engine, configuration(fixed), inputs)
    assert http(topo, "--requests", "20")["counts"] == {"rs2": 20}

    # a real server that is down leaves the maps
    down = L4Inputs(health={("web", f"{topo.real_servers[1].address}:80"): False})
    apply(engine, configuration(l4_service(topo, "nat")), down)
    result = http(topo, "--requests", "100")
    assert result["failures"] == 0
    assert set(result["counts"]) == {"rs1", "rs3"}


def test_nat_one_armed_and_persistence(make_topology: Callable[..., Topology]) -> None:
    topo = make_topology(real_servers=3, client_extra_addresses=6)
    engine = prepare_lb(topo)  # no routes back: the servers would answer the client directly
    topo.start_real_servers()
    inputs = L4Inputs(environment=Environment(source_addresses={4: topo.lb.address}))
    service = l4_service(
        topo,
        "nat",
        subnet_originating=True,
        persistence={"method": "source_ip", "timeout": 600},
    )
    ruleset = apply(engine, configuration(service), inputs)
    assert ruleset.services["web"].selection is Selection.round_robin

    sources = [arg for address in topo.client.extra_addresses for arg in ("--source", address)]
    result = http(topo, "--requests", "120", *sources)
    assert result["failures"] == 0, result["errors"]
    assert result["seen_clients"] == {topo.lb.address: 120}  # one-armed: the lb's address
    per_source = result["per_source"]
    for address, outcome in per_source.items():
        assert len(outcome["counts"]) == 1, (address, outcome)  # each client stays put
    assert len({next(iter(o["counts"])) for o in per_source.values()}) == 3  # and they spread

    # persistence outlives a re-apply (the sets are kept, only the rules are replaced)
    apply(engine, configuration(service), inputs)
    again = http(topo, "--requests", "60", *sources)
    for address, outcome in again["per_source"].items():
        assert outcome["counts"].keys() == per_source[address]["counts"].keys()


def test_nat_udp_source_ip_hash(make_topology: Callable[..., Topology]) -> None:
    topo = make_topology(real_servers=3, client_extra_addresses=8)
    engine = prepare_lb(topo)
    topo.route_back_through_lb()
    for server in topo.real_servers:
        proc = topo.popen(
            server,
            [sys.executable, UDP_ECHO, server.address, "53", server.name],
            stdout=__import__("subprocess").PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    service = l4_service(topo, "nat", protocol="udp", scheduler="source_ip_hash")
    service["port"] = 53
    for rs in service["real_servers"]:
        rs["port"] = 53
    ruleset = apply(
        engine, configuration(service), L4Inputs(environment=Environment(maglev_size=MAGLEV_SIZE))
    )
    assert ruleset.services["web"].selection is Selection.source_maglev

    sources = ",".join(topo.client.extra_addresses)
    done = topo.run("client", [sys.executable, "-c", UDP_CLIENT, topo.vip(), sources, "5"])
    seen: dict[str, list[str]] = json.loads(done.stdout)
    for source, servers in seen.items():
        assert len(set(servers)) == 1, (source, servers)  # new source ports, same server
        assert not servers[0].startswith("error"), servers
    assert len({servers[0] for servers in seen.values()}) >= 2


def flows(topo: Topology, first: int, count: int) -> dict[str, str]:
    done = topo.run(
        "client", [sys.executable, "-c", FLOW_CLIENT, topo.vip(), str(first), str(count)]
    )
    result: dict[str, str] = json.loads(done.stdout)
    return result


def test_dsr_maglev_replies_bypass_the_lb(make_topology: Callable[..., Topology]) -> None:
    topo = make_topology(real_servers=5, client_extra_addresses=4)
    engine = prepare_lb(topo)
    for server in topo.real_servers:  # what `bascule dsr script` will print
        topo.run(server, ["ip", "address", "add", f"{topo.vip()}/32", "dev", "lo"])
        sysctl(
            topo,
            server.name,
            "net.ipv4.conf.all.arp_ignore=1",
            "net.ipv4.conf.all.arp_announce=2",
            "net.ipv4.conf.eth0.arp_ignore=1",
            "net.ipv4.conf.eth0.arp_announce=2",
        )
        topo.start_real_server(server, bind="0.0.0.0")
    # A probe in the lb (its own namespace): frames reaching the lb's eth0 sent from the VIP.
    probe = {
        "nftables": [
            {"add": {"table": {"family": "netdev", "name": "probe"}}},
            {
                "add": {
                    "chain": {
                        "family": "netdev",
                        "table": "probe",
                        "name": "seen",
                        "type": "filter",
                        "hook": "ingress",
                        "dev": "eth0",
                        "prio": 0,
                        "policy": "accept",
                    }
                }
            },
            {
                "add": {
                    "rule": {
                        "family": "netdev",
                        "table": "probe",
                        "chain": "seen",
                        "expr": [
                            {
                                "match": {
                                    "op": "==",
                                    "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                                    "right": topo.vip(),
                                }
                            },
                            {"counter": None},
                        ],
                    }
                }
            },
        ]
    }
    topo.run("lb", ["nft", "-j", "-f", "-"], input=json.dumps(probe))

    macs = {
        host.address: asyncio.run(engine.mac_of(host.address, "eth0")) for host in topo.real_servers
    }
    assert all(macs.values()), macs
    environment = Environment(
        interface="eth0",
        lb_mac=asyncio.run(engine.interface_mac("eth0")),
        server_macs={address: mac for address, mac in macs.items() if mac},
        maglev_size=MAGLEV_SIZE,
    )
    inputs = L4Inputs(environment=environment)
    ruleset = apply(engine, configuration(l4_service(topo, "dsr")), inputs)
    assert ruleset.services["web"].selection is Selection.flow_maglev

    before = flows(topo, 20000, 500)
    assert not [s for s in before.values() if s.startswith("error")], before
    assert_shares(Counter(before.values()), {f"rs{i}": 0.2 for i in range(1, 6)})

    # replies went from the servers straight to the client: none reached the lb
    listing = topo.run("lb", ["nft", "-j", "list", "table", "netdev", "probe"]).stdout
    seen = [i["rule"] for i in json.loads(listing)["nftables"] if "rule" in i]
    assert seen[0]["expr"][1]["counter"]["packets"] == 0
    values = asyncio.run(engine.counter_values())
    sent = sum(v.packets for (_, name), v in values.items() if name.startswith("traffic/"))
    assert sent >= 500 * 3  # SYN, request, ACK/FIN at least
    syns = sum(v.packets for (_, name), v in values.items() if name.startswith("new/"))
    assert syns == 500

    # one of five leaves: its flows (about a fifth) move, the others stay where they were
    gone = topo.real_servers[2]
    down = L4Inputs(environment=environment, health={("web", f"{gone.address}:80"): False})
    apply(engine, configuration(l4_service(topo, "dsr")), down)
    after = flows(topo, 20000, 500)
    moved = [port for port in before if before[port] != after[port]]
    others = [port for port in moved if before[port] != gone.name]
    print(
        f"DSR Maglev: {len(moved)} of {len(before)} flows moved, {len(others)} not from {gone.name}"
    )
    assert gone.name not in after.values()
    assert {port for port in before if before[port] == gone.name} <= set(moved)
    assert len(moved) / len(before) == pytest.approx(0.2, abs=0.05)
    # Maglev is not perfectly stable: a few slots of the others move (the paper's figure 11)
    assert len(others) / len(before) <= 0.02

    # it comes back: every flow returns to where it was
    apply(engine, configuration(l4_service(topo, "dsr")), inputs)
    assert flows(topo, 20000, 500) == before

    # source_ip persistence in DSR: each client address stays on one server
    sticky = l4_service(topo, "dsr", persistence={"method": "source_ip", "timeout": 600})
    apply(engine, configuration(sticky), inputs)
    sources = [arg for address in topo.client.extra_addresses for arg in ("--source", address)]
    result = http(topo, "--requests", "80", *sources)
    assert result["failures"] == 0, result["errors"]
    for address, outcome in result["per_source"].items():
        assert len(outcome["counts"]) == 1, (address, outcome)

    asyncio.run(engine.remove())
    assert topo.run("lb", ["nft", "list", "tables"]).stdout.split() == [
        "table",
        "netdev",
        "probe",
    ]


# Opens keep-alive connections, asks once on each, waits for a line on stdin, asks again on
# the same connections; prints {"before": [...], "after": [...]} (server or error per conn).
HELD_CLIENT = r"""
import http.client, json, sys
vip, count = sys.argv[1], int(sys.argv[2])
conns = [http.client.HTTPConnection(vip, 80, timeout=5) for _ in range(count)]

def ask(conn):
    try:
        conn.request("GET", "/")
        answer = conn.getresponse()
        answer.read()
        return answer.getheader("X-Server")
    except OSError as exc:
        return f"error: {type(exc).__name__}"

before = [ask(c) for c in conns]
print(json.dumps(before), flush=True)
sys.stdin.readline()
after = [ask(c) for c in conns]
for c in conns:
    c.close()
print(json.dumps({"before": before, "after": after}), flush=True)
"""


def rule_handles(topo: Topology) -> dict[int, str]:
    """handle -> chain of every rule in the lb's ip bascule table."""
    done = topo.run("lb", ["nft", "-j", "list", "table", "ip", "bascule"])
    return {
        item["rule"]["handle"]: item["rule"]["chain"]
        for item in json.loads(done.stdout)["nftables"]
        if "rule" in item
    }


def test_runtime_changes_update_maps_and_keep_rules_and_connections(
    make_topology: Callable[..., Topology],
) -> None:
    from bascule.engines.nftables.engine import NftablesEngine
    from bascule.reconcile.actions import ReplaceConfig, SetWeight

    topo = make_topology(real_servers=3)
    prepare_lb(topo)
    topo.route_back_through_lb()
    topo.start_real_servers()
    driver = NftablesEngine(netns=topo.lb.netns)
    service = l4_service(topo, "nat", scheduler="weighted_round_robin")
    config = configuration(service)
    asyncio.run(driver.execute([ReplaceConfig(config=config, reason="test")], None))
    handles = rule_handles(topo)
    assert len(handles) == 8  # dispatch, selection, and each server's count and dnat

    held = topo.popen(
        "client",
        [sys.executable, "-c", HELD_CLIENT, topo.vip(), "6"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert held.stdout is not None and held.stdin is not None
    before = json.loads(held.stdout.readline())
    assert sorted(before) == ["rs1", "rs1", "rs2", "rs2", "rs3", "rs3"], before

    # a weight change and a health flip: map updates only, every rule keeps its handle
    rs2, rs3 = (f"{rs.address}:80" for rs in topo.real_servers[1:])
    asyncio.run(driver.execute([SetWeight(vs="web", server=rs3, weight=3)], config))
    assert rule_handles(topo) == handles
    asyncio.run(driver.health_changed(("web", rs2), False))
    assert rule_handles(topo) == handles
    sched = topo.run("lb", ["nft", "-j", "list", "map", "ip", "bascule", "sched/web"])
    targets = {
        element[1]["goto"]["target"]
        for item in json.loads(sched.stdout)["nftables"]
        if "map" in item
        for element in item["map"].get("elem", [])
    }
    assert targets == {f"rs/web/{topo.real_servers[i].address}/80" for i in (0, 2)}

    # established connections stay where they were (conntrack), even those on the down server
    held.stdin.write("go\n")
    held.stdin.flush()
    result = json.loads(held.stdout.readline())
    topo.stop(held)
    assert result["after"] == result["before"], result

    # new connections follow the maps
    fresh = http(topo, "--requests", "40")
    assert fresh["failures"] == 0, fresh["errors"]
    assert "rs2" not in fresh["counts"]

    # a structural change (a server leaves the document) is one full transaction
    smaller = configuration({**service, "real_servers": service["real_servers"][:2]})
    asyncio.run(driver.execute([ReplaceConfig(config=smaller, reason="test")], config))
    assert rule_handles(topo) != handles
    asyncio.run(driver.stop(grace=0))
