"""The ``bascule`` CLI end to end: real commands against a real API server on a unix socket.

The server is the daemon's own API (``create_app``) over the service layer, a SQLite store and
the FakeEngine, served by uvicorn on ``<data dir>/bascule.sock`` in a background thread, so the
CLI is exercised exactly as a user runs it against ``bascule run``.
"""

from __future__ import annotations

import gc
import json
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from api_apps import api_app
from typer.testing import CliRunner, Result

from bascule.api.deps import ApiServices
from bascule.cli.connection import error_lines
from bascule.cli.errors import CliError
from bascule.cli.main import app
from bascule.cli.rs import key_of, parse_server
from bascule.cli.vs import parse_assignments
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import FakeEngine
from bascule.model import RealServerState
from bascule.store.revisions import RevisionStore

WEB = """\
virtual_services:
  - name: web
    address: 198.18.0.100
    port: 80
    scheduler: weighted_round_robin
    real_servers:
      - address: 198.18.0.4
        port: 80
      - address: 198.18.0.5
        port: 80
        weight: {weight}
"""


@dataclass
class Daemon:
    data_dir: Path
    engine: FakeEngine
    store: RevisionStore

    def head(self) -> int | None:
        return self.store.head_number()


async def _system() -> dict[str, Any]:
    return {"engines": {"fake": {"running": True}}}


@pytest.fixture
def daemon(make_api_services: Callable[..., ApiServices]) -> Iterator[Daemon]:
    # A short path: a unix socket path must fit in 108 bytes.
    data_dir = Path(tempfile.mkdtemp(dir="/tmp", prefix="bascule-cli-"))
    store = RevisionStore(data_dir / "bascule.db")
    engine = FakeEngine()
    service = ConfigService(store=store, engines=[engine], vips=NullVipManager())
    api = api_app(make_api_services(service, _system, database=data_dir / "bascule.db"))
    server = uvicorn.Server(
        uvicorn.Config(
            api,
            uds=str(data_dir / "bascule.sock"),
            log_level="warning",
            lifespan="off",
            ws="none",
        )
    )
    thread = threading.Thread(target=server.run, name="api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test API server did not start")
        time.sleep(0.01)
    try:
        yield Daemon(data_dir=data_dir, engine=engine, store=store)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def run(daemon: Daemon | Path, *args: str, input: str | None = None) -> Result:
    data_dir = daemon.data_dir if isinstance(daemon, Daemon) else daemon
    runner = CliRunner()
    return runner.invoke(
        app,
        ["--data-dir", str(data_dir), *args],
        input=input,
        env={"COLUMNS": "200", "NO_COLOR": "1"},
    )


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    assert result.stderr == ""
    return result


def failed(result: Result) -> list[str]:
    """The stderr lines of a failed command, each of them an ``error:`` line."""
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert lines
    assert all(line.startswith("error: ") for line in lines), lines
    return lines


