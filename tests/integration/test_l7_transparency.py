"""L7 transparency end to end (issue 12): ``transparent: true`` with TPROXY.

The real server routes the clients' addresses back through the load balancer (the setup the
docs require); with transparency on it sees the client's own address (198.18.0.10) as the
source of the connection, with it off the load balancer's. Bascule sets the kernel plumbing
up (nftables table ``inet bascule_tproxy``, a policy rule and a local route) with the first
transparent service and removes it with the last; a daemon killed and started again finds it
in place and keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from daemon import BasculeDaemon
from netns import Topology
from waiting import wait_until

from bascule.engines.haproxy.transparency import RULE_PRIORITY, TABLE

pytestmark = pytest.mark.integration

CHECK = {"type": "http", "path": "/health", "interval": 1, "rise": 1, "fall": 1}


def service(topology: Topology, transparent: bool) -> dict[str, Any]:
    return {
        "virtual_services": [
            {
                "name": "web",
                "address": topology.vip(),
                "port": 80,
                "transparent": transparent,
                "check": CHECK,
                "real_servers": [{"address": topology.real_servers[0].address, "port": 80}],
            }
        ]
    }


def plumbing(topology: Topology) -> tuple[bool, bool]:
    """Whether the lb holds Bascule's nft table, and its policy rule."""
    table = topology.run("lb", ["nft", "list", "table", "inet", TABLE], check=False)
    rules = json.loads(topology.run("lb", ["ip", "-j", "-4", "rule", "show"]).stdout)
    return table.returncode == 0, any(r.get("priority") == RULE_PRIORITY for r in rules)


def test_the_real_server_sees_the_client_only_with_transparency(
    make_topology: Callable[..., Topology],
) -> None:
    topology = make_topology(real_servers=1)
    topology.route_back_through_lb()
    topology.start_real_servers()
    daemon = BasculeDaemon(topology).start()
    url = f"http://{topology.vip()}/echo"

    def source() -> str:
        done = topology.run("client", ["curl", "-sS", "--max-time", "5", url], check=False)
        assert done.returncode == 0, done.stderr
        seen: str = json.loads(done.stdout)["client"]
        return seen

    def up() -> bool:
        return bool(daemon.status()["virtual_services"][0]["up"] == 1)

    def warning() -> str | None:
        found: str | None = daemon.status()["virtual_services"][0]["real_servers"][0]["warning"]
        return found

    try:
        daemon.apply(service(topology, transparent=True))
        assert plumbing(topology) == (True, True)
        wait_until("web up (checks from the lb's own address)", up, timeout=20)
        # the server is on the lb's own subnet: until traffic shows it routes back, it is
        # told that its default route must point through the load balancer
        static = warning()
        assert static is not None and "default route must point back" in static, static
        assert source() == topology.client.address
        wait_until("the warning goes once the clients' connections work",
                   lambda: warning() is None, timeout=10)  # fmt: skip
        # the daemon dies: traffic keeps its plumbing; a new daemon adopts it as it is
        daemon.kill()
        assert plumbing(topology) == (True, True)
        assert source() == topology.client.address
        daemon.start()
        assert plumbing(topology) == (True, True)
        assert source() == topology.client.address
        daemon.apply(service(topology, transparent=False))
        assert plumbing(topology) == (False, False)
        wait_until("web up", up, timeout=20)
        assert source() == topology.lb.address
    finally:
        daemon.terminate()


def test_a_server_that_does_not_route_back_is_warned_about(
    make_topology: Callable[..., Topology],
) -> None:
    """Transparency on, but the real server answers the client directly (no route back
    through the load balancer): its checks pass, the clients' connections fail, and the
    status (API, ``bascule status``) and the log say why."""
    topology = make_topology(real_servers=1)  # no route_back_through_lb
    topology.start_real_servers()
    daemon = BasculeDaemon(topology).start()
    key = f"{topology.real_servers[0].address}:80"
    document = service(topology, transparent=True)
    document["virtual_services"][0]["timeouts"] = {"connect": 1}
    url = f"http://{topology.vip()}/"

    def warning() -> str | None:
        rs = daemon.status()["virtual_services"][0]["real_servers"][0]
        found: str | None = rs.get("warning")
        return found

    try:
        daemon.apply(document)
        daemon.wait_status("web", key, "up", timeout=20)
        before = warning()  # on the lb's subnet: the static advice, before any traffic
        assert before is not None and "default route must point back" in before, before
        failed = topology.run("client", ["curl", "-sS", "--max-time", "8", url], check=False)
        assert "503" in failed.stdout, failed  # HAProxy could not connect, retries included
        passive = "does not route its replies back through the load balancer"

        def failing() -> str | None:
            found = warning()
            return found if found is not None and passive in found else None

        message = wait_until("the status warns of the failures", failing, timeout=20)
        assert "transparent: false" in message
        assert daemon.server_status("web", key) == "up"  # the checks still pass
        shown = daemon.cli("status").stdout
        assert f"web {key}: transparent:" in " ".join(shown.split())
        wait_until("the log warns", lambda: "real server warning" in daemon.log(), timeout=10)
        # with transparency off the same server serves, and the warning is gone
        daemon.apply(service(topology, transparent=False))
        done = topology.run("client", ["curl", "-sS", "--max-time", "8", url], check=False)
        assert done.returncode == 0, done.stderr
        assert warning() is None
    finally:
        daemon.terminate()
