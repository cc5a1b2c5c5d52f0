"""The appliance's life under real traffic: changes, restarts, bad input and failed applies.

Every test runs a real ``bascule run`` (BasculeDaemon) in the lb namespace of its own
topology, drives it through the CLI and the API like an administrator would, and measures
what clients in the client namespace saw (tests/tools/client.py): a change, a daemon crash or
a refused input must never cost a request. The HAProxy worker PID tells whether a change
reloaded the engine (a runtime change must not); the master PID whether it was restarted.
"""

from __future__ import annotations

import contextlib
import json
import random
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from daemon import BasculeDaemon
from netns import Topology, netns_pids, wait_ready
from waiting import answered, holds, wait_until

from bascule.cli.client import BasculeClient
from bascule.cli.errors import CliError

pytestmark = pytest.mark.integration

API_AUTHOR = "lifecycle-test@api"
WEB2_PORT = 8080
INJECTED = "\n    server evil 198.18.0.66:80"


# --------------------------------------------------------------------------- helpers


def rs_key(topology: Topology, n: int) -> str:
    return f"{topology.real_servers[n - 1].address}:80"


def web_service(
    topology: Topology, servers: tuple[int, ...] = (1, 2, 3), **overrides: Any
) -> dict[str, Any]:
    """The service every test starts from: weighted round robin, checked on /health."""
    service: dict[str, Any] = {
        "name": "web",
        "address": topology.vip(),
        "port": 80,
        "type": "http",
        "scheduler": "weighted_round_robin",
        "check": {"type": "http", "path": "/health", "interval": 1, "rise": 1, "fall": 2},
        "real_servers": [
            {"address": topology.real_servers[n - 1].address, "port": 80} for n in servers
        ],
    }
    service.update(overrides)
    return service


def web2_service(topology: Topology) -> dict[str, Any]:
    """A second virtual service on the same VIP, another port."""
    return {
        "name": "web2",
        "address": topology.vip(),
        "port": WEB2_PORT,
        "type": "http",
        "scheduler": "round_robin",
        "check": {"type": "tcp", "interval": 1, "rise": 1, "fall": 2},
        "real_servers": [{"address": rs.address, "port": 80} for rs in topology.real_servers[:2]],
    }


def api_client(daemon: BasculeDaemon) -> BasculeClient:
    """The REST API on the daemon's unix socket (the client the CLI itself uses)."""
    return BasculeClient(daemon.data_dir / "bascule.sock", author=API_AUTHOR)


def master_pid(daemon: BasculeDaemon) -> int:
    return int((daemon.data_dir / "haproxy" / "haproxy.pid").read_text().split()[0])


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def process_names(netns: str) -> list[str]:
    """The command names of the processes running in a namespace."""
    names = []
    for pid in netns_pids(netns):
        with contextlib.suppress(OSError):  # it may have just left
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
    return names


def rendered_config(daemon: BasculeDaemon) -> str:
    return (daemon.data_dir / "haproxy" / "haproxy.cfg").read_text()


def lb_addresses(topology: Topology) -> str:
    return str(topology.run("lb", ["ip", "-o", "addr", "show", "dev", "eth0"]).stdout)


def status(daemon: BasculeDaemon) -> dict[str, Any]:
    """``GET /status`` through the API (quicker than a CLI process; the CLI's is tested too)."""
    with api_client(daemon) as api:
        return api.status()


def engine_weights(daemon: BasculeDaemon, vs: str = "web") -> dict[str, int | None]:
    for service in status(daemon)["virtual_services"]:
        if service["name"] == vs:
            return {rs["key"]: rs["engine_weight"] for rs in service["real_servers"]}
    raise KeyError(vs)


def wait_up(daemon: BasculeDaemon, vs: str = "web", timeout: float = 20.0) -> None:
    """Wait until every real server of ``vs`` is up (health checks passed)."""
    deadline = time.monotonic() + timeout
    while True:
        services = {s["name"]: s for s in status(daemon)["virtual_services"]}
        service = services.get(vs)
        if service is not None and service["status"] == "up":
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{vs} is not up after {timeout}s: {service}")
        time.sleep(0.2)