def write(tmp_path: Path, text: str, name: str = "bascule.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def apply_web(daemon: Daemon, tmp_path: Path, weight: int = 1000) -> None:
    ok(run(daemon, "apply", "-f", str(write(tmp_path, WEB.format(weight=weight), "web.yaml"))))


# -- apply and export -------------------------------------------------------------------------


def test_apply_then_export_round_trips(daemon: Daemon, tmp_path: Path) -> None:
    source = write(tmp_path, WEB.format(weight=500))

    applied = ok(run(daemon, "apply", "-f", str(source), "-m", "first web"))

    assert applied.stdout.startswith('+ virtual_services: [{"name": "web"')
    assert "replace the configuration and reload" in applied.stdout
    assert applied.stdout.rstrip().endswith("revision 1 applied")
    assert daemon.engine.reloads == 1

    exported = ok(run(daemon, "export")).stdout
    first_line, _, body = exported.partition("\n")
    assert first_line == "# bascule revision 1"
    document = yaml.safe_load(body)
    assert document == daemon.store.get(1).document
    web = document["virtual_services"][0]
    assert list(web)[:4] == ["name", "address", "address6", "port"]  # document order, not sorted
    assert [rs["weight"] for rs in web["real_servers"]] == [1000, 500]

    again = ok(run(daemon, "apply", "-f", "-", input=exported))
    assert again.stdout.strip() == "no change (revision 1)"
    assert daemon.head() == 1


def test_history_records_the_message_and_the_cli_author(daemon: Daemon, tmp_path: Path) -> None:
    ok(run(daemon, "apply", "-f", str(write(tmp_path, WEB.format(weight=1))), "-m", "first"))

    revision = daemon.store.get(1)

    assert revision.message == "first"
    assert revision.author.endswith("@cli")


def test_export_formats_and_output_file(daemon: Daemon, tmp_path: Path) -> None:
    empty = ok(run(daemon, "export")).stdout
    assert not empty.startswith("#")  # no revision line while the store is empty
    assert yaml.safe_load(empty) == {"schema_version": 2, "virtual_services": []}

    apply_web(daemon, tmp_path)
    as_json = json.loads(ok(run(daemon, "export", "--format", "json")).stdout)
    assert as_json == daemon.store.get(1).document

    api_json = json.loads(ok(run(daemon, "--json", "export")).stdout)
    assert api_json == {"revision": 1, "document": as_json}

    target = tmp_path / "out.yaml"
    ok(run(daemon, "export", "-o", str(target)))
    assert target.read_text().startswith("# bascule revision 1\n")


def test_dry_run_shows_the_plan_and_changes_nothing(daemon: Daemon, tmp_path: Path) -> None:
    apply_web(daemon, tmp_path)
    before = ok(run(daemon, "export")).stdout
    changed = write(tmp_path, WEB.format(weight=200), "changed.yaml")

    result = ok(run(daemon, "apply", "-f", str(changed), "--dry-run"))

    assert "~ virtual_services[web].real_servers[198.18.0.5:80].weight: 1000 -> 200" in (
        result.stdout
    )
    assert "(runtime, no reload)" in result.stdout  # weights are rescaled for the engine
    assert "dry run: nothing was changed" in result.stdout
    assert daemon.head() == 1
    assert ok(run(daemon, "export")).stdout == before


def test_apply_dry_run_json(daemon: Daemon, tmp_path: Path) -> None:
    source = write(tmp_path, WEB.format(weight=7))

    answer = json.loads(ok(run(daemon, "--json", "apply", "-f", str(source), "--dry-run")).stdout)

    assert answer["dry_run"] is True
    assert answer["changed"] is True
    assert answer["diff"][0]["op"] == "add"
    assert daemon.head() is None


def test_a_bad_weight_names_the_field_and_changes_nothing(daemon: Daemon, tmp_path: Path) -> None:
    apply_web(daemon, tmp_path)
    before = ok(run(daemon, "export")).stdout
    bad = write(tmp_path, WEB.format(weight=0), "bad.yaml")

    lines = failed(run(daemon, "apply", "-f", str(bad)))

    assert lines == [
        "error: virtual_services[0].real_servers[1].weight: must be between 1 and 65535"
    ]
    assert ok(run(daemon, "export")).stdout == before


def test_every_field_error_gets_its_own_line(daemon: Daemon, tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        WEB.format(weight=0).replace("port: 80\n    scheduler", "port: 70000\n    scheduler"),
    )

    lines = failed(run(daemon, "apply", "-f", str(bad)))

    assert len(lines) == 2
    assert any("virtual_services[0].port" in line for line in lines)
    assert any("virtual_services[0].real_servers[1].weight" in line for line in lines)


def test_yaml_syntax_error_names_the_file_and_line(daemon: Daemon, tmp_path: Path) -> None:
    bad = write(tmp_path, "virtual_services:\n  - name: web\n   address: [1\n")

    lines = failed(run(daemon, "apply", "-f", str(bad)))

    assert len(lines) == 1
    assert lines[0].startswith(f"error: {bad} line 3: ")
    assert daemon.head() is None


def test_a_missing_file_is_one_error_line(daemon: Daemon, tmp_path: Path) -> None:
    lines = failed(run(daemon, "apply", "-f", str(tmp_path / "nope.yaml")))

    assert lines == [f"error: cannot read {tmp_path / 'nope.yaml'}: No such file or directory"]


def test_applying_a_stale_export_is_a_conflict(daemon: Daemon, tmp_path: Path) -> None:
    apply_web(daemon, tmp_path)
    exported = tmp_path / "exported.yaml"
    ok(run(daemon, "export", "-o", str(exported)))
    ok(run(daemon, "vs", "set", "web", "scheduler=least_connection"))  # revision 2
    edited = exported.read_text().replace("weight: 1000", "weight: 900")
    exported.write_text(edited)

    lines = failed(run(daemon, "apply", "-f", str(exported)))

    assert lines == [
        "error: revision 1 is stale: the current revision is 2; "
        "re-read the configuration and apply your change again"
    ]
    assert daemon.head() == 2

    forced = ok(run(daemon, "apply", "-f", str(exported), "--force"))
    assert "revision 3 applied" in forced.stdout


def test_a_failed_apply_is_reported_and_exits_1(daemon: Daemon, tmp_path: Path) -> None:
    daemon.engine.fail_apply_with = "the engine is on fire"
    source = write(tmp_path, WEB.format(weight=5))

    result = run(daemon, "apply", "-f", str(source))

    lines = failed(result)
    assert len(lines) == 1
    assert "revision 1 is committed but the engine could not apply it" in lines[0]
    assert "the engine is on fire" in lines[0]
    assert result.stdout.startswith("+ virtual_services:")  # the plan is still shown

    status = ok(run(daemon, "status"))
    assert "apply error:" in status.stdout
    assert "apply_error" in status.stdout


def test_engine_refusal_is_reported(daemon: Daemon, tmp_path: Path) -> None:
    daemon.engine.reject_with = "line 12: unknown keyword 'frob'"

    lines = failed(run(daemon, "apply", "-f", str(write(tmp_path, WEB.format(weight=5)))))

    assert lines == ["error: line 12: unknown keyword 'frob'"]
    assert daemon.head() is None


# -- virtual services and real servers ---------------------------------------------------------


def test_vs_add_list_show_set_delete(daemon: Daemon) -> None:
    added = ok(
        run(
            daemon,
            "vs",
            "add",
            "api",
            "--address",
            "198.18.0.101",
            "--port",
            "443",
            "--type",
            "generic",
            "--scheduler",
            "least_connection",
            "--check",
            "tcp",
            "--extra-port",
            "8443",
            "--extra-port",
            "9000-9010",
            "--disabled",
        )
    )
    assert "revision 1 applied" in added.stdout
    service = daemon.store.get(1).document["virtual_services"][0]
    assert service["extra_ports"] == [8443, "9000-9010"]
    assert service["enabled"] is False
    assert service["check"]["type"] == "tcp"

    listing = ok(run(daemon, "vs", "list")).stdout
    assert "api" in listing
    assert "443,8443,9000-9010" in listing
    assert "least_connection" in listing

    items = json.loads(ok(run(daemon, "vs", "list", "--json")).stdout)["items"]
    assert [vs["name"] for vs in items] == ["api"]

    ok(run(daemon, "vs", "set", "api", "check.interval=5", "enabled=true", "scheduler=round_robin"))
    service = daemon.store.get(2).document["virtual_services"][0]
    assert service["check"]["interval"] == 5
    assert service["check"]["type"] == "tcp"  # nested fields merge
    assert service["enabled"] is True
    assert service["scheduler"] == "round_robin"

    shown = ok(run(daemon, "vs", "show", "api")).stdout
    assert "check.interval" in shown
    assert "no real servers" in shown
    assert json.loads(ok(run(daemon, "--json", "vs", "show", "api")).stdout)["port"] == 443

    ok(run(daemon, "vs", "delete", "api"))
    assert daemon.store.get(3).document["virtual_services"] == []
    assert "no virtual services" in ok(run(daemon, "vs", "list")).stdout


def test_vs_set_another_scheduler_drops_the_adaptive_agent(daemon: Daemon, tmp_path: Path) -> None:
    adaptive = WEB.format(weight=1000).replace(
        "scheduler: weighted_round_robin", "scheduler: adaptive\n    adaptive: {port: 8080}"
    )
    ok(run(daemon, "apply", "-f", str(write(tmp_path, adaptive))))
    assert daemon.store.get(1).document["virtual_services"][0]["adaptive"]["port"] == 8080
    ok(run(daemon, "vs", "set", "web", "scheduler=round_robin"))
    service = daemon.store.get(2).document["virtual_services"][0]
    assert (service["scheduler"], service["adaptive"]) == ("round_robin", None)


def test_vs_errors(daemon: Daemon) -> None:
    assert failed(run(daemon, "vs", "show", "nope")) == [
        "error: there is no virtual service named 'nope'"
    ]
    lines = failed(run(daemon, "vs", "add", "Bad_Name", "--address", "198.18.0.1", "--port", "0"))
    assert any(line.startswith("error: virtual_services[0].name: ") for line in lines)
    assert any(line.startswith("error: virtual_services[0].port: ") for line in lines)
    assert daemon.head() is None


def test_rs_add_set_state_delete(daemon: Daemon) -> None:
    ok(
        run(
            daemon,
            "vs",
            "add",
            "web",
            "--address",
            "198.18.0.100",
            "--port",
            "80",
            "--scheduler",
            "weighted_round_robin",
        )
    )

    ok(run(daemon, "rs", "add", "web", "198.18.0.4:80", "--weight", "2000", "--critical"))
    ok(run(daemon, "rs", "add", "web", "198.18.0.5:8080", "--max-connections", "10"))
    ok(run(daemon, "rs", "add", "web", "[2001:db8::1]:80", "--state", "disabled"))
    servers = daemon.store.get(4).document["virtual_services"][0]["real_servers"]
    assert [(rs["address"], rs["port"]) for rs in servers] == [
        ("198.18.0.4", 80),
        ("198.18.0.5", 8080),
        ("2001:db8::1", 80),
    ]
    assert servers[0]["weight"] == 2000 and servers[0]["critical"] is True
    assert servers[1]["max_connections"] == 10
    assert servers[2]["state"] == "disabled"

    weight = ok(run(daemon, "rs", "set", "web", "198.18.0.5:8080", "weight=500"))
    assert "~ virtual_services[web].real_servers[198.18.0.5:8080].weight: 1000 -> 500" in (
        weight.stdout
    )
    assert "(runtime, no reload)" in weight.stdout

    reloads = daemon.engine.reloads
    ok(run(daemon, "rs", "drain", "web", "198.18.0.4:80"))
    assert daemon.engine.servers[("web", "198.18.0.4:80")].state is RealServerState.drain
    ok(run(daemon, "rs", "disable", "web", "198.18.0.4:80"))
    assert daemon.engine.servers[("web", "198.18.0.4:80")].state is RealServerState.disabled
    ok(run(daemon, "rs", "enable", "web", "[2001:db8::1]:80"))
    assert daemon.engine.servers[("web", "[2001:db8::1]:80")].state is RealServerState.enabled
    assert daemon.engine.reloads == reloads  # state changes are runtime commands

    ok(run(daemon, "rs", "delete", "web", "[2001:db8::1]:80"))
    shown = ok(run(daemon, "vs", "show", "web")).stdout
    assert "198.18.0.4:80" in shown
    assert "2001:db8::1" not in shown

    assert failed(run(daemon, "rs", "enable", "web", "198.18.0.9:80")) == [
        "error: virtual service 'web' has no real server 198.18.0.9:80"
    ]
    lines = failed(run(daemon, "rs", "set", "web", "198.18.0.4:80", "weight=0"))
    assert lines == [
        "error: virtual_services[0].real_servers[0].weight: must be between 1 and 65535"
    ]


def test_state_change_json(daemon: Daemon, tmp_path: Path) -> None:
    apply_web(daemon, tmp_path)

    answer = json.loads(ok(run(daemon, "--json", "rs", "drain", "web", "198.18.0.4:80")).stdout)

    assert answer["revision"] == 2
    assert answer["applied"] is True
    assert answer["reloads"] is False


def test_bulk_state_changes_are_one_revision(daemon: Daemon, tmp_path: Path) -> None:
    two = WEB.format(weight=1000) + WEB.format(weight=1000).split("\n", 1)[1].replace(
        "name: web", "name: api"
    ).replace("port: 80\n    scheduler", "port: 81\n    scheduler")
    ok(run(daemon, "apply", "-f", str(write(tmp_path, two, "two.yaml"))))

    drained = ok(run(daemon, "rs", "drain", "--address", "198.18.0.5"))
    assert "revision 2 applied" in drained.stdout
    for service in ("web", "api"):
        assert daemon.engine.servers[(service, "198.18.0.5:80")].state is RealServerState.drain
        assert daemon.engine.servers[(service, "198.18.0.4:80")].state is RealServerState.enabled
    assert daemon.store.get(2).message == "drain real servers at 198.18.0.5"

    ok(
        run(
            daemon, "rs", "enable", "--server", "web/198.18.0.5:80", "--server", "api/198.18.0.5:80"
        )
    )
    assert daemon.store.head_number() == 3
    assert daemon.engine.servers[("api", "198.18.0.5:80")].state is RealServerState.enabled

    assert failed(run(daemon, "rs", "disable", "--address", "198.18.0.9")) == [
        "error: no real server has the address 198.18.0.9"
    ]
    assert run(daemon, "rs", "disable", "--server", "web").exit_code == 2  # usage errors
    assert run(daemon, "rs", "disable").exit_code == 2


# -- status ------------------------------------------------------------------------------------


def test_status_table(daemon: Daemon, tmp_path: Path) -> None:
    apply_web(daemon, tmp_path)
    ok(run(daemon, "rs", "disable", "web", "198.18.0.5:80"))

    table = ok(run(daemon, "status")).stdout

    assert table.startswith("revision 2, applied 2")
    assert "web" in table and "198.18.0.100" in table and "80/tcp" in table
    assert "web: real servers" in table
    rows = {line.split()[0]: line.split() for line in table.splitlines() if line.strip()}
    assert rows["198.18.0.5:80"][1] == "disabled"
    status, weight, engine_weight = rows["198.18.0.4:80"][1:4]
    assert (status, weight) == ("unchecked", "1000")
    assert engine_weight == str(daemon.engine.servers[("web", "198.18.0.4:80")].weight)


def test_status_json_and_one_service(daemon: Daemon, tmp_path: Path) -> None:
    apply_web(daemon, tmp_path)
    ok(run(daemon, "vs", "add", "api", "--address", "198.18.0.101", "--port", "443"))

    report = json.loads(ok(run(daemon, "status", "--json")).stdout)
    assert report["revision"] == 2
    assert [vs["name"] for vs in report["virtual_services"]] == ["web", "api"]
    assert report["virtual_services"][0]["real_servers"][0]["key"] == "198.18.0.4:80"

    one = json.loads(ok(run(daemon, "--json", "status", "api")).stdout)
    assert [vs["name"] for vs in one["virtual_services"]] == ["api"]
    assert "web: real servers" not in ok(run(daemon, "status", "api")).stdout

    assert failed(run(daemon, "status", "nope")) == [
        "error: there is no virtual service named 'nope'"
    ]


def test_status_of_an_empty_daemon(daemon: Daemon) -> None:
    out = ok(run(daemon, "status")).stdout
    assert out.splitlines() == [
        "revision -, applied -, engine fake fake (not running)",
        "no virtual services",
    ]


# -- history -------------------------------------------------------------------------------


def test_history_show_diff_rollback(daemon: Daemon, tmp_path: Path) -> None:
    apply_web(daemon, tmp_path)
    ok(run(daemon, "rs", "set", "web", "198.18.0.4:80", "weight=10"))
    ok(run(daemon, "vs", "set", "web", "scheduler=least_connection"))

    history = ok(run(daemon, "history")).stdout
    lines = [line for line in history.splitlines() if line.strip()]
    assert [line.split()[0] for line in lines[1:]] == ["3", "2", "1"]
    assert "change virtual service web" in history
    assert "@cli" in history

    page = json.loads(ok(run(daemon, "--json", "history", "--limit", "2")).stdout)
    assert [item["number"] for item in page["items"]] == [3, 2]
    assert page["next_before"] == 2
    assert "bascule history --before 2" in ok(run(daemon, "history", "-n", "2")).stdout

    shown = ok(run(daemon, "show-revision", "2")).stdout
    assert "~ virtual_services[web].real_servers[198.18.0.4:80].weight: 1000 -> 10" in shown
    assert ok(run(daemon, "history", "show", "2")).stdout == shown
    with_document = ok(run(daemon, "history", "show", "2", "--document")).stdout
    assert "real_servers:" in with_document
    assert json.loads(ok(run(daemon, "--json", "show-revision", "2")).stdout)["number"] == 2

    diff = ok(run(daemon, "diff", "1", "3")).stdout
    assert '~ virtual_services[web].scheduler: "weighted_round_robin" -> "least_connection"' in diff
    assert "weight: 1000 -> 10" in diff
    assert "same configuration" in ok(run(daemon, "diff", "2", "2")).stdout

    rolled = ok(run(daemon, "rollback", "1"))
    assert "revision 4 applied" in rolled.stdout
    assert daemon.store.get(4).document == daemon.store.get(1).document
    assert daemon.store.get(4).rolled_back_from == 1

    assert failed(run(daemon, "show-revision", "99"))[0].startswith("error: ")


def test_empty_history(daemon: Daemon) -> None:
    assert ok(run(daemon, "history")).stdout.strip() == "no revisions yet"


# -- reaching the daemon and usage -------------------------------------------------------------


def test_daemon_not_running(tmp_path: Path) -> None:
    result = run(tmp_path, "status")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"error: cannot reach the Bascule daemon at {tmp_path / 'bascule.sock'}: "
        "is `bascule run` running?\n"
    )


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_stale_socket_is_a_daemon_not_running(tmp_path: Path) -> None:
    # short path: unix socket paths are limited to 108 bytes
    data_dir = Path(tempfile.mkdtemp(dir="/tmp", prefix="bascule-stale-"))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
            stale.bind(str(data_dir / "bascule.sock"))  # bound, never listening: refused

        result = run(data_dir, "vs", "list")
        exit_code, stderr = result.exit_code, result.stderr
        # httpcore leaks the refused socket object, held by the exception chain: free it here,
        # under this test's warning filters.
        del result
        gc.collect()

        assert exit_code == 1
        assert stderr == (
            f"error: cannot reach the Bascule daemon at {data_dir / 'bascule.sock'}: "
            "is `bascule run` running?\n"
        )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_data_dir_from_the_environment(daemon: Daemon) -> None:
    result = CliRunner().invoke(app, ["vs", "list"], env={"BASCULE_DATA_DIR": str(daemon.data_dir)})

    assert result.exit_code == 0, result.stderr
    assert "no virtual services" in result.stdout


