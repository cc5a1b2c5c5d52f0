"""Real servers added to and removed from a running HTTP service without reloading HAProxy.

A real ``bascule run`` in the lb namespace, real servers and clients in theirs: a real server
added or removed through the API reaches (or leaves) the traffic while the HAProxy worker stays
the same process (engines/haproxy/dynamic.py); a service with active-cookie persistence, which
2.6's dynamic servers do not support, still reloads; the next full reload keeps every server's
state; and a runtime command HAProxy refuses falls back to a reload.
"""

from __future__ import annotations

from typing import Any

import pytest
from daemon import BasculeDaemon
from netns import Topology
from waiting import wait_until

from bascule.cli.client import BasculeClient

pytestmark = pytest.mark.integration
# The runtime path is off by default (settings.py haproxy_dynamic_servers: HAProxy 2.6's
# dynamic servers reuse no idle connection); these tests turn it on.
DYNAMIC = {"BASCULE_HAPROXY_DYNAMIC_SERVERS": "1"}

CHECK = {"type": "http", "path": "/health", "interval": 1, "rise": 1, "fall": 2}
RUNTIME = "(real servers at runtime, no reload)"


def key(topology: Topology, n: int) -> str:
    return f"{topology.real_servers[n - 1].address}:80"


def service(topology: Topology, name: str, port: int, servers: tuple[int, ...]) -> dict[str, Any]:
    return {
        "name": name,
        "address": topology.vip(),
        "port": port,
        "type": "http",
        "scheduler": "weighted_round_robin",
        "check": CHECK,
        "real_servers": [
            {"address": topology.real_servers[n - 1].address, "port": 80} for n in servers
        ],
    }


def api(daemon: BasculeDaemon) -> BasculeClient:
    return BasculeClient(daemon.data_dir / "bascule.sock", author="dynamic-servers-test@api")


def counts(topology: Topology, requests: int, port: int = 80) -> dict[str, int]:
    result = topology.run_client(
        "--url", f"http://{topology.vip()}:{port}/", "--requests", str(requests), "--new-connection"
    )
    assert result["failures"] == 0, result["errors"]
    return dict(result["counts"])


def servers_of(daemon: BasculeDaemon, vs: str) -> dict[str, dict[str, Any]]:
    with api(daemon) as client:
        services = client.status()["virtual_services"]
    return {rs["key"]: rs for s in services if s["name"] == vs for rs in s["real_servers"]}


def haproxy_states(daemon: BasculeDaemon, backend: str) -> dict[str, tuple[str, str]]:
    """``show servers state``: each server's (admin state, user weight) columns."""
    rows = daemon.haproxy(f"show servers state {backend}").splitlines()[2:]
    return {f[3]: (f[6], f[7]) for f in (row.split() for row in rows) if len(f) > 7}


def start(topology: Topology, document: dict[str, Any]) -> BasculeDaemon:
    daemon = BasculeDaemon(topology, env=DYNAMIC).start()
    try:
        with api(daemon) as client:
            assert client.put_config(document, message="initial")["applied"]
        topology.wait_tcp("client", topology.vip(), 80)
    except BaseException:
        stop(daemon)
        raise
    return daemon


def stop(daemon: BasculeDaemon) -> None:
    try:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.terminate()
    finally:
        daemon.stop_haproxy()