def wait_connections(daemon: BasculeDaemon, wanted: int, timeout: float = 10.0) -> None:
    """Wait until the ``web`` service holds ``wanted`` client connections."""
    deadline = time.monotonic() + timeout
    while status(daemon)["virtual_services"][0]["current_connections"] < wanted:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {wanted} connections after {timeout}s")
        time.sleep(0.05)


def measure(topology: Topology, requests: int, port: int = 80) -> dict[str, Any]:
    """A short keep-alive client run against the VIP; asserts that nothing failed."""
    result = topology.run_client(
        "--url", f"http://{topology.vip()}:{port}/", "--requests", str(requests), "--keepalive"
    )
    assert result["failures"] == 0, result["errors"]
    return result


def assert_shares(counts: dict[str, int], expected: dict[str, int], slack: int = 3) -> None:
    """Counts per server as weighted round robin deals them, give or take a partial cycle."""
    assert set(counts) == set(expected), counts
    for name, wanted in expected.items():
        assert abs(counts[name] - wanted) <= slack, (counts, expected)


class Load:
    """Two clients hitting the VIP until told to stop: one new connection per request, and
    one keep-alive client that counts a reused connection closed under it as a failure."""

    def __init__(self, topology: Topology, *, rate: int = 50, name: str = "load") -> None:
        self.topology = topology
        assert topology.workdir is not None
        self.stop_file = topology.workdir / f"{name}.stop"
        url = f"http://{topology.vip()}/"
        common = ["--url", url, "--duration", "240", "--stop-file", str(self.stop_file)]
        common += ["--rate", str(rate), "--timeout", "5"]
        kinds = {
            "new-connection": ["--new-connection"],
            "keepalive": ["--keepalive", "--no-retry-stale"],
        }
        self.progress = {kind: topology.workdir / f"{name}.{kind}.progress" for kind in kinds}
        self.clients = {
            kind: topology.start_client(
                *common, *extra, "--progress-file", str(self.progress[kind])
            )
            for kind, extra in kinds.items()
        }

    def wait_answered(self, more: int, timeout: float = 15.0) -> None:
        """Until each client has had ``more`` requests answered from now on."""
        wanted = {kind: answered(path) + more for kind, path in self.progress.items()}
        wait_until(
            f"{more} more requests answered by each client",
            lambda: all(answered(self.progress[kind]) >= n for kind, n in wanted.items()),
            timeout,
        )

    def finish(self) -> dict[str, dict[str, Any]]:
        self.stop_file.touch()
        return {
            name: self.topology.finish_client(p, timeout=60) for name, p in self.clients.items()
        }


def assert_no_failures(results: dict[str, dict[str, Any]], minimum: int) -> None:
    for name, result in results.items():
        assert result["failures"] == 0, (name, result["error_kinds"], result["errors"])
        assert result["stale_retries"] == 0, (name, result)
        assert result["ok"] >= minimum, (name, result["ok"], minimum)


def stop_daemon(daemon: BasculeDaemon) -> None:
    """Cleanup whatever happened: stop the daemon if it runs, then any HAProxy it left."""
    try:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.terminate()
    finally:
        daemon.stop_haproxy()


def start_daemon(topology: Topology, document: dict[str, Any]) -> BasculeDaemon:
    """A daemon with ``document`` applied and every real server up; real servers are added
    and removed at runtime (``haproxy_dynamic_servers``, on by default) and the servers added
    made ordinary ones by a deferred reload, so the fifty changes under load cover that path
    too."""
    daemon = BasculeDaemon(topology).start()
    try:
        with api_client(daemon) as api:
            assert api.put_config(document, message="initial")["applied"]
        topology.wait_tcp("client", topology.vip(), 80)
        wait_up(daemon)
    except BaseException:
        stop_daemon(daemon)
        raise
    return daemon


# --------------------------------------------------------------------------- changes under load


