"""Persistence entries expire after the document's `timeout`, end to end through the daemon.

The model's shortest timeout is 60 s, so this file waits about a minute once: an l7 service
(HAProxy stick table) and an l4 service (nftables set) are both given `source_ip` persistence
with `timeout: 60`, a client is pinned on each, and after a minute without traffic both
entries are gone, as `bascule persistence show` and the kernel's sets report them.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from daemon import BasculeDaemon
from netns import Topology
from waiting import wait_until

pytestmark = pytest.mark.integration

TIMEOUT = 60
CHECK = {"type": "tcp", "interval": 1, "timeout": 1, "rise": 1, "fall": 2}


def services(topology: Topology) -> list[dict[str, Any]]:
    servers = [{"address": rs.address, "port": 80} for rs in topology.real_servers]
    persistence = {"method": "source_ip", "timeout": TIMEOUT}
    return [
        {
            "name": "web7",
            "address": topology.vip(),
            "port": 80,
            "type": "http",
            "persistence": persistence,
            "check": CHECK,
            "real_servers": servers,
        },
        {
            "name": "web4",
            "address": topology.vip(),
            "port": 8080,
            "mode": "l4",
            "forwarding": "nat",
            "subnet_originating": True,  # one-armed: the servers need no route back
            "persistence": persistence,
            "check": CHECK,
            "real_servers": servers,
        },
    ]


def l7_entries(daemon: BasculeDaemon) -> dict[str, Any]:
    answer = daemon.cli_json("persistence", "show", "web7")
    return {entry["key"]: entry for entry in answer["entries"]}


def l4_entries(topology: Topology) -> dict[str, int]:
    listing = json.loads(topology.run("lb", ["nft", "-j", "list", "sets", "ip"]).stdout)
    found: dict[str, int] = {}
    for item in listing["nftables"]:
        body = item.get("set")
        if body and body.get("table") == "bascule":
            for element in body.get("elem", []):
                found[element["elem"]["val"]] = element["elem"]["timeout"]
    return found


def test_l7_and_l4_entries_expire_after_their_timeout(topology: Topology) -> None:
    topology.start_real_servers()
    daemon = BasculeDaemon(topology).start()
    try:
        daemon.apply({"virtual_services": services(topology)})
        topology.wait_tcp("client", topology.vip(), 80)
        wait_until(
            "every real server up",
            lambda: all(
                rs["status"] == "up"
                for vs in daemon.status()["virtual_services"]
                for rs in vs["real_servers"]
            ),
            20,
        )
        client = topology.client.address
        # Each entry lives `TIMEOUT` after the last request to its service, which happened
        # between the start and the end of that service's client run: the run's start is a
        # lower bound of the expiry, its end an upper one (a loaded machine makes runs slow).
        runs: dict[int, tuple[float, float]] = {}
        for port in (80, 8080):
            started = time.monotonic()
            result = topology.run_client(
                "--url", f"http://{topology.vip()}:{port}/", "--requests", "6"
            )
            runs[port] = (started, time.monotonic())
            assert result["failures"] == 0, result["errors"]
            assert len(result["counts"]) == 1, result  # persistent: one server for 6 requests

        l7 = l7_entries(daemon)
        assert client in l7 and 0 < l7[client]["expires_in_s"] <= TIMEOUT, l7
        l4 = l4_entries(topology)
        assert l4.get(client) == TIMEOUT, l4

        # no traffic now: each entry lives until shortly before its timeout, then goes
        entries = {80: lambda: l7_entries(daemon), 8080: lambda: l4_entries(topology)}
        present = {80: True, 8080: True}
        while any(present.values()):
            for port, (started, ended) in runs.items():
                if not present[port]:
                    continue
                now = time.monotonic()
                present[port] = client in entries[port]()
                if now < started + TIMEOUT - 2:
                    assert present[port], f"the entry of port {port} expired before its timeout"
                elif present[port] and now > ended + TIMEOUT + 8:
                    raise AssertionError(f"the entry of port {port} outlived its timeout")
            time.sleep(0.5)
    finally:
        daemon.terminate()