def test_servers_come_and_go_without_a_reload_and_a_reload_keeps_their_states(
    make_topology: Any,
) -> None:
    topology = make_topology(real_servers=4)
    topology.start_real_servers()
    rs = {n: key(topology, n) for n in range(1, 5)}
    daemon = start(topology, {"virtual_services": [service(topology, "web", 80, (1, 2, 3))]})
    try:
        for n in (1, 2, 3):
            daemon.wait_status("web", rs[n], "up")
        workers = daemon.worker_pids()
        with api(daemon) as client:
            added = client.add_real_server(
                "web", {"address": topology.real_servers[3].address, "port": 80, "weight": 3000}
            )
            assert added["applied"] and not added["reloads"], added
            assert added["actions"] == [f"haproxy: add web/{rs[4]} {RUNTIME}"], added
            assert daemon.worker_pids() == workers
            daemon.wait_status("web", rs[4], "up")
            # the weights of the pool were scaled again at runtime: 3:1:1:1
            wait_until(
                "rs4's weight of 3",
                lambda: servers_of(daemon, "web")[rs[4]]["engine_weight"] == 3,
                10,
            )
            seen = counts(topology, 60)
            assert set(seen) == {"rs1", "rs2", "rs3", "rs4"}, seen
            assert seen["rs4"] > seen["rs1"], seen
            config = (daemon.data_dir / "haproxy" / "haproxy.cfg").read_text()
            assert f"server {rs[4]} {rs[4]} weight 3 check" in config

            # a runtime state, then a removal: the worker stays, rs1 leaves the traffic
            assert not client.set_real_server_state("web", rs[2], "drain")["reloads"]
            removed = client.delete_real_server("web", rs[1])
            assert removed["applied"] and not removed["reloads"], removed
            # then each server of the pool set to what the head says, from what the reconciler
            # last applied (here rs2's drain again: the operate path applied it at runtime)
            assert removed["actions"][0] == f"haproxy: remove web/{rs[1]} {RUNTIME}", removed
            assert daemon.worker_pids() == workers
            assert rs[1] not in haproxy_states(daemon, "web")
            assert set(counts(topology, 30)) == {"rs3", "rs4"}
            assert (
                f"server {rs[1]} " not in (daemon.data_dir / "haproxy" / "haproxy.cfg").read_text()
            )
            before = haproxy_states(daemon, "web")

            # a change that reloads: the new worker runs the same servers in the same states
            reloaded = client.add_virtual_service(service(topology, "web2", 8080, (1,)))
            assert reloaded["applied"] and reloaded["reloads"], reloaded
            assert daemon.worker_pids() != workers
        after = haproxy_states(daemon, "web")
        # the same servers, weights and admin states (8: drained; its weight the new worker
        # reads from the text, where a drained server has weight 0, as any reload does)
        assert after.keys() == before.keys()
        assert after[rs[2]][0] == before[rs[2]][0] == "8"
        assert {k: v for k, v in after.items() if k != rs[2]} == {
            k: v for k, v in before.items() if k != rs[2]
        }
        statuses = {k: v["status"] for k, v in servers_of(daemon, "web").items()}
        assert statuses == {rs[2]: "drain", rs[3]: "up", rs[4]: "up"}, statuses
        assert set(counts(topology, 30)) == {"rs3", "rs4"}
    finally:
        stop(daemon)


def test_cookie_persistence_reloads_and_a_refused_command_falls_back_to_a_reload(
    make_topology: Any,
) -> None:
    topology = make_topology(real_servers=3)
    topology.start_real_servers()
    rs = {n: key(topology, n) for n in range(1, 4)}
    sticky = {
        **service(topology, "sticky", 8080, (1,)),
        "persistence": {"method": "active_cookie", "cookie": "LB", "timeout": 600},
    }
    document = {"virtual_services": [service(topology, "web", 80, (1, 2)), sticky]}
    daemon = start(topology, document)
    try:
        daemon.wait_status("sticky", rs[1], "up")
        workers = daemon.worker_pids()
        with api(daemon) as client:
            # 2.6 servers added at runtime take no cookie: this one reloads, and works
            server3 = {"address": topology.real_servers[2].address, "port": 80}
            result = client.add_real_server("sticky", server3)
            assert result["applied"] and result["reloads"], result
            assert daemon.worker_pids() != workers
            daemon.wait_status("sticky", rs[3], "up")
            assert set(counts(topology, 20, port=8080)) == {"rs1", "rs3"}

            # HAProxy refuses the add (a server of that name was made by hand): the engine
            # reloads instead, and the change is applied all the same
            workers = daemon.worker_pids()
            address = topology.real_servers[2].address
            assert "New server registered" in daemon.haproxy(
                f"add server web/{rs[3]} {address}:80 weight 1"
            )
            result = client.add_real_server("web", server3)
            assert result["applied"], result
            assert daemon.worker_pids() != workers
            assert "could not be changed at runtime, reloading" in daemon.log()
            daemon.wait_status("web", rs[3], "up")
            assert set(counts(topology, 30)) == {"rs1", "rs2", "rs3"}
    finally:
        stop(daemon)