def test_fifty_weight_and_fifty_structural_changes_under_load_lose_no_request(
    make_topology: Any,
) -> None:
    topology = make_topology(real_servers=4)
    topology.start_real_servers()
    rs = {n: rs_key(topology, n) for n in range(1, 5)}
    daemon = start_daemon(topology, {"virtual_services": [web_service(topology)]})
    try:
        load = Load(topology)
        with api_client(daemon) as api:
            # -- 50 weight changes: runtime only, the worker serving traffic never changes
            workers = daemon.worker_pids()
            weights = {rs[1]: 1000, rs[2]: 1000, rs[3]: 1000}
            chooser = random.Random(20261126)
            cli_steps = {0, 17, 33, 48}
            # the last three end on 3:1:1, so that the distribution can be checked
            final = {47: (rs[2], 1000), 48: (rs[3], 1000), 49: (rs[1], 3000)}
            for step in range(50):
                key = rs[1 + step % 3]
                choices = [w for w in (1, 250, 2500, 7000, 65535) if w != weights[key]]
                key, weight = final.get(step, (key, chooser.choice(choices)))
                weights[key] = weight
                if step in cli_steps:
                    daemon.cli("rs", "set", "web", key, f"weight={weight}")
                elif step % 3 == 0:  # a whole document through the API (what apply sends)
                    document = {"virtual_services": [web_service(topology)]}
                    for server in document["virtual_services"][0]["real_servers"]:
                        server["weight"] = weights[f"{server['address']}:80"]
                    result = api.put_config(document, message=f"weights, step {step}")
                    assert result["applied"] and not result["reloads"], result
                else:
                    result = api.update_real_server("web", key, {"weight": weight})
                    assert result["applied"] and not result["reloads"], result
                assert daemon.worker_pids() == workers, f"weight change {step} reloaded"
            assert engine_weights(daemon) == {rs[1]: 3, rs[2]: 1, rs[3]: 1}

            # -- 50 structural changes: real servers and a second service come and go
            document = api.get_config()["document"]
            servers = document["virtual_services"][0]["real_servers"]
            assert [server["weight"] for server in servers] == [3000, 1000, 1000]
            rs4 = {"address": topology.real_servers[3].address, "port": 80, "weight": 1000}
            steps = ["add rs4", "add web2", "delete rs4", "delete web2"] * 12
            steps += ["add rs4", "delete rs4"]
            by_cli = {0, 1, 2, 3, 48, 49}
            for index, step in enumerate(steps):
                if index in by_cli:
                    structural_by_cli(daemon, topology, step, rs[4])
                    continue
                if index % 8 < 4:  # one edit through the API
                    result = structural_by_api(api, topology, step, rs4, rs[4])
                else:  # the whole document, as `bascule apply` sends it
                    document = api.get_config()["document"]
                    services = document["virtual_services"]
                    if step == "add rs4":
                        services[0]["real_servers"].append(rs4)
                    elif step == "delete rs4":
                        services[0]["real_servers"].pop()
                    elif step == "add web2":
                        services.append(web2_service(topology))
                    else:
                        services.pop()
                    result = api.put_config(document, message=f"structural, step {index}")
                # rs4 comes and goes at runtime (dynamic servers), web2 reloads
                assert result["applied"], (step, result)
                assert result["reloads"] == (result["reload"] == "now"), result
                if step.endswith("web2"):
                    assert result["reload"] == "now", (step, result)
                elif step == "add rs4":  # at runtime, made ordinary by a deferred reload
                    assert result["reload"] == "later", (step, result)
                else:
                    # at runtime, or a reload when rs4 still holds connections a second
                    # after it left rotation: the keep-alive clients' connections, which it
                    # keeps idle once a deferred reload made it an ordinary server
                    assert result["reload"] in ("none", "later", "now"), (step, result)
                if index in (5, 9):  # the second service answers as soon as it is applied
                    assert set(measure(topology, 4, port=WEB2_PORT)["counts"]) == {"rs1", "rs2"}
            assert daemon.worker_pids() != workers
        results = load.finish()
        assert_no_failures(results, minimum=100)
        servers_seen = set(results["new-connection"]["counts"]) | set(
            results["keepalive"]["counts"]
        )
        assert servers_seen == {"rs1", "rs2", "rs3", "rs4"}
        # the weights survived every reload: 3:1:1
        assert_shares(measure(topology, 250)["counts"], {"rs1": 150, "rs2": 50, "rs3": 50})
        with api_client(daemon) as api:
            assert api.revisions(limit=1)["items"][0]["number"] == 101  # 1 + 50 + 50
    finally:
        stop_daemon(daemon)


