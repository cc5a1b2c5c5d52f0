"""Per-client limits of an l7 service through a real `bascule run`, tripped by real floods.

wrk floods the VIP from a namespace of its own (rs2's, not a real server of the service)
while a second client, in the client namespace, asks at a modest rate and stays served; the
flooding client gets 429 with Retry-After, and is served again once it slows down. A client
of an exempt list floods without a single refusal.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable

import pytest
from daemon import BasculeDaemon
from netns import Topology
from waiting import wait_until

pytestmark = pytest.mark.integration

RATE = 20

# Up to N requests one after the other (a new connection each) from one process, so a
# loaded machine's interpreter start-ups do not spread them below the rate; stops at the
# first refusal. One line per request: the status and the Retry-After header.
REQUESTS = r"""
import http.client, sys
for _ in range(int(sys.argv[2])):
    c = http.client.HTTPConnection(sys.argv[1], 80, timeout=5)
    c.request("GET", "/")
    r = c.getresponse(); r.read(); c.close()
    print(r.status, r.getheader("Retry-After"), flush=True)
    if r.status != 200:
        break
"""


def test_per_client_request_rate_trips_releases_and_spares_others(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=2, client_extra_addresses=1)
    rs1, flooder = topo.real_servers
    topo.start_real_server(rs1)
    exempt = topo.client.extra_addresses[0]
    daemon = BasculeDaemon(topo).start(timeout=60)
    try:
        daemon.apply(
            {
                "access_lists": {"office": {"addresses": [exempt]}},
                "virtual_services": [
                    {
                        "name": "site",
                        "address": topo.vip(),
                        "port": 80,
                        "check": {"type": "tcp", "interval": 1, "rise": 1},
                        "real_servers": [{"address": rs1.address, "port": 80}],
                        "limits": {
                            "per_client": {"requests_per_second": RATE},
                            "response": {"code": 429, "retry_after": 7},
                            "exempt": ["office"],
                        },
                    }
                ],
            }
        )
        daemon.wait_status("site", f"{rs1.address}:80", "up", timeout=20)
        url = f"http://{topo.vip()}/"
        wrk = topo.popen(flooder, ["wrk", "-t1", "-c8", "-d4s", url], stdout=-1, text=True)

        # the flood is under way, and seen: the flooder is the busiest client, limited
        def limited() -> bool:
            shown = daemon.cli_json("limits", "show", "site")["clients"]
            return bool(shown) and shown[0] == {
                **shown[0],
                "client": flooder.address,
                "limited": True,
            }

        wait_until("the flooder is shown limited", limited, timeout=10)
        calm = topo.run_client("--url", url, "--rate", "5", "--duration", "3")
        out, _ = wrk.communicate(timeout=60)
        total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        refused = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        print(out)
        assert refused is not None and int(refused.group(1)) > total * 0.5, out
        assert calm["failures"] == 0 and calm["ok"] >= 10, calm

        # refused with the configured answer while over the rate, served again after
        def requests(count: int) -> list[str]:
            done = topo.run(flooder, [sys.executable, "-c", REQUESTS, topo.vip(), str(count)])
            return done.stdout.strip().splitlines()

        burst = requests(RATE * 5)
        assert "429 7" in burst, burst
        wait_until("the flooder is served again", lambda: requests(1) == ["200 None"], timeout=10)

        # an exempt client floods and is never refused
        flood = topo.run_client(
            "--url",
            url,
            "--source",
            exempt,
            "--requests",
            "300",
            "--concurrency",
            "4",
            "--keepalive",
        )
        assert flood["failures"] == 0, flood["statuses"]
    finally:
        daemon.stop(data_plane=True)


def test_l4_nat_per_client_connection_rate_drops_the_flooder_only(
    make_topology: Callable[..., Topology],
) -> None:
    """The kernel's meters on an l4 NAT service: a client opening connections faster than
    its rate has its new connections dropped (counted in ``limited/<service>``), a calm
    client and an exempt one are served throughout, and the flooder is served once it
    slows down."""
    topo = make_topology(real_servers=1, client_extra_addresses=2)
    (rs1,) = topo.real_servers
    topo.route_back_through_lb()
    topo.start_real_server(rs1)
    calm, exempt = topo.client.extra_addresses
    daemon = BasculeDaemon(topo).start(timeout=60)
    try:
        daemon.apply(
            {
                "access_lists": {"office": {"addresses": [exempt]}},
                "virtual_services": [
                    {
                        "name": "fast",
                        "address": topo.vip(),
                        "port": 80,
                        "mode": "l4",
                        "forwarding": "nat",
                        "check": {"type": "tcp", "interval": 1, "rise": 1},
                        "real_servers": [{"address": rs1.address, "port": 80}],
                        "limits": {
                            "per_client": {"connections_per_second": RATE},
                            "exempt": ["office"],
                        },
                    }
                ],
            }
        )
        daemon.wait_status("fast", f"{rs1.address}:80", "up", timeout=20)
        url = f"http://{topo.vip()}/"

        def limited_packets() -> int:
            listing = topo.run(
                "lb", ["nft", "list", "counter", "inet", "bascule_filter", "limited/fast"]
            ).stdout
            found = re.search(r"packets (\d+)", listing)
            return int(found.group(1)) if found else 0

        # a flood of new connections from the client's own address, a calm client beside it
        flood = topo.start_client(
            "--url", url, "--duration", "4", "--concurrency", "16", "--timeout", "0.5"
        )
        served = topo.run_client(
            "--url", url, "--source", calm, "--rate", "4", "--duration", "3", "--timeout", "5"
        )
        out, _ = flood.communicate(timeout=60)
        flooded = json.loads(out.strip().splitlines()[-1])
        assert served["failures"] == 0 and served["ok"] >= 8, served
        assert flooded["failures"] > 0, flooded
        # what got through is about the rate (plus the meter's burst), never the flood
        assert flooded["ok"] <= (RATE + 5) * flooded["elapsed"] * 1.5 + 10, flooded
        assert limited_packets() > 0

        # slowed down, the flooder is served again
        wait_until(
            "the flooder is served again",
            lambda: topo.run_client("--url", url, "--timeout", "2")["failures"] == 0,
            timeout=10,
        )
        # an exempt client opens connections as fast as it can and is never dropped
        before = limited_packets()
        fast = topo.run_client(
            "--url", url, "--source", exempt, "--requests", "200", "--concurrency", "8"
        )
        assert fast["failures"] == 0 and fast["ok"] == 200, fast
        assert limited_packets() == before
    finally:
        daemon.stop(data_plane=True)