def test_remote_options_go_together(daemon: Daemon) -> None:
    # (remote use itself: tests/unit/cli/test_cli_remote.py)
    for option, words in (
        (["--url", "https://lb.example:8443"], "--url needs an API token"),
        (["--token", "secret"], "--token goes with --url"),
        (["--url", "http://lb.example:8443", "--token", "t"], "must be an https:// address"),
    ):
        lines = failed(run(daemon, *option, "status"))
        assert len(lines) == 1
        assert words in lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["vs", "set", "web", "scheduler"],
        ["vs", "set", "web", "=5"],
        ["rs", "add", "web", "198.18.0.4"],
        ["rs", "drain", "web", "host:port"],
        ["apply"],
        ["export", "--format", "toml"],
        ["nonsense"],
    ],
)
def test_usage_errors_exit_2(daemon: Daemon, args: list[str]) -> None:
    assert run(daemon, *args).exit_code == 2


# -- the pure helpers --------------------------------------------------------------------------


def test_parse_assignments() -> None:
    assert parse_assignments(
        ["check.interval=5", "check.path=/health", "enabled=false", "check.host=", "name=web"]
    ) == {
        "check": {"interval": 5, "path": "/health", "host": None},
        "enabled": False,
        "name": "web",
    }
    assert parse_assignments(["extra_ports=[8080, 9000-9010]"]) == {
        "extra_ports": [8080, "9000-9010"]
    }