def structural_by_cli(daemon: BasculeDaemon, topology: Topology, step: str, rs4: str) -> None:
    if step == "add rs4":
        daemon.cli("rs", "add", "web", rs4, "--weight", "1000")
    elif step == "delete rs4":
        daemon.cli("rs", "delete", "web", rs4)
    elif step == "add web2":
        port = str(WEB2_PORT)
        daemon.cli("vs", "add", "web2", "--address", topology.vip(), "--port", port)
    else:
        daemon.cli("vs", "delete", "web2")


def structural_by_api(
    api: BasculeClient, topology: Topology, step: str, rs4: dict[str, Any], rs4_key: str
) -> dict[str, Any]:
    if step == "add rs4":
        return api.add_real_server("web", rs4)
    if step == "delete rs4":
        return api.delete_real_server("web", rs4_key)
    if step == "add web2":
        return api.add_virtual_service(web2_service(topology))
    return api.delete_virtual_service("web2")


# --------------------------------------------------------------------------- daemon crash


def test_kill_9_under_load_keeps_serving_and_a_new_daemon_adopts(topology: Topology) -> None:
    topology.start_real_servers()
    daemon = start_daemon(topology, {"virtual_services": [web_service(topology)]})
    try:
        master, workers = master_pid(daemon), daemon.worker_pids()
        load = Load(topology)
        load.wait_answered(25)
        daemon.kill()
        load.wait_answered(25)  # HAProxy serves alone
        assert pid_alive(master)
        successor = BasculeDaemon(topology, data_dir=daemon.data_dir).start()
        try:
            # adopted: same master, no reload, nothing changed
            assert master_pid(successor) == master
            assert successor.worker_pids() == workers
            report = status(successor)
            assert report["apply_ok"], report
            assert report["revision"] == report["applied_revision"] == 1
            assert successor.cli("status").returncode == 0
            wait_up(successor)
            # a weight change: runtime, on the adopted worker
            successor.cli("rs", "set", "web", rs_key(topology, 1), "weight=3000")
            assert successor.worker_pids() == workers
            assert engine_weights(successor)[rs_key(topology, 1)] == 3
            # a structural change: a seamless reload of the adopted master
            successor.cli("rs", "delete", "web", rs_key(topology, 3))
            assert master_pid(successor) == master
            assert successor.worker_pids() != workers
            load.wait_answered(25)  # served by the new worker
            results = load.finish()
            assert_no_failures(results, minimum=50)
            assert_shares(measure(topology, 200)["counts"], {"rs1": 150, "rs2": 50})
            shown = successor.cli("status").stdout
            assert "web" in shown and rs_key(topology, 2) in shown
        finally:
            stop_daemon(successor)
    finally:
        stop_daemon(daemon)


# --------------------------------------------------------------------------- clean stop


def test_stop_with_the_data_plane_drains_and_removes_everything_it_started(
    topology: Topology,
) -> None:
    topology.start_real_servers()
    daemon = start_daemon(topology, {"virtual_services": [web_service(topology)]})
    try:
        master, workers = master_pid(daemon), daemon.worker_pids()
        assert f"{topology.vip()}/32" in lb_addresses(topology)
        # a request in flight when the daemon is told to stop is answered, not cut
        slow = topology.start_client(
            "--url", f"http://{topology.vip()}/slow?ms=1500", "--requests", "1", "--timeout", "10"
        )
        wait_connections(daemon, 1)
        code = daemon.stop(data_plane=True)
        in_flight = topology.finish_client(slow)
    finally:
        stop_daemon(daemon)  # only does something if the daemon failed to stop
    assert code == 0, daemon.log()
    assert in_flight["ok"] == 1, in_flight["errors"]
    for pid in (master, *workers):
        assert not pid_alive(pid), f"HAProxy process {pid} survived the daemon"
    assert "haproxy" not in process_names(topology.lb.netns)
    assert topology.vip() not in lb_addresses(topology)
    assert not (daemon.data_dir / "bascule.sock").exists()
    assert not (daemon.data_dir / "haproxy" / "haproxy.pid").exists()


