"""Real servers added to and removed from a running HTTP service without reloading HAProxy.

A real ``bascule run`` in the lb namespace, real servers and clients in theirs: a real server
added or removed through the API reaches (or leaves) the traffic while the HAProxy worker stays
the same process (engines/haproxy/dynamic.py); a service with active-cookie persistence, which
2.6's dynamic servers do not support, still reloads; the next full reload keeps every server's
state; and a runtime command HAProxy refuses falls back to a reload, which the answer says.

Servers added at runtime are made ordinary ones by a deferred reload (HAProxy 2.6 reuses no
idle connection to a server ``add server`` made): the answer says ``"reload": "later"``, the
status shows the pending reload, a new worker serves after the delay with every runtime state
kept, and reuses its server connections; a daemon killed before it leaves it to the next one,
which adopts HAProxy and reloads.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from typing import Any

import pytest
from daemon import BasculeDaemon
from netns import Topology
from waiting import wait_until

from bascule.cli.client import BasculeClient

pytestmark = pytest.mark.integration
# The deferred reload out of the way, for the tests of the runtime path itself.
LATER = {
    "BASCULE_HAPROXY_DEFERRED_RELOAD_DELAY": "600",
    "BASCULE_HAPROXY_DEFERRED_RELOAD_MAX_DELAY": "600",
}
# Long enough to see the worker and the status before it, on a loaded machine.
DELAY = {"BASCULE_HAPROXY_DEFERRED_RELOAD_DELAY": "5"}

CHECK = {"type": "http", "path": "/health", "interval": 1, "rise": 1, "fall": 2}
RUNTIME = "(real servers at runtime, no reload)"
ADDED = "(real servers at runtime, a reload follows)"


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


def start(
    topology: Topology, document: dict[str, Any], env: Mapping[str, str] = LATER
) -> BasculeDaemon:
    daemon = BasculeDaemon(topology, env=env).start()
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
            assert added["reload"] == "later", added
            assert added["actions"] == [f"haproxy: add web/{rs[4]} {ADDED}"], added
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
            assert pending_reload(client) is not None
            reloaded = client.add_virtual_service(service(topology, "web2", 8080, (1,)))
            assert reloaded["applied"] and reloaded["reloads"], reloaded
            assert reloaded["reload"] == "now", reloaded
            assert daemon.worker_pids() != workers
            # that reload made rs4 an ordinary server: no deferred one is left
            assert pending_reload(client) is None
            assert not (daemon.data_dir / "haproxy" / "reload-pending").exists()
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
            # the answer says what happened: a reload now, none deferred
            assert result["reloads"] and result["reload"] == "now", result
            assert daemon.worker_pids() != workers
            assert "could not be changed at runtime, reloading" in daemon.log()
            daemon.wait_status("web", rs[3], "up")
            assert set(counts(topology, 30)) == {"rs1", "rs2", "rs3"}
    finally:
        stop(daemon)


def operational(daemon: BasculeDaemon, backend: str) -> dict[str, str]:
    """``show servers state``: each server's operational state (0: down, 2: up)."""
    rows = daemon.haproxy(f"show servers state {backend}").splitlines()[2:]
    return {f[3]: f[5] for f in (row.split() for row in rows) if len(f) > 7}


def pending_reload(client: BasculeClient) -> dict[str, Any] | None:
    """The status's deferred reload of HAProxy (None: none pending)."""
    pending: dict[str, Any] | None = client.status()["engine"]["haproxy"]["reload_pending"]
    return pending


def workers_now(daemon: BasculeDaemon) -> list[int]:
    """The serving workers; none while the master re-executes itself (a reload)."""
    try:
        return daemon.worker_pids()
    except OSError:
        return []


def reuses(daemon: BasculeDaemon, backend: str, server: str) -> tuple[int, int]:
    """``show stat``: a server's (connect, reuse) counters, its new and reused connections."""
    text = daemon.haproxy("show stat").lstrip("# ")
    for row in csv.DictReader(text.splitlines()):
        if row["pxname"] == backend and row["svname"] == server:
            return int(row["connect"] or 0), int(row["reuse"] or 0)
    raise KeyError(f"{backend}/{server}")


