"""Health checks and real-server states end to end: a real daemon, HAProxy, real traffic.

Every test builds its own namespaces, starts ``bascule run`` in the load balancer and drives it
the way an administrator would (``bascule apply``, ``bascule rs ...``, ``bascule status``),
while tests/tools/client.py sends real requests to the VIP. What the issue asks to show:

* a dead real server leaves the rotation within interval x fall (+1 s) and comes back after
  rise, and the status carries the last check's result, code and duration;
* a request that meets a server that has just died (before the checks notice) is retried
  on another one: clients see no error, with new connections or keep-alive;
* drain, disable, enable and weight changes are runtime changes (same HAProxy worker);
* max_connections holds (HAProxy queues the rest), critical servers take the service down;
* a reload keeps what the document says (drain, custom weights);
* the ``status`` table shows all of it to a person.

Timing bounds come from HAProxy's check scheduling (configuration.txt 5.2 "inter",
"fastinter", "downinter"): the generated config sets only "inter", so a check runs every
interval whether the server is up, going down, or down (HAProxy schedules the next check one
interval after the previous one ends, and a refused connection ends it at once). A server
killed just after a passing check fails its first check up to one interval later and is
marked down at its ``fall``-th failure: ``fall`` intervals after the kill at worst; coming
back, ``rise`` intervals after it listens again. The timed waits watch HAProxy's stats socket
and the daemon's status separately, so a failure says which one was late.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from daemon import BasculeDaemon
from netns import Topology

from bascule.engines.haproxy.server_states import parse_servers_state
from bascule.engines.haproxy.server_stats import ServerStat, StatKind, parse_show_stat

pytestmark = pytest.mark.integration

# The bounds are interval x fall (or rise) + 1 s. The extra second covers the check itself, a
# poll period and a status round trip; this covers scheduling noise on a shared 2-core machine.
POLL = 0.05
CPU_SLACK = 0.5


# --------------------------------------------------------------------------- helpers


def web_service(topology: Topology, servers: int | None = None, **overrides: Any) -> dict[str, Any]:
    hosts = topology.real_servers[:servers] if servers else topology.real_servers
    service: dict[str, Any] = {
        "name": "web",
        "address": topology.vip(),
        "port": 80,
        "type": "http",
        "scheduler": "round_robin",
        "check": {"type": "http", "path": "/health", "interval": 1, "rise": 2, "fall": 2},
        "real_servers": [{"address": rs.address, "port": 80} for rs in hosts],
    }
    service.update(overrides)
    return service


def key(topology: Topology, name: str) -> str:
    return f"{topology.host(name).address}:80"


@contextmanager
def running_daemon(topology: Topology) -> Iterator[BasculeDaemon]:
    daemon = BasculeDaemon(topology).start()
    try:
        yield daemon
    finally:
        try:
            daemon.terminate()
        finally:
            daemon.stop_haproxy()


def api_status(daemon: BasculeDaemon) -> dict[str, Any]:
    """GET /api/v1/status over the unix socket: what ``bascule status --json`` prints.

    Used where timing matters: it costs a few milliseconds, the CLI a Python start-up.
    """
    transport = httpx.HTTPTransport(uds=str(daemon.data_dir / "bascule.sock"))
    with httpx.Client(transport=transport, base_url="http://bascule", timeout=10) as client:
        response = client.get("/api/v1/status", params={"fresh": "true"})
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


def service_of(report: dict[str, Any], name: str = "web") -> dict[str, Any]:
    for service in report["virtual_services"]:
        if service["name"] == name:
            return dict(service)
    raise KeyError(name)


def server_of(report: dict[str, Any], server: str, vs: str = "web") -> dict[str, Any]:
    for rs in service_of(report, vs)["real_servers"]:
        if rs["key"] == server:
            return dict(rs)
    raise KeyError(server)


def stats(daemon: BasculeDaemon, proxy: str = "web") -> dict[str, ServerStat]:
    """HAProxy's own ``show stat`` rows of one proxy, by server name ("BACKEND" for the proxy)."""
    rows = parse_show_stat(daemon.haproxy("show stat"))
    return {
        ("BACKEND" if row.kind is StatKind.BACKEND else row.server): row
        for row in rows
        if row.proxy == proxy and row.kind in (StatKind.SERVER, StatKind.BACKEND)
    }