# --------------------------------------------------------------------------- bad input


def test_bad_input_is_refused_with_its_field_path_and_changes_nothing(
    topology: Topology,
) -> None:
    topology.start_real_servers()
    service = web_service(topology)
    service["real_servers"][0]["weight"] = 2000
    daemon = start_daemon(topology, {"virtual_services": [service]})
    try:
        before = measure(topology, 200)["counts"]
        assert_shares(before, {"rs1": 100, "rs2": 50, "rs3": 50})
        exported = daemon.cli("export").stdout
        workers = daemon.worker_pids()
        vip = topology.vip()
        rs1 = rs_key(topology, 1)

        def refused(args: list[str], path: str, reason: str) -> None:
            result = daemon.cli(*args, check=False)
            assert result.returncode != 0, (args, result.stdout)
            assert f"{path}: {reason}" in result.stderr, (args, result.stderr)
            assert daemon.worker_pids() == workers, args

        refused(
            ["vs", "add", "other", "--address", vip, "--port", "70000"],
            "virtual_services[1].port",
            "must be between 1 and 65535",
        )
        refused(
            ["rs", "add", "web", "198.18.0.14:80", "--weight", "70000"],
            "virtual_services[0].real_servers[3].weight",
            "must be between 1 and 65535",
        )
        refused(
            ["rs", "set", "web", rs1, "weight=0"],
            "virtual_services[0].real_servers[0].weight",
            "must be between 1 and 65535",
        )
        refused(
            ["vs", "set", "web", "scheduler=foo"],
            "virtual_services[0].scheduler",
            "must be one of",
        )

        current = {"virtual_services": [service]}
        duplicate_name = {"virtual_services": [service, {**service, "port": 81}]}
        overlapping = {
            "virtual_services": [
                service,
                {**web2_service(topology), "port": 8000, "extra_ports": ["79-81"]},
            ]
        }
        twice = json.loads(json.dumps(current))
        twice["virtual_services"][0]["real_servers"].append(
            {"address": topology.real_servers[0].address, "port": 80}
        )
        unknown = json.loads(json.dumps(current))
        unknown["virtual_services"][0]["colour"] = "blue"
        documents = [
            (duplicate_name, "virtual_services[1].name", "'web' is already the name"),
            (overlapping, "virtual_services[1].extra_ports[0]", "79-81"),
            (twice, "virtual_services[0].real_servers[3]", f"{rs1} is already real_servers[0]"),
            (unknown, "virtual_services[0].colour", "is not a known field"),
        ]
        for document, path, reason in documents:
            result = daemon.apply(document, check=False)
            assert result.returncode != 0, (path, result.stdout)
            assert f"error: {path}: " in result.stderr and reason in result.stderr, result.stderr
            assert daemon.worker_pids() == workers, path

        assert daemon.cli("export").stdout == exported
        assert daemon.worker_pids() == workers
        report = status(daemon)
        assert report["apply_ok"] and report["revision"] == 1, report
        assert_shares(measure(topology, 200)["counts"], before)
    finally:
        stop_daemon(daemon)


# --------------------------------------------------------------------------- injection