def test_parse_server() -> None:
    assert parse_server("198.18.0.4:80") == ("198.18.0.4", 80)
    assert parse_server("[2001:db8::1]:443") == ("2001:db8::1", 443)
    assert key_of("[2001:db8::1]:443") == "[2001:db8::1]:443"


def test_error_lines_of_answers_that_are_not_the_apis() -> None:
    plain = httpx.Response(502, text="Bad Gateway\n<html>")
    assert error_lines(plain) == ["the daemon answered HTTP 502: Bad Gateway"]
    empty = httpx.Response(503)
    assert error_lines(empty) == ["the daemon answered HTTP 503: Service Unavailable"]
    fields = httpx.Response(
        422,
        json={"error": {"kind": "x", "message": "m", "fields": [{"path": "", "message": "bad"}]}},
    )
    assert error_lines(fields) == ["bad"]


def test_cli_error_always_has_a_line() -> None:
    assert CliError().lines == ("unknown error",)


SITE = """
virtual_services:
  - name: site
    address: 198.18.0.100
    port: 80
    real_servers: [{address: 198.18.0.4, port: 80}]
    sub_services:
      - name: api
        real_servers: [{address: 198.18.0.5, port: 80}]
    rules:
      - {name: to-api, match: {path_prefix: /api/}, action: {use: api}}
      - {name: not-www, match: {host: www.example.com, negate: true}, action: {redirect: /}}
"""


