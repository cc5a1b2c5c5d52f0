"""Access lists through a real `bascule run`: real clients from allowed, denied and blocked
addresses against an l7 service (HAProxy), an l4 NAT service and an l4 DSR service.

The client namespace holds several addresses of 198.18.0.0/24; each request is sent from one
of them (client.py --source). A dropped packet never answers: a denied client's request times
out, an allowed one is served. A list's change refills its sets only: the filter table's and
the L4 table's rule handles stay, and HAProxy is not reloaded (its worker keeps its pid).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from daemon import BasculeDaemon
from netns import Topology
from waiting import wait_until

pytestmark = pytest.mark.integration

CHECK = {"type": "tcp", "interval": 1, "rise": 1, "fall": 2}
# one active server: the L4 maps hold one element (round robin's would hold 5040 numgen slots
# and DSR's 65537 Maglev slots, which make every status read slow on a loaded machine); how
# the traffic is spread is not what these tests are about
SCHEDULER = "fixed_weighting"


@contextmanager
def running(topo: Topology) -> Iterator[BasculeDaemon]:
    daemon = BasculeDaemon(topo).start(timeout=60)
    try:
        yield daemon
    finally:
        daemon.stop(data_plane=True)
    tables = topo.run("lb", ["nft", "list", "tables"]).stdout
    assert "bascule_filter" not in tables, tables


def services(topo: Topology) -> list[dict[str, Any]]:
    servers = [{"address": rs.address, "port": 80} for rs in topo.real_servers]
    allow = {"allow": ["office"]}
    return [
        {
            "name": "site",
            "address": topo.vip(),
            "port": 80,
            "check": CHECK,
            "real_servers": servers,
            "access": allow,
        },
        {
            "name": "nat",
            "address": topo.vip(),
            "port": 8080,
            "mode": "l4",
            "scheduler": SCHEDULER,
            "subnet_originating": True,
            "check": CHECK,
            "real_servers": servers,
            "access": allow,
        },
        {
            "name": "fast",
            "address": topo.vip(101),
            "port": 80,
            "mode": "l4",
            "scheduler": SCHEDULER,
            "forwarding": "dsr",
            "check": CHECK,
            "real_servers": servers,
            "access": allow,
        },
    ]


def document(topo: Topology, office: list[str], blocked: list[str]) -> dict[str, Any]:
    return {
        "access_lists": {"office": {"addresses": office}, "blocked": {"addresses": blocked}},
        "block": ["blocked"],
        "virtual_services": services(topo),
    }


URLS = {"site": "http://{vip}/", "nat": "http://{vip}:8080/", "fast": "http://{vip101}/"}


def served(topo: Topology, source: str) -> dict[str, bool]:
    """Service -> whether two requests from ``source`` were both answered."""
    found = {}
    for name, url in URLS.items():
        result = topo.run_client(
            "--url",
            url.format(vip=topo.vip(), vip101=topo.vip(101)),
            "--source",
            source,
            "--requests",
            "2",
            "--timeout",
            "1",
        )
        found[name] = result["failures"] == 0
        if result["failures"] not in (0, 2):
            raise AssertionError(f"{name} from {source}: half served {result}")
    return found


def handles(topo: Topology, family: str, table: str) -> dict[int, str]:
    done = topo.run("lb", ["nft", "-j", "list", "table", family, table])
    return {
        item["rule"]["handle"]: item["rule"]["chain"]
        for item in json.loads(done.stdout)["nftables"]
        if "rule" in item
    }


def worker_pid(daemon: BasculeDaemon) -> str:
    info = daemon.haproxy("show info")
    return next(line for line in info.splitlines() if line.startswith("Pid:"))


def test_lists_allow_deny_and_block_on_l7_nat_and_dsr(
    make_topology: Callable[..., Topology], tmp_path: Any
) -> None:
    topo = make_topology(real_servers=2, client_extra_addresses=3)
    me = topo.client.address
    blocked, colleague, stranger = topo.client.extra_addresses
    with running(topo) as daemon:
        daemon.apply(document(topo, office=[me, colleague], blocked=[blocked]))
        script = daemon.cli("dsr", "script", "fast").stdout
        for server in topo.real_servers:
            topo.run(server, ["sh", "-c", script])
            topo.start_real_server(server, bind="0.0.0.0")
        for name in URLS:
            for rs in topo.real_servers:
                daemon.wait_status(name, f"{rs.address}:80", "up", timeout=90)

        everywhere = {name: True for name in URLS}
        nowhere = {name: False for name in URLS}
        assert served(topo, me) == everywhere
        assert served(topo, colleague) == everywhere
        assert served(topo, stranger) == nowhere  # in no allowed list
        assert served(topo, blocked) == nowhere  # in the global block
        # the block holds for every VIP, whatever the port or protocol
        ping = topo.run(
            "client", ["ping", "-c", "1", "-W", "1", "-I", blocked, topo.vip()], check=False
        )
        assert ping.returncode != 0
        ping = topo.run("client", ["ping", "-c", "1", "-W", "1", "-I", me, topo.vip()], check=False)
        assert ping.returncode == 0, ping.stdout

        status = daemon.status()["engine"]["filter"]
        assert status["lists"]["blocked"]["dropped_packets"] >= 3 * 2, status
        assert status["lists"]["office"]["entries"] == 2
        for name in URLS:
            assert status["services"][name]["denied_packets"] >= 2, status
        metrics = daemon.metrics()
        assert 'bascule_access_list_dropped_packets_total{list="blocked"}' in metrics
        assert 'bascule_virtual_service_denied_packets_total{virtual_service="fast"}' in metrics
        listed = {item["name"]: item for item in daemon.cli_json("acl", "show")["items"]}
        assert listed["blocked"]["dropped_packets"] >= 6
        assert listed["blocked"]["used_by"] == ["block"]
        assert listed["office"]["used_by"] == ["site.allow", "nat.allow", "fast.allow"]

        # a list's change: its sets refilled, no rule touched, no reload
        filter_rules = handles(topo, "inet", "bascule_filter")
        nat_rules = handles(topo, "ip", "bascule")
        pid = worker_pid(daemon)
        office = tmp_path / "office.txt"
        office.write_text(f"# the office\n{me}\n\n{colleague}   # Ann\n{stranger}/32\n")
        answer = daemon.cli("acl", "import", "office", str(office)).stdout
        assert "filter:" in answer and "haproxy:" not in answer, answer
        assert "nftables:" not in answer, answer
        assert served(topo, stranger) == everywhere
        assert served(topo, blocked) == nowhere
        assert handles(topo, "inet", "bascule_filter") == filter_rules
        assert handles(topo, "ip", "bascule") == nat_rules
        assert worker_pid(daemon) == pid
        assert daemon.cli_json("acl", "show", "office")["file"] == "office.txt"

        # a bad file: every bad line by its number, nothing changed
        head = daemon.cli_json("status")["revision"]
        bad = tmp_path / "bad.txt"
        bad.write_text(f"{me}\nnot-an-address\n198.18.0.0/16\n198.18.7.1/24\n")
        refused = daemon.cli("acl", "import", "office", str(bad), check=False)
        assert refused.returncode != 0
        said = refused.stdout + refused.stderr
        for line in ("line 2", "line 3", "line 4"):
            assert line in said, said
        assert daemon.cli_json("status")["revision"] == head
        assert served(topo, stranger) == everywhere

        # allow empty again: everyone but the blocked
        opened = document(topo, office=[me], blocked=[blocked])
        for service in opened["virtual_services"]:
            service["access"] = {"allow": [], "deny": []}
        daemon.apply(opened)
        wait_until("the stranger is served", lambda: served(topo, stranger) == everywhere)
        assert served(topo, blocked) == nowhere

        # the global block from the CLI: unblocked, the list's client is served everywhere;
        # blocked again, nowhere; each a set change of the filter alone
        answer = daemon.cli("acl", "unblock", "blocked").stdout
        assert "filter:" in answer and "haproxy:" not in answer, answer
        wait_until("the blocked client is served", lambda: served(topo, blocked) == everywhere)
        listed = {item["name"]: item for item in daemon.cli_json("acl", "show")["items"]}
        assert listed["blocked"]["blocked"] is False and listed["blocked"]["used_by"] == []
        daemon.cli("acl", "block", "blocked")
        wait_until("the blocked client is dropped", lambda: served(topo, blocked) == nowhere)
        assert daemon.cli_json("export")["document"]["block"] == ["blocked"]


def test_no_filtering_no_table(make_topology: Callable[..., Topology]) -> None:
    topo = make_topology(real_servers=1)
    topo.start_real_servers()
    with running(topo) as daemon:
        service = services(topo)[0]
        del service["access"]
        daemon.apply({"virtual_services": [service]})
        tables = topo.run("lb", ["nft", "list", "tables"]).stdout
        assert "bascule_filter" not in tables
        daemon.apply(
            {
                "access_lists": {"b": {"addresses": ["198.18.9.9"]}},
                "block": ["b"],
                "virtual_services": [service],
            }
        )
        assert "bascule_filter" in topo.run("lb", ["nft", "list", "tables"]).stdout
        daemon.apply({"virtual_services": [service]})
        assert "bascule_filter" not in topo.run("lb", ["nft", "list", "tables"]).stdout
        result = topo.run_client("--url", f"http://{topo.vip()}/", "--requests", "3")
        assert result["failures"] == 0, result