def test_config_injection_is_refused_or_quoted_through_every_door(topology: Topology) -> None:
    topology.start_real_servers()
    daemon = start_daemon(topology, {"virtual_services": [web_service(topology)]})
    try:
        workers = daemon.worker_pids()
        exported = daemon.cli("export").stdout
        vip = topology.vip()

        # -- refused: control characters can only be meant to break the file's lines
        document: dict[str, Any] = {"virtual_services": [web_service(topology)]}
        vs = document["virtual_services"][0]
        vs["check"].update(
            path="/health" + INJECTED,
            host="example.com\r" + INJECTED,
            headers={"X-Evil": "a" + INJECTED, "X-Evil" + INJECTED: "b"},
            expect_body="up\x00" + INJECTED,
        )
        vs["real_servers"][0]["address"] += INJECTED
        second = {**web2_service(topology), "name": "web2" + INJECTED}
        second["check"] = {"type": "http", "method": "POST", "post_data": "x\r" + INJECTED}
        document["virtual_services"].append(second)
        result = daemon.apply(document, check=False)
        assert result.returncode != 0, result.stdout
        for path in (
            "virtual_services[0].check.path",
            "virtual_services[0].check.host",
            "virtual_services[0].check.headers",
            "virtual_services[0].check.expect_body",
            "virtual_services[0].real_servers[0].address",
            "virtual_services[1].name",
            "virtual_services[1].check.post_data",
        ):
            assert f"error: {path}" in result.stderr, (path, result.stderr)

        cli_attempts = [
            # a newline in a CLI value (YAML folds it: the path then holds spaces)
            (["vs", "set", "web", "check.path=/x" + INJECTED], "check.path"),
            # YAML double quotes turn \r\n and \0 into the real characters
            (
                ["vs", "set", "web", 'check.host="x\\r\\n    server evil 198.18.0.66:80"'],
                "check.host",
            ),
            (
                ["vs", "set", "web", 'check.headers.X-Evil="v\\r\\n    server evil"'],
                "check.headers",
            ),
            (
                ["vs", "set", "web", 'check.expect_body="up\\0\\n    server evil 198.18.0.66:80"'],
                "check.expect_body",
            ),
            (
                ["rs", "add", "web", topology.real_servers[0].address + INJECTED + ":80"],
                "virtual_services[0].real_servers[3].address",
            ),
            (
                ["vs", "add", "web2" + INJECTED, "--address", vip, "--port", str(WEB2_PORT)],
                "virtual_services[1].name",
            ),
        ]
        for args, path in cli_attempts:
            result = daemon.cli(*args, check=False)
            assert result.returncode != 0, (args, result.stdout)
            assert path in result.stderr and "error:" in result.stderr, (args, result.stderr)

        with api_client(daemon) as api:
            for changes, path in [
                ({"check": {"path": "/\x00" + INJECTED}}, "check.path"),
                ({"check": {"headers": {"X-Evil": "\"'" + INJECTED}}}, "check.headers"),
                ({"check": {"expect_body": "up\r" + INJECTED}}, "check.expect_body"),
            ]:
                with pytest.raises(CliError) as refused:
                    api.update_virtual_service("web", changes)
                assert path in str(refused.value), refused.value
            with pytest.raises(CliError) as refused:
                api.add_real_server("web", {"address": "198.18.0.14" + INJECTED, "port": 80})
            assert "real_servers[3].address" in str(refused.value)

        assert daemon.cli("export").stdout == exported
        assert daemon.worker_pids() == workers
        assert "evil" not in rendered_config(daemon)

        # -- legal characters (quotes, #, $, %, \) are kept, each value one quoted word
        header_value = "it's \"quoted\" # not a comment $HOME %[src] \\' backup '"
        header_name = "X-It's#$%&*"
        regex = "^up|'x\" backup #\\$%[src]"
        path = "/health?q='a'\"b\"$c%25&d=#frag"
        legal = {"virtual_services": [web_service(topology)]}
        legal["virtual_services"][0]["check"].update(
            path=path, headers={header_name: header_value}, expect_body=regex
        )
        daemon.apply(legal, "-m", "quoting")
        # through the CLI too: a header value with YAML quoting, one more header
        cli_value = "say \"hi\" # $USER 100% ' weight 0 '"
        daemon.cli("vs", "set", "web", f"check.headers.X-Cli={json.dumps(cli_value)}")
        config = rendered_config(daemon)
        assert "evil" not in config
        servers = [line.split() for line in config.splitlines() if line.split()[:1] == ["server"]]
        assert sorted(words[1] for words in servers) == [rs_key(topology, n) for n in (1, 2, 3)]
        assert all(words[3:5] == ["weight", "1"] and "backup" not in words for words in servers)
        send = shlex.split(next(line for line in config.splitlines() if "check send" in line))
        assert send[:8] == ["http-check", "send", "meth", "GET", "uri", path, "ver", "HTTP/1.1"]
        assert send[8::3] == ["hdr"] * 3
        assert list(zip(send[9::3], send[10::3], strict=True)) == [
            ("Host", vip),
            (header_name, header_value.replace("%", "%%")),  # log-format: % doubled
            ("X-Cli", cli_value.replace("%", "%%")),
        ]
        expect = next(line for line in config.splitlines() if "expect rstring" in line)
        assert shlex.split(expect) == ["http-check", "expect", "rstring", regex]
        # HAProxy read it the same way: the reloaded worker's checks pass, and go on passing
        # for more than `fall` intervals of the new check; traffic still flows

        def checked_up() -> bool:
            servers = status(daemon)["virtual_services"][0]["real_servers"]
            return all(s["status"] == "up" and s["check_code"] == 200 for s in servers)

        def never_refused() -> bool:
            # A check that answered must have answered 200 (L7OK: the expected answer; its
            # code read as 0 once, while the next check ran); one that timed out on a loaded
            # machine (L4TOUT/L7TOUT: no code) says nothing about how HAProxy read the
            # request, and one timeout is less than ``fall``, so the server stays up.
            servers = status(daemon)["virtual_services"][0]["real_servers"]
            seen = [(s["status"], s["check_result"], s["check_code"]) for s in servers]
            fine = all(
                state == "up"
                and (code == 200 or result == "L7OK" or (code is None and "TOUT" in (result or "")))
                for state, result, code in seen
            )
            assert fine, f"a server went down or a check was refused: {seen}"
            return fine

        wait_until("every server checked up by the reloaded worker", checked_up)
        holds("every server up, every answered check 200", never_refused, duration=2.5, poll=0.5)
        assert measure(topology, 90)["counts"] == {"rs1": 30, "rs2": 30, "rs3": 30}
    finally:
        stop_daemon(daemon)