def stat_field(daemon: BasculeDaemon, server: str, column: str, proxy: str = "web") -> int:
    """One raw ``show stat`` column (e.g. econ, wretr, wredis, qmax) of one row, as an int."""
    lines = daemon.haproxy("show stat").splitlines()
    header = lines[0].removeprefix("# ").split(",")
    for line in lines[1:]:
        values = line.split(",")
        if values[:2] == [proxy, server]:
            value = values[header.index(column)]
            return int(value) if value else 0
    raise KeyError(f"{proxy}/{server}")


def wait_for(condition: Callable[[], bool], what: str, timeout: float, poll: float = POLL) -> float:
    """Poll until ``condition()``; return the seconds it took, fail with ``what`` on timeout."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(poll)
    return time.monotonic() - start


def wait_all_checked_up(daemon: BasculeDaemon, timeout: float = 15.0) -> None:
    def all_up() -> bool:
        servers = service_of(api_status(daemon))["real_servers"]
        return all(rs["status"] == "up" and rs["check_result"] == "L7OK" for rs in servers)

    wait_for(all_up, "every real server up with a passing check", timeout)


def quick(topology: Topology, requests: int = 30, *args: str) -> dict[str, Any]:
    return topology.run_client(
        "--url", f"http://{topology.vip()}/", "--requests", str(requests), *args, timeout=60
    )


def start_slow(topology: Topology, count: int, ms: int) -> subprocess.Popen[str]:
    """``count`` concurrent requests to /slow, each on its own new connection."""
    return topology.start_client(
        "--url",
        f"http://{topology.vip()}/slow?ms={ms}",
        "--requests",
        str(count),
        "--concurrency",
        str(count),
        "--timeout",
        "30",
    )


def wait_one_slow_request_each(daemon: BasculeDaemon, servers: list[str]) -> None:
    def spread() -> bool:
        rows = stats(daemon)
        return all(rows[s].scur == 1 for s in servers)

    wait_for(spread, f"one long request running on each of {servers}", 10)


@dataclass
class Transition:
    """When a real server's change was seen, in seconds from ``since``: by HAProxy itself
    (its stats socket, polled directly), and in the daemon's status; ``trace`` says why."""

    engine: float = float("inf")
    status: float = float("inf")
    trace: list[tuple[float, str, str | None, float, str]] = field(default_factory=list)


def watch_transition(
    daemon: BasculeDaemon, server: str, wanted: str, *, since: float, timeout: float = 10.0
) -> Transition:
    """Poll HAProxy and the status until ``server`` is ``wanted`` ("up" or "down") in both."""
    seen = Transition()
    engine_word = wanted.upper()
    while time.monotonic() - since < timeout:
        asked = time.monotonic() - since
        row = stats(daemon)[server]
        if row.status == engine_word and seen.engine == float("inf"):
            seen.engine = asked
        status = server_of(api_status(daemon), server)["status"]
        answered = time.monotonic() - since
        seen.trace.append(
            (round(asked, 3), row.status, row.check_status, round(answered, 3), status)
        )
        if status == wanted and seen.status == float("inf"):
            seen.status = answered
        if seen.engine != float("inf") and seen.status != float("inf"):
            return seen
        time.sleep(POLL)
    raise AssertionError(f"{server} not {wanted} within {timeout}s: {seen}")


def kill(topology: Topology, proc: subprocess.Popen[str]) -> None:
    """The real server's service dies: SIGKILL, no goodbye (then untrack it)."""
    proc.kill()
    proc.wait(timeout=5)
    topology.stop(proc)


# --------------------------------------------------------------------------- health checks


