"""L4 (nftables) methods through a real `bascule run`: DSR, one-armed NAT, least connection,
persistence, fixed weighting, refused input and the status, with the CLI as a user drives it.

test_l4_daemon.py covers routed NAT round robin, UDP source hash, health, drain, weights,
adoption and SIGTERM; this file covers the other forwarding, scheduling and persistence
methods that need the daemon. One thing is tested below the daemon: persistence expiry. The
model's shortest timeout is 60 s, too long for this file, so
``test_persistence_entries_expire_after_their_timeout`` runs the engine alone with a 2 s timeout
(a Configuration built with ``model_construct``, as only the model forbids it) and checks that
the kernel forgets a client after its timeout; the daemon test checks that the entries it makes
carry the document's timeout.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest
from daemon import BasculeDaemon
from netns import Host, Topology
from waiting import wait_until

from bascule.engines.nftables.nft import persistence_set
from bascule.engines.nftables.rules import build_ruleset
from bascule.engines.nftables.shell import NftablesShell
from bascule.engines.nftables.view import L4Inputs
from bascule.model import Configuration, Persistence, PersistenceMethod

pytestmark = pytest.mark.integration

CHECK = {"type": "tcp", "interval": 1, "rise": 2, "fall": 2}

# Opens N keep-alive HTTP connections to the VIP, prints the server of each, then holds them
# open (one request a second, so they stay ESTABLISHED) until a line arrives on stdin.
HOLDER = r"""
import http.client, json, select, sys
vip, count = sys.argv[1], int(sys.argv[2])
conns, servers = [], []
for _ in range(count):
    c = http.client.HTTPConnection(vip, 80, timeout=5)
    c.request("GET", "/")
    r = c.getresponse(); r.read()
    conns.append(c); servers.append(r.getheader("X-Server"))
print(json.dumps(servers), flush=True)
errors = []
while not select.select([sys.stdin], [], [], 1.0)[0]:
    for c in conns:
        try:
            c.request("GET", "/"); c.getresponse().read()
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
print(json.dumps(errors), flush=True)
"""


# -- helpers ------------------------------------------------------------------------------------


def l4_service(topo: Topology, **fields: Any) -> dict[str, Any]:
    service: dict[str, Any] = {
        "name": "web",
        "address": topo.vip(),
        "port": 80,
        "protocol": "tcp",
        "mode": "l4",
        "forwarding": "nat",
        "scheduler": "round_robin",
        "check": CHECK,
        "real_servers": [{"address": rs.address, "port": 80} for rs in topo.real_servers],
    }
    service.update(fields)
    return service


@contextmanager
def running(topo: Topology) -> Iterator[BasculeDaemon]:
    daemon = BasculeDaemon(topo).start()
    try:
        yield daemon
    finally:
        daemon.stop(data_plane=True)  # SIGTERM would leave the tables for the next start
    assert "bascule" not in topo.run("lb", ["nft", "list", "tables"]).stdout


def wait_up(
    daemon: BasculeDaemon, hosts: list[Host], vs: str = "web", port: int = 80, timeout: float = 30
) -> None:
    """Until every one of ``hosts`` is up, one status call per look: with a DSR service each
    call takes seconds (nft 1.0.6 dumps the 65537-slot Maglev map to list anything)."""
    wanted = {f"{host.address}:{port}" for host in hosts}
    deadline = time.monotonic() + timeout
    while True:
        servers = service_status(daemon.status(), vs)["real_servers"]
        seen = {rs["key"]: rs["status"] for rs in servers if rs["key"] in wanted}
        if set(seen.values()) == {"up"} and _in_the_kernel(daemon, hosts, vs):
            return
        assert time.monotonic() < deadline, f"not all up after {timeout}s: {seen}"
        time.sleep(0.2)


def _in_the_kernel(daemon: BasculeDaemon, hosts: list[Host], vs: str) -> bool:
    """The status reports the checker's verdict at once; the driver's map update that puts
    a server in rotation follows it (after any apply in progress). Wait for the kernel's
    scheduling map to hold every server too, where the service has one."""
    topo = daemon.topology
    found = topo.run(
        "lb", ["nft", "-j", "list", "map", "ip", "bascule", f"sched/{vs}"], check=False
    )
    if found.returncode == 0:
        return {h.address for h in hosts} <= set(sequence_slots(topo, vs))
    maglev = topo.run("lb", ["nft", "list", "map", "netdev", "bascule", f"sched/{vs}"], check=False)
    if maglev.returncode == 0:  # DSR: every server holds slots of the Maglev table
        return all(f"goto rs/{vs}/{h.address}/" in maglev.stdout for h in hosts)
    return True  # fixed_weighting: no map to look at


def service_status(report: Mapping[str, Any], name: str = "web") -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in report["virtual_services"] if s["name"] == name)
    return found


def http(topo: Topology, *args: str) -> dict[str, Any]:
    result = topo.run_client("--url", f"http://{topo.vip()}/", *args)
    assert result["failures"] == 0, result["errors"]
    return result


def sources(addresses: tuple[str, ...]) -> list[str]:
    return [arg for address in addresses for arg in ("--source", address)]


def mac_of(topo: Topology, host: Host | str) -> str:
    links = json.loads(topo.run(host, ["ip", "-j", "link", "show", "dev", "eth0"]).stdout)
    return str(links[0]["address"]).lower()


def nft_stateless(topo: Topology) -> str:
    """The lb's whole ruleset (ours only) without counters: equal when nothing changed."""
    return topo.run("lb", ["nft", "-s", "list", "ruleset"]).stdout