def test_vs_show_lists_the_rules_and_rs_reaches_a_sub_service(
    daemon: Daemon, tmp_path: Path
) -> None:
    ok(run(daemon, "apply", "-f", str(write(tmp_path, SITE))))
    shown = ok(run(daemon, "vs", "show", "site")).stdout
    assert "rules (first match wins)" in shown
    assert "path_prefix=/api/" in shown and "use=api" in shown
    assert "not (host=www.example.com)" in shown
    assert "sub-service site/api" in shown and "198.18.0.5:80" in shown
    ok(run(daemon, "rs", "drain", "site/api", "198.18.0.5:80"))
    sub = daemon.store.get(2).document["virtual_services"][0]["sub_services"][0]
    assert sub["real_servers"][0]["state"] == "drain"
    assert failed(run(daemon, "rs", "drain", "site/nope", "198.18.0.5:80")) == [
        "error: virtual service 'site' has no sub-service named 'nope'"
    ]


def test_vs_set_reaches_a_sub_service_and_set_rule_a_rule_with_field_errors(
    daemon: Daemon, tmp_path: Path
) -> None:
    ok(run(daemon, "apply", "-f", str(write(tmp_path, SITE))))
    ok(run(daemon, "vs", "set", "site/api", "limits.per_client.requests_per_second=20"))
    ok(run(daemon, "vs", "set", "site/api", "cache.size_mb=32", "cache.max_age=600"))
    ok(run(daemon, "vs", "set-rule", "site", "to-api", "limits.per_client.requests_per_second=5"))
    service = daemon.store.get(4).document["virtual_services"][0]
    assert service["sub_services"][0]["limits"]["per_client"]["requests_per_second"] == 20
    assert service["sub_services"][0]["cache"]["size_mb"] == 32
    assert service["rules"][0]["limits"]["per_client"]["requests_per_second"] == 5
    assert service["rules"][0]["action"]["use"] == "api"  # merged, not replaced
    shown = ok(run(daemon, "vs", "show", "site")).stdout
    assert "limit 5 req/s per client" in shown
    assert "limits.per_client.requests_per_second" in shown  # the sub-service's, flattened

    # bad values name their field, and change nothing
    assert failed(
        run(daemon, "vs", "set-rule", "site", "to-api", "limits.per_client.requests_per_second=0")
    ) == [
        "error: virtual_services[0].rules[0].limits.per_client.requests_per_second: "
        "must be between 1 and 10000000"
    ]
    lines = failed(run(daemon, "vs", "set", "site/api", "limits.max_connections=10"))
    assert lines[0].startswith(
        "error: virtual_services[0].sub_services[0].limits.max_connections: not here"
    )
    assert failed(run(daemon, "vs", "set-rule", "site", "nope", "limits=null")) == [
        "error: virtual service 'site' has no rule named 'nope'"
    ]
    assert daemon.store.head_number() == 4
    # the fake engine runs no HAProxy: limits show and cache purge reach the sub-service
    # and say so (the integration tests read real counters)
    assert failed(run(daemon, "limits", "show", "site/api"))[0].startswith("error: ")
    assert failed(run(daemon, "cache", "purge", "site/nope")) == [
        "error: there is no virtual service or sub-service named 'site/nope'"
    ]