def test_dead_server_leaves_rotation_within_fall_and_returns_after_rise(
    topology: Topology,
) -> None:
    interval, rise, fall = 1, 2, 2
    procs = topology.start_real_servers()
    rs2 = key(topology, "rs2")
    with running_daemon(topology) as daemon:
        check = {"type": "http", "path": "/health", "interval": interval, "rise": rise}
        daemon.apply({"virtual_services": [web_service(topology, check={**check, "fall": fall})]})
        wait_all_checked_up(daemon)
        report = daemon.cli_json("status")  # the CLI prints the API's JSON as it is
        up = server_of(report, rs2)
        assert (up["status"], up["check_result"], up["check_code"]) == ("up", "L7OK", 200)
        assert isinstance(up["check_duration_ms"], int) and up["check_duration_ms"] >= 0

        stop_file = topology.workdir / "stop-load"  # type: ignore[operator]
        load = topology.start_client(
            "--url",
            f"http://{topology.vip()}/",
            "--duration",
            "60",
            "--rate",
            "100",
            "--concurrency",
            "2",
            "--stop-file",
            str(stop_file),
        )
        others = [key(topology, "rs1"), key(topology, "rs3")]

        def served_by_others() -> int:
            return sum(stat_field(daemon, rs, "stot") for rs in others)

        try:
            wait_for(lambda: stat_field(daemon, rs2, "stot") >= 10, "rs2 serving the load", 10)
            killed = time.monotonic()
            kill(topology, procs[1])
            took_down = watch_transition(daemon, rs2, "down", since=killed)
            # No request is sent to it any more: HAProxy's connection errors, retries and
            # redispatches on it stop growing while the load goes on (a second of it).
            tried = [stat_field(daemon, rs2, c) for c in ("econ", "wretr", "wredis", "stot")]
            before = served_by_others()
            wait_for(lambda: served_by_others() >= before + 100, "100 more requests served", 10)
            assert [
                stat_field(daemon, rs2, c) for c in ("econ", "wretr", "wredis", "stot")
            ] == tried
            down = server_of(daemon.cli_json("status"), rs2)
            assert down["status"] == "down"
            assert down["check_result"] == "L4CON", down  # connection refused
            assert down["check_code"] is None
            assert isinstance(down["check_duration_ms"], int)
            assert "refused" in (down["check_detail"] or "").lower(), down
            assert service_of(api_status(daemon))["status"] == "degraded"

            topology.start_real_server("rs2")
            took_up = watch_transition(daemon, rs2, "up", since=time.monotonic())
            back = stat_field(daemon, rs2, "stot")
            wait_for(lambda: stat_field(daemon, rs2, "stot") >= back + 10, "rs2 serving again", 10)
        finally:
            stop_file.touch()
            result = topology.finish_client(load)
        # a just-dead server costs the clients nothing (retries + redispatch)
        assert result["failures"] == 0, result["errors"]
        assert took_down.engine <= interval * fall + 1 + CPU_SLACK, took_down
        assert took_down.status <= interval * fall + 1 + CPU_SLACK, took_down
        assert took_up.engine <= interval * rise + 1 + CPU_SLACK, took_up
        assert took_up.status <= interval * rise + 1 + CPU_SLACK, took_up
        assert quick(topology, 30)["counts"] == {"rs1": 10, "rs2": 10, "rs3": 10}
        again = server_of(api_status(daemon), rs2)
        assert (again["check_result"], again["check_code"]) == ("L7OK", 200)


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize(
    "reuse",
    [("--new-connection",), ("--keepalive", "--no-retry-stale")],
    ids=["new-connection", "keepalive"],
)
def test_request_to_a_just_dead_server_is_retried_elsewhere(
    topology: Topology, reuse: tuple[str, ...]
) -> None:
    procs = topology.start_real_servers()
    rs2 = key(topology, "rs2")
    with running_daemon(topology) as daemon:
        # Checks far apart: the first failing check comes up to 3 s after the kill and the
        # third (down) 6 s after that first one, after the load has ended (1.8 s after the
        # kill): only HAProxy's retries (retry-on, redispatch) can save the requests.
        check = {"type": "http", "path": "/health", "interval": 3, "rise": 1, "fall": 3}
        daemon.apply({"virtual_services": [web_service(topology, check=check)]})
        wait_all_checked_up(daemon)
        load = topology.start_client(
            "--url",
            f"http://{topology.vip()}/",
            "--duration",
            "3",
            "--concurrency",
            "4",
            "--rate",
            "300",
            *reuse,
        )
        try:
            # about a second into the load (rs2 takes a third of 300 requests a second)
            wait_for(lambda: stat_field(daemon, rs2, "stot") >= 100, "rs2 serving the load", 10)
            kill(topology, procs[1])
        finally:
            result = topology.finish_client(load)
        rows = stats(daemon)
        assert result["failures"] == 0, (result["errors"], result["error_kinds"])
        assert result["counts"].get("rs2", 0) > 0, result  # it served before it died
        # HAProxy did meet the dead server (and redispatched), the checks had not noticed
        retried = sum(stat_field(daemon, rs2, c) for c in ("econ", "wretr", "wredis"))
        assert retried > 0, daemon.haproxy("show stat")
        assert not rows[rs2].status.startswith("DOWN"), rows[rs2]
        assert server_of(api_status(daemon), rs2)["status"] == "up"