# --------------------------------------------------------------------------- failed apply


def test_a_listener_that_cannot_be_bound_is_refused_before_anything_changes(
    topology: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`haproxy -c` does not bind; a reload that cannot bind would pause every listener of
    the running HAProxy while it retries (new connections refused for ~2 s). The engine
    tries the new listeners first and refuses the change: nothing is committed, nothing
    reloads, no connection is refused."""
    monkeypatch.setenv("COLUMNS", "250")  # rich tables in the CLI's output, unwrapped
    topology.start_real_servers()
    daemon = start_daemon(topology, {"virtual_services": [web_service(topology)]})
    try:
        vip = topology.vip()
        squatter = topology.popen(
            "lb",
            [
                sys.executable,
                "-c",
                "import socket,sys,time\n"
                "s=socket.socket()\n"
                f"s.bind(({vip!r},{WEB2_PORT}))\n"
                "s.listen()\n"
                "print('ready',flush=True)\n"
                "time.sleep(120)\n",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        wait_ready(squatter)
        pids = daemon.worker_pids()
        exported = daemon.cli("export").stdout
        load = Load(topology, name="refused-bind")
        load.wait_answered(10)
        refused = daemon.cli(
            "vs", "add", "web2", "--address", vip, "--port", str(WEB2_PORT), "--check", "tcp",
            check=False,
        )  # fmt: skip
        assert refused.returncode != 0, refused.stdout
        assert f"cannot bind {vip}:{WEB2_PORT}: address already in use" in refused.stderr
        report = status(daemon)
        assert report["apply_ok"] and report["revision"] == report["applied_revision"] == 1
        assert daemon.cli("export").stdout == exported
        assert daemon.worker_pids() == pids
        assert "listen web2" not in rendered_config(daemon)
        load.wait_answered(10)
        assert_no_failures(load.finish(), minimum=20)

        # once the port is free the same change applies, and a rollback undoes it
        topology.stop(squatter)
        daemon.cli("vs", "add", "web2", "--address", vip, "--port", str(WEB2_PORT))
        daemon.cli("rs", "add", "web2", rs_key(topology, 1))
        report = status(daemon)
        assert report["apply_ok"] and report["applied_revision"] == 3, report
        assert measure(topology, 3, port=WEB2_PORT)["counts"] == {"rs1": 3}
        daemon.cli("rollback", "1")
        report = status(daemon)
        assert report["apply_ok"] and report["revision"] == report["applied_revision"] == 4
        assert [s["name"] for s in report["virtual_services"]] == ["web"]
        gone = topology.run_client("--url", f"http://{vip}:{WEB2_PORT}/", "--requests", "1")
        assert gone["error_kinds"] == {"ConnectionRefusedError": 1}
        assert measure(topology, 90)["counts"] == {"rs1": 30, "rs2": 30, "rs3": 30}
    finally:
        stop_daemon(daemon)


def test_a_failed_apply_leaves_the_previous_state_serving_and_says_why(
    topology: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change that validates and passes `haproxy -c` but cannot be carried out (here: the
    VIP cannot be added, IPv6 is off in the test namespaces) is committed as the desired
    state, reported as apply_error, and the running state is untouched."""
    monkeypatch.setenv("COLUMNS", "250")
    topology.start_real_servers()
    daemon = start_daemon(topology, {"virtual_services": [web_service(topology)]})
    try:
        pids = daemon.worker_pids()
        load = Load(topology, name="failed-apply")
        load.wait_answered(10)
        web6 = {"name": "web6", "address": "2001:db8::100", "port": 80, "interface": "eth0"}
        failed = daemon.apply(
            {"virtual_services": [web_service(topology), web6]}, "-m", "web6", check=False
        )
        assert failed.returncode == 1, failed.stdout
        assert "error: " in failed.stderr and "2001:db8::100" in failed.stderr, failed.stderr
        report = status(daemon)
        assert not report["apply_ok"], report
        assert report["applied_revision"] == 1 and report["revision"] >= 2, report
        services = {s["name"]: s for s in report["virtual_services"]}
        assert services["web"]["status"] == "apply_error"
        assert services["web"]["message"] == report["apply_message"] != ""
        shown = daemon.cli("status").stdout
        assert "apply_error" in shown
        assert "listen web6" not in rendered_config(daemon)
        assert daemon.worker_pids() == pids  # nothing reloaded
        load.wait_answered(10)
        assert_no_failures(load.finish(), minimum=20)
        # fix forward: remove the service; the whole revision applies again
        daemon.cli("vs", "delete", "web6")
        report = status(daemon)
        assert report["apply_ok"] and report["revision"] == report["applied_revision"], report
        assert measure(topology, 90)["counts"] == {"rs1": 30, "rs2": 30, "rs3": 30}
    finally:
        stop_daemon(daemon)


# --------------------------------------------------------------------------- history


def test_history_diff_and_rollback_through_the_cli(
    topology: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # rich tables in the CLI's output, unwrapped
    topology.start_real_servers()
    daemon = BasculeDaemon(topology).start()
    try:
        daemon.apply({"virtual_services": [web_service(topology)]}, "-m", "three real servers")
        topology.wait_tcp("client", topology.vip(), 80)
        wait_up(daemon)
        with api_client(daemon) as api:
            result = api.put_config(
                {"virtual_services": [web_service(topology, servers=(1, 2))]},
                message="rs3 out for maintenance",
            )
        assert result["applied"] and result["revision"] == 2
        assert measure(topology, 60)["counts"] == {"rs1": 30, "rs2": 30}

        listed = daemon.cli("history").stdout
        assert "three real servers" in listed and "rs3 out for maintenance" in listed
        assert API_AUTHOR in listed and "@cli" in listed
        items = daemon.cli_json("history")["items"]
        assert [(i["number"], i["message"]) for i in items] == [
            (2, "rs3 out for maintenance"),
            (1, "three real servers"),
        ]
        assert items[0]["author"] == API_AUTHOR and items[1]["author"].endswith("@cli")

        diff = daemon.cli("diff", "1", "2").stdout
        assert f"- virtual_services[web].real_servers[{rs_key(topology, 3)}]" in diff
        assert rs_key(topology, 1) not in diff

        rolled = daemon.cli("rollback", "1")
        assert "revision 3 applied" in rolled.stdout
        assert f"+ virtual_services[web].real_servers[{rs_key(topology, 3)}]" in rolled.stdout
        latest = daemon.cli_json("history", "--limit", "1")["items"][0]
        assert latest["number"] == 3 and latest["rolled_back_from"] == 1
        assert latest["message"] == "roll back to revision 1"
        wait_up(daemon)
        assert measure(topology, 90)["counts"] == {"rs1": 30, "rs2": 30, "rs3": 30}
    finally:
        stop_daemon(daemon)