def sequence_slots(topo: Topology, vs: str = "web") -> dict[str, int]:
    """Real server address -> its slots in the service's numgen sequence, as the kernel has it
    (the least-connection weights the driver derived from conntrack)."""
    listing = json.loads(
        topo.run("lb", ["nft", "-j", "list", "map", "ip", "bascule", f"sched/{vs}"]).stdout
    )
    slots: Counter[str] = Counter()
    for item in listing["nftables"]:
        for _, target in item.get("map", {}).get("elem", []):
            slots[target["goto"]["target"].split("/")[2]] += 1
    return dict(slots)


class Capture:
    """tcpdump inside one host, line-buffered to a file; ``lines()`` stops it and reads."""

    def __init__(self, topo: Topology, host: str, *expression: str, ethernet: bool = False):
        assert topo.workdir is not None
        self.topo = topo
        self.out = topo.workdir / f"tcpdump-{host}.txt"
        self.err = topo.workdir / f"tcpdump-{host}.err"
        argv = ["tcpdump", "-i", "eth0", "-Q", "in", "-nn", "-l", "-U"]
        argv += ["-e"] if ethernet else []
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = topo.popen(host, [*argv, *expression], stdout=out, stderr=err)
        deadline = time.monotonic() + 10
        while "listening on" not in self.err.read_text():
            assert self.proc.poll() is None, self.err.read_text()
            assert time.monotonic() < deadline, "tcpdump did not start"
            time.sleep(0.05)

    def lines(self, *, at_least: int) -> list[str]:
        """Once ``at_least`` packets are captured (the last ones may still be in flight when
        the traffic ends) or 10 s have passed, stop and return every line captured."""
        deadline = time.monotonic() + 10
        while len(self._captured()) < at_least and time.monotonic() < deadline:
            time.sleep(0.05)
        self.topo.stop(self.proc, timeout=3)
        return self._captured()

    def _captured(self) -> list[str]:
        return [line for line in self.out.read_text().splitlines() if line.strip()]


# -- DSR end to end -----------------------------------------------------------------------------