# --------------------------------------------------------------------------- runtime changes


def test_drain_disable_enable_and_weight_are_runtime_changes(topology: Topology) -> None:
    topology.start_real_servers()
    rs1, rs2, rs3 = (key(topology, f"rs{i}") for i in (1, 2, 3))
    with running_daemon(topology) as daemon:
        daemon.apply(
            {"virtual_services": [web_service(topology, scheduler="weighted_round_robin")]}
        )
        wait_all_checked_up(daemon)
        workers = daemon.worker_pids()
        assert workers

        # One long request on each server, then rs1 is drained and rs2 disabled under them.
        # The requests last long enough to outlive both CLI calls on a busy machine; the
        # `scur` checks make sure they are still running when the change lands.
        slow = start_slow(topology, 3, 8000)
        try:
            wait_one_slow_request_each(daemon, [rs1, rs2, rs3])
            # drain: the running request goes on, new requests go elsewhere
            daemon.cli("rs", "drain", "web", rs1)
            assert (stats(daemon)[rs1].status, stats(daemon)[rs1].scur) == ("DRAIN", 1)
            assert quick(topology, 20)["counts"] == {"rs2": 10, "rs3": 10}
            assert server_of(api_status(daemon), rs1)["status"] == "drain"
            # disable (HAProxy "maint"): no new requests either. HAProxy does not kill the
            # sessions a server in maintenance already has (management.txt 9.3 "set server
            # ... state maint"; only "shutdown sessions server" or "on-marked-down
            # shutdown-sessions" would), so the request running on it completes too.
            daemon.cli("rs", "disable", "web", rs2)
            assert (stats(daemon)[rs2].status, stats(daemon)[rs2].scur) == ("MAINT", 1)
            assert quick(topology, 10)["counts"] == {"rs3": 10}
            assert server_of(api_status(daemon), rs2)["status"] == "disabled"
        finally:
            long_requests = topology.finish_client(slow)
        assert long_requests["failures"] == 0, long_requests["errors"]
        assert long_requests["counts"] == {"rs1": 1, "rs2": 1, "rs3": 1}

        # enable: traffic returns to both
        daemon.cli("rs", "enable", "web", rs1)
        daemon.cli("rs", "enable", "web", rs2)
        wait_for(lambda: server_of(api_status(daemon), rs2)["status"] == "up", "rs2 up", 10)
        assert quick(topology, 30)["counts"] == {"rs1": 10, "rs2": 10, "rs3": 10}

        # weight 3000 against 1000: HAProxy weights 3:1:1, set at runtime
        daemon.cli("rs", "set", "web", rs1, "weight=3000")
        counts = quick(topology, 50)["counts"]
        assert 28 <= counts["rs1"] <= 32 and 8 <= counts["rs2"] <= 12, counts
        report = daemon.cli_json("status")
        weights = {
            rs["key"]: (rs["weight"], rs["engine_weight"])
            for rs in service_of(report)["real_servers"]
        }
        assert weights == {rs1: (3000, 3), rs2: (1000, 1), rs3: (1000, 1)}

        assert daemon.worker_pids() == workers  # not one reload


# --------------------------------------------------------------------------- limits


def test_max_connections_holds_and_queues_the_rest(topology: Topology) -> None:
    topology.start_real_server("rs1")
    rs1 = key(topology, "rs1")
    with running_daemon(topology) as daemon:
        service = web_service(topology, servers=1)
        service["real_servers"][0]["max_connections"] = 2
        daemon.apply({"virtual_services": [service]})
        wait_all_checked_up(daemon)
        result = topology.run_client(
            "--url",
            f"http://{topology.vip()}/slow?ms=500",
            "--requests",
            "8",
            "--concurrency",
            "8",
            "--timeout",
            "30",
        )
        rows = stats(daemon)
        assert result["failures"] == 0, result["errors"]
        assert result["counts"] == {"rs1": 8}
        assert rows[rs1].smax == 2, rows[rs1]  # never more than 2 at once on it...
        queued = stat_field(daemon, rs1, "qmax") + stat_field(daemon, "BACKEND", "qmax")
        assert queued >= 1  # ...the others waited in HAProxy's queue