def test_a_server_added_at_runtime_is_reloaded_later_keeping_states_and_then_reuses(
    make_topology: Any,
) -> None:
    topology = make_topology(real_servers=4)
    servers = topology.start_real_servers()
    rs = {n: key(topology, n) for n in range(1, 5)}
    document = {"virtual_services": [service(topology, "web", 80, (1, 3, 4))]}
    daemon = start(topology, document, DELAY)
    try:
        daemon.wait_status("web", rs[1], "up")
        servers[3].kill()  # rs4's health the reload must keep: down
        daemon.wait_status("web", rs[4], "down")
        workers = daemon.worker_pids()
        with api(daemon) as client:
            # runtime states the reload must keep: rs1 disabled, rs3 drained
            assert not client.set_real_server_state("web", rs[1], "disable")["reloads"]
            assert not client.set_real_server_state("web", rs[3], "drain")["reloads"]
            added = client.add_real_server(
                "web", {"address": topology.real_servers[1].address, "port": 80, "weight": 2000}
            )
            # answered at once, by the same worker, with the reload announced and pending
            assert added["applied"] and not added["reloads"], added
            assert added["reload"] == "later", added
            assert daemon.worker_pids() == workers
            before = haproxy_states(daemon, "web")
            pending = pending_reload(client)
            assert pending is not None and pending["error"] is None, pending
            assert "reload pending" in daemon.cli("status").stdout
            daemon.wait_status("web", rs[2], "up")
            assert set(counts(topology, 20)) == {"rs2"}  # the new server takes the traffic

            # after the delay: a new worker, nothing pending, the same states and weights
            wait_until(
                "the deferred reload",
                lambda: workers_now(daemon) not in ([], workers) and pending_reload(client) is None,
                30,
            )
            # down from the first moment (the server-state file), not after "fall" checks
            assert operational(daemon, "web")[rs[4]] == "0"
        assert "deferred reload done" in daemon.log_path.read_text()
        assert not (daemon.data_dir / "haproxy" / "reload-pending").exists()
        after = haproxy_states(daemon, "web")
        assert after.keys() == before.keys()
        # 8: drained (its weight the new worker reads from the text, where a drained server has
        # weight 0, as any reload does); 1: in maintenance, which the text now says too (4)
        assert after[rs[3]][0] == before[rs[3]][0] == "8"
        assert before[rs[1]][0] == "1" and int(after[rs[1]][0]) & 1, (before, after)
        assert after[rs[2]] == before[rs[2]] and after[rs[1]][1] == before[rs[1]][1]
        statuses = {k: v["status"] for k, v in servers_of(daemon, "web").items()}
        assert statuses == {rs[1]: "disabled", rs[2]: "up", rs[3]: "drain", rs[4]: "down"}

        # an ordinary server now: keep-alive requests reuse its idle connections
        connects, reused = reuses(daemon, "web", rs[2])
        result = topology.run_client(
            "--url", f"http://{topology.vip()}/", "--requests", "200", "--keepalive"
        )
        assert result["failures"] == 0 and set(result["counts"]) == {"rs2"}, result
        connects_after, reused_after = reuses(daemon, "web", rs[2])
        assert reused_after - reused >= 150, (connects, reused, connects_after, reused_after)
    finally:
        stop(daemon)


def test_a_daemon_killed_before_the_deferred_reload_leaves_it_to_the_next(
    make_topology: Any,
) -> None:
    topology = make_topology(real_servers=2)
    topology.start_real_servers()
    rs = {n: key(topology, n) for n in range(1, 3)}
    daemon = start(topology, {"virtual_services": [service(topology, "web", 80, (1,))]})
    marker = daemon.data_dir / "haproxy" / "reload-pending"
    try:
        daemon.wait_status("web", rs[1], "up")
        workers = daemon.worker_pids()
        with api(daemon) as client:
            added = client.add_real_server(
                "web", {"address": topology.real_servers[1].address, "port": 80}
            )
            assert added["reload"] == "later", added
        assert marker.exists()
        daemon.kill()  # SIGKILL, its reload 600 s away
        assert daemon.worker_pids() == workers  # the data plane runs on
        daemon.env.update(DELAY)
        daemon.start()
        # the marker goes with the reload, its log line right after it: wait for both
        wait_until(
            "the adopting daemon's reload",
            lambda: (
                workers_now(daemon) not in ([], workers)
                and not marker.exists()
                and "deferred reload done" in daemon.log_path.read_text()
            ),
            30,
        )
        log = daemon.log_path.read_text()
        assert "servers added at runtime by the previous daemon" in log
        daemon.wait_status("web", rs[2], "up")
        assert set(counts(topology, 20)) == {"rs1", "rs2"}
        with api(daemon) as client:
            assert pending_reload(client) is None
    finally:
        stop(daemon)