def test_dsr_through_the_daemon_scripted_servers_verify_and_status(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=3)
    vip = topo.vip()
    with running(topo) as daemon:
        daemon.apply({"virtual_services": [l4_service(topo, forwarding="dsr")]})
        script = daemon.cli("dsr", "script", "web").stdout
        assert f"{vip}/32 dev lo" in script and "arp_ignore" in script, script
        for server in topo.real_servers:  # exactly what a real server's admin would run
            topo.run(server, ["sh", "-c", script])
        for server in topo.real_servers:
            topo.start_real_server(server, bind="0.0.0.0")  # the VIP's packets too
        wait_up(daemon, topo.real_servers)

        lb_mac = mac_of(topo, "lb")
        server_macs = {mac_of(topo, server): server.name for server in topo.real_servers}
        at_lb = Capture(topo, "lb", "ip", "host", vip)
        at_client = Capture(
            topo, "client", "ip src host", vip, "and tcp src port 80", ethernet=True
        )
        result = http(topo, "--requests", "600")
        replies = at_client.lines(at_least=600 * 3)
        at_the_lb = at_lb.lines(at_least=600 * 3)

        counts = result["counts"]
        assert set(counts) == {"rs1", "rs2", "rs3"}, counts
        for count in counts.values():  # Maglev on the flow: about a third each
            assert count / 600 == pytest.approx(1 / 3, abs=0.1), counts
        assert result["seen_clients"] == {topo.client.address: 600}  # the client's own address
        # replies reach the client from the VIP, in frames from the real servers themselves
        assert len(replies) >= 600 * 3, replies[:5]
        repliers = Counter(line.split()[1] for line in replies)
        assert set(repliers) <= set(server_macs), (repliers, server_macs, lb_mac)
        assert {server_macs[mac] for mac in repliers} == {"rs1", "rs2", "rs3"}
        # the lb saw the clients' packets to the VIP, and not one packet from the VIP
        senders = Counter(line.split()[2].rsplit(".", 1)[0] for line in at_the_lb)
        assert senders[topo.client.address] >= 600 * 3, at_the_lb[:5]
        assert set(senders) == {topo.client.address}, senders

        report = daemon.status()
        web = service_status(report)
        assert web["status"] == "up", web
        assert web["packets"] >= 600 * 4
        new = 0
        for rs in web["real_servers"]:
            assert rs["total_connections"] > 0 and rs["packets"] > 0, rs
            assert rs["bytes_in"] > 0, rs
            assert rs["bytes_out"] == 0, rs  # the replies never pass the load balancer
            assert rs["current_connections"] == 0, rs  # DSR keeps no conntrack
            new += rs["total_connections"]
        assert new >= 600
        scheduling = report["engine"]["nftables"]["services"]["web"]
        assert scheduling["forwarding"] == "dsr"
        selection = "Maglev on jhash(source address, source port, destination port)"
        assert scheduling["selection"] == selection
        table = daemon.cli("status").stdout
        assert f"web: dsr, round_robin runs as {selection}" in table, table
        assert_counter_columns(table, web)

        verified = daemon.cli("dsr", "verify", "web", check=False)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "all checks passed" in verified.stdout

        # rs2 now answers ARP for the VIP: verify names it and fails
        rs2 = topo.real_servers[1]
        for setting in ("all", "eth0"):
            topo.run(rs2, ["sysctl", "-qw", f"net.ipv4.conf.{setting}.arp_ignore=0"])
        verified = daemon.cli("dsr", "verify", "web", check=False)
        assert verified.returncode == 1, verified.stdout + verified.stderr
        lines = verified.stdout.splitlines()
        [named] = [line for line in lines if f"{rs2.address}:80" in line]
        assert "FAIL" in named and "answers ARP for the VIP" in named, verified.stdout
        for other in (topo.real_servers[0], topo.real_servers[2]):
            [line] = [line for line in lines if f"{other.address}:80" in line]
            assert "FAIL" not in line, verified.stdout
        assert "some checks failed" in verified.stdout


def assert_counter_columns(table: str, web: Mapping[str, Any]) -> None:
    """The real servers' rows of the status table show their counters, as the JSON has them
    (columns are at least two spaces apart; a cell holds single spaces at most)."""
    lines = [line.rstrip() for line in table.splitlines()]
    start = lines.index("web: real servers")
    header = re.split(r"\s{2,}", lines[start + 1].strip())
    rows = [
        dict(zip(header, re.split(r"\s{2,}", line.strip()), strict=True))
        for line in lines[start + 2 : start + 2 + len(web["real_servers"])]
    ]
    shown = {row["real server"]: row for row in rows}
    for rs in web["real_servers"]:
        row = shown[rs["key"]]
        assert row["connections"] == str(rs["current_connections"]), row
        assert row["new"] == str(rs["total_connections"]), row
        assert row["packets"] == str(rs["packets"]), row
        assert row["bytes in"] == str(rs["bytes_in"]), row
        assert row["bytes out"] == str(rs["bytes_out"]), row


# -- NAT ------------------------------------------------------------------------------------------


def test_one_armed_nat_servers_see_the_load_balancer(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=3)  # no route back: the servers answer clients directly
    topo.start_real_servers()
    with running(topo) as daemon:
        daemon.apply({"virtual_services": [l4_service(topo, subnet_originating=True)]})
        wait_up(daemon, topo.real_servers)
        result = http(topo, "--requests", "90")
        assert result["counts"] == {"rs1": 30, "rs2": 30, "rs3": 30}
        assert result["seen_clients"] == {topo.lb.address: 90}


