"""``dsr verify`` on the wire: real servers set up by the commands ``dsr script`` prints.

No daemon: the DSR check needs no running engine (it sends what the DSR rules would send),
so the test runs the daemon's own ``verify_service`` inside the lb namespace, where the VIP
198.18.0.100 sits on eth0 as the daemon would put it. The real servers:

    rs1  set up by the Linux script, listening on :80         -> passes
    rs2  the script, then arp_ignore back to 0                -> answers ARP for the VIP
    rs3  the script's sysctls but no VIP on lo, listening     -> the test connection fails
    rs4  the script, nothing listening                        -> the server refuses (RST)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import pytest
from netns import Topology

from bascule.dsr.script import linux_script
from bascule.model import parse_document

pytestmark = pytest.mark.integration

VERIFY = r"""
import asyncio, dataclasses, json, sys
from bascule.dsr.verify import verify_service
from bascule.model import parse_document
reports = []
for document in json.loads(sys.argv[1]):
    report = asyncio.run(verify_service(parse_document(document).virtual_services[0]))
    reports.append(dict(dataclasses.asdict(report), ok=report.ok))
print(json.dumps(reports))
"""


def dsr_document(topo: Topology, hosts: list[str]) -> dict[str, Any]:
    servers = [{"address": topo.host(name).address, "port": 80} for name in hosts]
    return {
        "virtual_services": [
            {
                "name": "web",
                "address": topo.vip(),
                "port": 80,
                "mode": "l4",
                "forwarding": "dsr",
                "real_servers": servers,
            }
        ]
    }


def test_verify_passes_the_scripted_server_and_names_each_fault(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=4)
    everyone = dsr_document(topo, ["rs1", "rs2", "rs3", "rs4"])
    script = linux_script(parse_document(everyone).virtual_services[0])
    topo.run("lb", ["ip", "address", "add", f"{topo.vip()}/32", "dev", "eth0"])
    for server in topo.real_servers:
        topo.run(server, ["sh", "-c", script])
    vip_on_lo = topo.run("rs1", ["ip", "-j", "address", "show", "dev", "lo"]).stdout
    assert f'"{topo.vip()}"' in vip_on_lo
    for name in ("rs1", "rs2", "rs3"):
        topo.start_real_server(name, bind="0.0.0.0")

    [good] = verify(topo, dsr_document(topo, ["rs1"]))
    assert good["ok"], json.dumps(good, indent=1)
    assert good["interface"] == "eth0"
    [rs1] = good["real_servers"]
    assert rs1["arp_ok"] and rs1["connect_ok"], rs1
    assert rs1["connect_detail"] == f"SYN-ACK from {topo.vip()}:80"

    topo.run("rs2", ["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=0"])
    topo.run("rs2", ["sysctl", "-qw", "net.ipv4.conf.eth0.arp_ignore=0"])
    topo.run("rs3", ["ip", "address", "del", f"{topo.vip()}/32", "dev", "lo"])
    # the lb's neighbour table learns rs2, so a foreign claimant of the VIP gets a name
    topo.run("lb", ["ping", "-c", "1", "-W", "2", topo.host("rs2").address])
    faults, foreign = verify(topo, everyone, dsr_document(topo, ["rs1"]))

    assert not faults["ok"]
    assert faults["others"] == []
    checks = {check["address"]: check for check in faults["real_servers"]}
    rs = {name: checks[topo.host(name).address] for name in ("rs1", "rs2", "rs3", "rs4")}
    assert rs["rs1"]["arp_ok"] and rs["rs1"]["connect_ok"], rs["rs1"]
    assert not rs["rs2"]["arp_ok"], rs["rs2"]
    assert "answers ARP for the VIP" in rs["rs2"]["arp_detail"]
    assert rs["rs2"]["mac"] in rs["rs2"]["arp_detail"]
    assert rs["rs2"]["connect_ok"], rs["rs2"]  # it holds the VIP and listens
    assert rs["rs3"]["arp_ok"], rs["rs3"]
    assert not rs["rs3"]["connect_ok"]
    assert rs["rs3"]["connect_detail"].startswith("no answer to a SYN"), rs["rs3"]
    assert rs["rs4"]["arp_ok"], rs["rs4"]
    assert not rs["rs4"]["connect_ok"]
    assert rs["rs4"]["connect_detail"].startswith(f"RST from {topo.vip()}:80"), rs["rs4"]

    # rs2 is not a real server of this one, but still claims its VIP on the segment
    assert not foreign["ok"]
    assert foreign["others"] == [{"mac": rs["rs2"]["mac"], "addresses": [topo.host("rs2").address]}]
    # every probe was reset: no half-open connection is left on the servers
    for name in ("rs1", "rs2"):
        left = topo.run(name, ["ss", "-Htn", "state", "syn-recv"]).stdout
        assert left.strip() == "", (name, left)


def verify(topo: Topology, *documents: dict[str, Any]) -> list[dict[str, Any]]:
    """verify_service in the lb namespace, on the first service of each document."""
    done = topo.run("lb", [sys.executable, "-c", VERIFY, json.dumps(documents)], timeout=60)
    reports: list[dict[str, Any]] = json.loads(done.stdout)
    return reports
