"""Per-client limits of an l7 service through a real `bascule run`, tripped by real floods.

wrk floods the VIP from a namespace of its own (rs2's, not a real server of the service)
while a second client, in the client namespace, asks at a modest rate and stays served; the
flooding client gets 429 with Retry-After, and is served again once it slows down. A client
of an exempt list floods without a single refusal.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

import pytest
from daemon import BasculeDaemon
from netns import Topology
from waiting import wait_until

pytestmark = pytest.mark.integration

RATE = 20

ONE_REQUEST = r"""
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], 80, timeout=5)
c.request("GET", "/")
r = c.getresponse(); r.read()
print(r.status, r.getheader("Retry-After"))
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
        def one() -> str:
            done = topo.run(flooder, [sys.executable, "-c", ONE_REQUEST, topo.vip()])
            return done.stdout.strip()

        burst = [one() for _ in range(RATE + 10)]
        assert "429 7" in burst, burst
        wait_until("the flooder is served again", lambda: one() == "200 None", timeout=10)

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