def test_critical_server_down_takes_the_service_down(topology: Topology) -> None:
    control = topology.workdir / "rs1-health"  # type: ignore[operator]
    topology.start_real_server("rs1", "--control", str(control))
    topology.start_real_server("rs2")
    topology.start_real_server("rs3")
    rs1 = key(topology, "rs1")
    with running_daemon(topology) as daemon:
        service = web_service(
            topology,
            check={"type": "http", "path": "/health", "interval": 1, "rise": 1, "fall": 2},
        )
        service["real_servers"][0]["critical"] = True
        daemon.apply({"virtual_services": [service]})
        wait_all_checked_up(daemon)
        assert quick(topology, 9)["counts"] == {"rs1": 3, "rs2": 3, "rs3": 3}

        control.write_text("down\n")
        wait_for(lambda: server_of(api_status(daemon), rs1)["status"] == "down", "rs1 down", 10)
        result = quick(topology, 9)
        assert result["statuses"] == {"503": 9}, result
        vs = service_of(daemon.cli_json("status"))
        assert vs["status"] == "down"
        assert rs1 in vs["message"] and "critical" in vs["message"], vs["message"]

        control.unlink()
        wait_for(lambda: service_of(api_status(daemon))["status"] == "up", "web up again", 10)
        result = quick(topology, 9)
        assert result["failures"] == 0, result["errors"]
        assert result["counts"] == {"rs1": 3, "rs2": 3, "rs3": 3}


# --------------------------------------------------------------------------- reloads and status


def test_reload_keeps_drain_and_weights_and_status_table_shows_them(
    make_topology: Callable[..., Topology],
) -> None:
    topology = make_topology(real_servers=4)
    topology.start_real_servers()
    rs1, rs2, rs3, rs4 = (key(topology, f"rs{i}") for i in (1, 2, 3, 4))
    with running_daemon(topology) as daemon:
        service = web_service(topology, servers=3, scheduler="weighted_round_robin")
        daemon.apply({"virtual_services": [service]})
        wait_all_checked_up(daemon)
        daemon.cli("rs", "drain", "web", rs2)
        daemon.cli("rs", "set", "web", rs3, "weight=3000")
        before = daemon.worker_pids()

        # structural, and a reload: a critical server adds a rule (a plain one is added at
        # runtime, test_l7_dynamic_servers.py)
        daemon.cli("rs", "add", "web", rs4, "--critical")
        assert daemon.worker_pids() != before
        state = {s.server: s for s in parse_servers_state(daemon.haproxy("show servers state web"))}
        # drained (the runtime flag, carried by the server-state file) and weight 0 (the file)
        assert state[rs2].drain and state[rs2].uweight == 0 and not state[rs2].maint, state[rs2]
        assert (state[rs1].uweight, state[rs3].uweight, state[rs4].uweight) == (1, 3, 1)

        def settled() -> bool:
            servers = service_of(api_status(daemon))["real_servers"]
            return all(rs["check_result"] == "L7OK" for rs in servers)

        wait_for(settled, "every real server checked after the reload", 15)
        report = api_status(daemon)
        seen = {
            rs["key"]: (rs["status"], rs["state"], rs["engine_weight"])
            for rs in service_of(report)["real_servers"]
        }
        assert seen == {
            rs1: ("up", "enabled", 1),
            rs2: ("drain", "drain", 0),
            rs3: ("up", "enabled", 3),
            rs4: ("up", "enabled", 1),
        }
        assert service_of(report)["status"] == "up"
        assert quick(topology, 50)["counts"] == {"rs1": 10, "rs3": 30, "rs4": 10}

        # the table a person reads
        table = daemon.cli("status").stdout
        # "up" counts the servers that take new traffic: the drained one does not
        for text in ("web", topology.vip(), "weighted_round_robin", "up", "3/4"):
            assert text in table, table
        for column in ("status", "weight", "check", "code", "duration", "connections"):
            assert column in table, table
        rows = {line.split()[0]: line.split() for line in table.splitlines() if ":80 " in line}
        assert set(rows) == {rs1, rs2, rs3, rs4}, table
        # real server, status, weight, engine weight, check, code, duration, connections,
        # critical
        for server, status, weight, engine_weight in (
            (rs2, "drain", "1000", "0"),
            (rs3, "up", "3000", "3"),
        ):
            words = rows[server]
            assert words[:6] == [server, status, weight, engine_weight, "L7OK", "200"], table
            assert words[6].isdigit() and words[7:] == ["ms", "0", "no"], table