def test_least_connection_sends_new_connections_to_the_less_busy(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=3)
    topo.route_back_through_lb()
    topo.start_real_servers()
    rs1, rs2, rs3 = topo.real_servers
    held = 8
    with running(topo) as daemon:
        service = l4_service(topo, scheduler="least_connection")
        for rs in service["real_servers"][1:]:
            rs["state"] = "disabled"
        daemon.apply({"virtual_services": [service]})
        wait_up(daemon, [rs1])
        holder = topo.popen(
            "client",
            [sys.executable, "-c", HOLDER, topo.vip(), str(held)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            assert json.loads(holder.stdout.readline()) == ["rs1"] * held
            for rs in (rs2, rs3):
                daemon.cli("rs", "enable", "web", f"{rs.address}:80")
            wait_up(daemon, [rs2, rs3])
            servers = service_status(daemon.status())["real_servers"]
            active = {rs["key"]: rs["current_connections"] for rs in servers}
            assert active == {
                f"{rs1.address}:80": held,
                f"{rs2.address}:80": 0,
                f"{rs3.address}:80": 0,
            }

            # the driver's tick (once a second) turns conntrack's counts into weights
            def rs1_weighed_down() -> dict[str, int] | None:
                slots = sequence_slots(topo)
                return slots if slots.get(rs1.address, 0) * 5 < slots.get(rs2.address, 0) else None

            slots = wait_until("least-connection weights", rs1_weighed_down, timeout=15, poll=0.2)
            print("numgen slots with 8 held on rs1:", slots)
            result = http(topo, "--requests", "300")
            counts = result["counts"]
            print("least connection with 8 held on rs1:", counts)
            # weights 1000/9 : 1000 : 1000 -> rs1 about 5 %, the others about 47 % each
            assert counts.get("rs1", 0) <= 300 * 0.15, counts
            assert counts["rs2"] >= 300 * 0.35 and counts["rs3"] >= 300 * 0.35, counts
            # status --json: the new connections and the active ones per real server
            servers = service_status(daemon.status())["real_servers"]
            by_key = {rs["key"]: rs for rs in servers}
            assert by_key[f"{rs1.address}:80"]["current_connections"] == held
            assert by_key[f"{rs2.address}:80"]["total_connections"] == counts["rs2"]
        finally:
            out, err = holder.communicate("stop\n", timeout=30)
        assert json.loads(out.splitlines()[-1]) == [], err  # the held ones were never reset

        # nothing held any more: an even spread again
        wait_until("even weights", lambda: len(set(sequence_slots(topo).values())) == 1, poll=0.2)
        result = http(topo, "--requests", "90")
        assert result["counts"] == {"rs1": 30, "rs2": 30, "rs3": 30}


def test_persistence_source_ip_per_client_and_per_subnet(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=3, client_extra_addresses=6)
    topo.route_back_through_lb()
    topo.start_real_servers()
    clients = topo.client.extra_addresses
    persistence = {"method": "source_ip", "timeout": 60}
    with running(topo) as daemon:
        daemon.apply({"virtual_services": [l4_service(topo, persistence=persistence)]})
        wait_up(daemon, topo.real_servers)
        result = http(topo, "--requests", "60", *sources(clients))
        first: dict[str, str] = {}
        for address, outcome in result["per_source"].items():
            assert len(outcome["counts"]) == 1, (address, outcome)  # each client stays put
            first[address] = next(iter(outcome["counts"]))
        assert set(first) == set(clients)
        assert len(set(first.values())) == 3, first  # and the clients spread
        assert result["seen_clients"] == dict.fromkeys(clients, 10)
        # the kernel remembers each client for the document's timeout
        remembered = persistence_entries(topo)
        assert set(remembered) == set(clients), remembered
        assert set(remembered.values()) == {60}

        again = http(topo, "--requests", "30", *sources(clients))
        assert {a: next(iter(o["counts"])) for a, o in again["per_source"].items()} == first

        # source_mask 24: every client of 198.18.0.0/24 is one client, on one server
        masked = {**persistence, "source_mask": 24}
        daemon.apply({"virtual_services": [l4_service(topo, persistence=masked)]})
        result = http(topo, "--requests", "70", *sources((topo.client.address, *clients)))
        assert len(result["counts"]) == 1, result["per_source"]


def persistence_entries(topo: Topology) -> dict[str, int]:
    """Client address -> the timeout of its entry, over every persistence set of ours."""
    listing = json.loads(topo.run("lb", ["nft", "-j", "list", "sets", "ip"]).stdout)
    found: dict[str, int] = {}
    for item in listing["nftables"]:
        body = item.get("set")
        if not body or body.get("table") != "bascule":
            continue
        for element in body.get("elem", []):
            entry = element["elem"]
            found[entry["val"]] = entry["timeout"]
    return found


def test_persistence_entries_expire_after_their_timeout(
    make_topology: Callable[..., Topology],
) -> None:
    """Engine level (no daemon): a 2 s timeout, which the model refuses (minimum 60 s)."""
    topo = make_topology(real_servers=2, client_extra_addresses=2)
    topo.run("lb", ["ip", "address", "add", f"{topo.vip()}/32", "dev", "eth0"])
    topo.run("lb", ["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0"])
    topo.route_back_through_lb()
    topo.start_real_servers()
    document = {"virtual_services": [l4_service(topo, check={"type": "none"})]}
    config = Configuration.model_validate(document)
    short = Persistence.model_construct(
        **{**Persistence().model_dump(), "method": PersistenceMethod.source_ip, "timeout": 2}
    )
    vs = config.virtual_services[0].model_copy(update={"persistence": short})
    config = config.model_copy(update={"virtual_services": [vs]})
    engine = NftablesShell(netns=topo.lb.netns)
    asyncio.run(engine.apply(build_ruleset(config, L4Inputs())))
    try:
        a, b = topo.client.extra_addresses

        def server_of(source: str) -> str:
            counts = http(topo, "--requests", "1", "--source", source)["counts"]
            return str(next(iter(counts)))

        # round robin over two servers alternates: a gets one, b the other
        home = server_of(a)
        other = server_of(b)
        assert other != home
        assert [server_of(a) for _ in range(3)] == [home] * 3  # persistent meanwhile
        sets = [persistence_set(vs, rs) for rs in vs.real_servers]
        timers = [
            entry["elem"]
            for name in sets
            for item in json.loads(
                topo.run("lb", ["nft", "-j", "list", "set", "ip", "bascule", name]).stdout
            )["nftables"]
            if "set" in item
            for entry in item["set"].get("elem", [])
        ]
        assert sorted(t["val"] for t in timers) == [a, b] and {t["timeout"] for t in timers} == {2}

        wait_until(
            "the persistence entries expired",
            lambda: (
                not any(
                    "elements"
                    in topo.run("lb", ["nft", "list", "set", "ip", "bascule", name]).stdout
                    for name in sets
                )
            ),
            timeout=2 + 5,
            poll=0.2,
        )
        # forgotten: b is picked afresh (the next in the rotation, a's old server), then a,
        # which would have stayed on its server had its entry lived on
        assert server_of(b) == home
        assert server_of(a) == other
    finally:
        asyncio.run(engine.remove())


def test_fixed_weighting_all_to_the_highest_then_in_weight_order(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=3)
    topo.route_back_through_lb()
    procs = topo.start_real_servers()
    rs1, rs2, rs3 = topo.real_servers
    weights = {rs1.name: 1000, rs2.name: 3000, rs3.name: 2000}
    service = l4_service(
        topo,
        scheduler="fixed_weighting",
        real_servers=[
            {"address": rs.address, "port": 80, "weight": weights[rs.name]}
            for rs in topo.real_servers
        ],
    )
    with running(topo) as daemon:
        daemon.apply({"virtual_services": [service]})
        wait_up(daemon, topo.real_servers)
        assert http(topo, "--requests", "30")["counts"] == {"rs2": 30}
        standby = daemon.server_status("web", f"{rs1.address}:80")
        assert standby == "up"  # a standby server is healthy, not "down"

        topo.stop(procs[1])
        daemon.wait_status("web", f"{rs2.address}:80", "down", timeout=10)
        assert http(topo, "--requests", "20")["counts"] == {"rs3": 20}
        topo.stop(procs[2])
        daemon.wait_status("web", f"{rs3.address}:80", "down", timeout=10)
        assert http(topo, "--requests", "20")["counts"] == {"rs1": 20}

        topo.start_real_server(rs2)
        daemon.wait_status("web", f"{rs2.address}:80", "up", timeout=10)
        assert http(topo, "--requests", "20")["counts"] == {"rs2": 20}


# -- refused input --------------------------------------------------------------------------------


def test_bad_l4_input_is_refused_and_changes_nothing(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=3)
    topo.route_back_through_lb()
    topo.start_real_servers()
    rs1, rs2, _ = topo.real_servers
    web = l4_service(topo, extra_ports=["8000-8010"])
    dsr = l4_service(
        topo,
        name="dsr",
        address=topo.vip(101),
        forwarding="dsr",
        real_servers=[{"address": rs1.address, "port": 80}],
    )
    good = {"virtual_services": [web, dsr]}
    with running(topo) as daemon:
        daemon.apply(good)
        wait_up(daemon, topo.real_servers)
        wait_up(daemon, [rs1], vs="dsr")
        exported = daemon.cli("export").stdout
        rules = nft_stateless(topo)
        baseline = http(topo, "--requests", "30")["counts"]
        assert baseline == {"rs1": 10, "rs2": 10, "rs3": 10}

        def with_dsr(**fields: Any) -> dict[str, Any]:
            return {"virtual_services": [web, {**dsr, **fields}]}

        def with_web(**fields: Any) -> dict[str, Any]:
            return {"virtual_services": [{**web, **fields}, dsr]}

        udp = l4_service(
            topo,
            name="dns",
            port=53,
            protocol="udp",
            real_servers=[{"address": rs1.address, "port": 53}],
        )
        overlap = l4_service(topo, name="web2", port=9000, extra_ports=["8005-8020"])
        refused: list[tuple[str, dict[str, Any], list[str]]] = [
            (
                "dsr real server port differs from the VIP's",
                with_dsr(real_servers=[{"address": rs1.address, "port": 8080}]),
                ["virtual_services[1].real_servers[0].port", "must be the VIP's port 80"],
            ),
            (
                "active_cookie persistence on l4",
                with_web(persistence={"method": "active_cookie"}),
                ["virtual_services[0].persistence.method", "active_cookie needs mode l7"],
            ),
            (
                "overlapping port ranges of two l4 services",
                {"virtual_services": [web, dsr, overlap]},
                ["virtual_services[2].extra_ports[0]", "already used by virtual service 'web'"],
            ),
            (
                "dsr real server off every connected subnet",
                with_dsr(real_servers=[{"address": "198.19.5.5", "port": 80}]),
                ["dsr: DSR real server 198.19.5.5:80", "not on a directly connected subnet"],
            ),
            (
                "tcp check on a udp service",
                {"virtual_services": [web, dsr, {**udp, "check": CHECK}]},
                ["virtual_services[2].check.type", "a udp service is checked with icmp"],
            ),
        ]
        for what, document, words in refused:
            done = daemon.apply(document, check=False)
            said = done.stdout + done.stderr
            assert done.returncode != 0, (what, said)
            for word in words:
                assert word in said, (what, word, said)
            print(what, "->", said.strip())

        # the same through the one-object commands
        cli_refused = [
            (("rs", "add", "dsr", f"{rs2.address}:8080"), "must be the VIP's port 80"),
            (("vs", "set", "web", "persistence.method=active_cookie"), "needs mode l7"),
            (
                ("vs", "set", "dsr", f"address={topo.vip()}"),
                "already used by virtual service 'web'",
            ),
            (("rs", "add", "dsr", "198.19.5.5:80"), "not on a directly connected subnet"),
        ]
        for argv, words in cli_refused:
            done = daemon.cli(*argv, check=False)
            assert done.returncode != 0 and words in done.stderr, (argv, done.stderr)
            print(argv, "->", done.stderr.strip())

        assert daemon.cli("export").stdout == exported
        # A health check that timed out on a loaded machine takes a server out of the maps
        # for a while: wait for every server to be back, then the rules must be the same.
        wait_up(daemon, topo.real_servers)
        wait_up(daemon, [rs1], vs="dsr")
        assert nft_stateless(topo) == rules
        assert http(topo, "--requests", "30")["counts"] == baseline
        assert service_status(daemon.status())["status"] == "up"
