"""runtime.py against answers captured from a real HAProxy 2.6.12 (see samples/capture.cfg)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bascule.engines.haproxy import runtime, server_states, server_stats, workers
from bascule.engines.haproxy.runtime import AdminState
from bascule.engines.haproxy.server_states import AdminFlags, OperationalState
from bascule.engines.haproxy.server_stats import StatKind
from bascule.engines.haproxy.workers import ProcessRole
from bascule.errors import EngineError

SAMPLES = Path(__file__).parent / "samples"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


# --- builders ----------------------------------------------------------------------------------


def test_builders_write_the_documented_commands() -> None:
    assert runtime.set_weight("app", "s1", 7) == "set weight app/s1 7"
    assert runtime.set_state("app", "s1", AdminState.DRAIN) == "set server app/s1 state drain"
    assert runtime.set_state("app", "s1", AdminState.READY) == "set server app/s1 state ready"
    assert runtime.set_state("app", "s1", AdminState.MAINT) == "set server app/s1 state maint"
    assert runtime.set_maxconn("app", "s-1.x", 0) == "set maxconn server app/s-1.x 0"


@pytest.mark.parametrize("weight", [-1, 257])
def test_set_weight_refuses_what_haproxy_refuses(weight: int) -> None:
    with pytest.raises(ValueError, match=r"0\.\.256"):
        runtime.set_weight("app", "s1", weight)


@pytest.mark.parametrize("name", ["a b", "a;show info", "a\nb", "", "a/b"])
def test_names_cannot_smuggle_commands(name: str) -> None:
    with pytest.raises(ValueError, match="name"):
        runtime.set_weight("app", name, 1)
    with pytest.raises(ValueError, match="name"):
        runtime.set_state(name, "s1", AdminState.READY)


def test_command_line_turns_on_severity_and_escapes_separators() -> None:
    line = runtime.command_line(["set weight app/s1 1", r"set var proc.x str(a;b\c)"])
    expected = r"set severity-output number; set weight app/s1 1; set var proc.x str(a\;b\\c)"
    assert line == expected + "\n"
    with pytest.raises(ValueError):
        runtime.command_line(["show info\nshow stat"])


# --- answers -----------------------------------------------------------------------------------


def test_an_empty_answer_is_success() -> None:
    assert runtime.check_answer(sample("cli_ok_empty.txt")) == ""


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("cli_no_such_server.txt", "No such server."),
        ("cli_require_backend_server.txt", "Require 'backend/server'."),
    ],
)
def test_plain_errors_raise_with_haproxys_message(name: str, message: str) -> None:
    with pytest.raises(EngineError, match=message.replace(".", r"\.")) as caught:
        runtime.check_answer(sample(name))
    assert message in str(caught.value)


def test_severity_errors_are_all_reported() -> None:
    with pytest.raises(EngineError) as caught:
        runtime.check_answer(sample("cli_errors_severity.txt"))
    text = str(caught.value)
    for message in [
        "No such server.",
        "Require 'backend/server'.",
        "Absolute weight can only be between 0 and 256 inclusive.",
        "'set server <srv> state' expects 'ready', 'drain' and 'maint'.",
        "Unknown command",  # HAProxy tags it [6] (info), yet nothing was done
    ]:
        assert message in text
    assert "commit acl" not in text  # the suggestions after "Unknown command" are dropped


def test_informational_feedback_is_not_an_error() -> None:
    messages, data = runtime.parse_messages(sample("cli_info_severity.txt"))
    assert [(m.severity, m.text) for m in messages] == [
        (6, "New server registered."),
        (6, "Server deleted."),
        (4, "no need to change the addr, no need to change the port by 'stats socket command'"),
    ]
    assert data == ""
    assert runtime.check_answer(sample("cli_info_severity.txt")) == ""


def test_data_answers_pass_through_the_checker() -> None:
    text = sample("show_servers_state_steady.txt")
    assert runtime.check_answer("\n" + text) == text.strip("\n")


# --- show stat ---------------------------------------------------------------------------------


def stats_by_name(name: str) -> dict[tuple[str, str], server_stats.ServerStat]:
    return {(s.proxy, s.server): s for s in server_stats.parse_show_stat(sample(name))}


def test_show_stat_rows_and_kinds() -> None:
    stats = stats_by_name("show_stat_steady.csv")
    assert len(stats) == 15
    assert stats[("web", "FRONTEND")].kind is StatKind.FRONTEND
    assert stats[("web", "FRONTEND")].status == "OPEN"
    assert stats[("app", "BACKEND")].kind is StatKind.BACKEND
    assert stats[("app", "s1")].kind is StatKind.SERVER
    frontend = stats[("web", "FRONTEND")]
    assert frontend.stot == 6 and frontend.bin > 0 and frontend.bout > 0


def test_show_stat_server_details() -> None:
    stats = stats_by_name("show_stat_steady.csv")
    s1 = stats[("app", "s1")]
    assert (s1.status, s1.weight, s1.check_status, s1.check_code) == ("UP", 7, "L4OK", None)
    assert s1.check_duration == 0
    assert s1.address == "127.0.0.1:23181"
    assert s1.stot == 6 and s1.scur == 0 and s1.smax == 1  # s2 down, s3 in maint
    s2 = stats[("app", "s2")]
    assert (s2.status, s2.check_status, s2.last_chk) == ("DOWN", "L4CON", "Connection refused")
    assert s2.chkfail is not None and s2.downtime is not None and s2.lastchg is not None
    t1 = stats[("app2", "t1")]
    assert (t1.check_status, t1.check_code) == ("L7OK", 200)
    assert stats[("app2", "t3")].address == "[::1]:23186"
    n1 = stats[("soft", "n1")]
    assert (n1.status, n1.check_status, n1.check_code) == ("NOLB", "L7OKC", 404)
    s3 = stats[("app", "s3")]
    assert (s3.status, s3.check_status, s3.check_duration) == ("MAINT", None, None)


def test_show_stat_transitional_statuses() -> None:
    stats = stats_by_name("show_stat_transitions.csv")
    assert stats[("app", "s2")].status == "DOWN 1/2"
    assert stats[("app", "s3")].status == "no check"
    assert stats[("app2", "t2")].status == "MAINT (via app/s1)"


def test_show_stat_running_check_marker() -> None:
    text = sample("show_stat_steady.csv").replace(",L4OK,", ",* L4OK,", 1)
    s1 = {(s.proxy, s.server): s for s in server_stats.parse_show_stat(text)}[("app", "s1")]
    assert (s1.check_status, s1.check_running) == ("L4OK", True)


def test_show_stat_refuses_garbage() -> None:
    with pytest.raises(EngineError):
        server_stats.parse_show_stat("No such proxy.\n")


# --- show servers state ------------------------------------------------------------------------


def states_by_name(name: str) -> dict[tuple[str, str], server_states.ServerRuntimeState]:
    return {(s.backend, s.server): s for s in server_states.parse_servers_state(sample(name))}


def test_servers_state_steady() -> None:
    states = states_by_name("show_servers_state_steady.txt")
    s1 = states[("app", "s1")]
    assert (s1.address, s1.port, s1.uweight, s1.iweight) == ("127.0.0.1", 23181, 7, 10)
    assert s1.operational_state is OperationalState.RUNNING and s1.up
    assert not s1.maint and not s1.drain
    s2 = states[("app", "s2")]  # drained by the CLI, and down
    assert s2.admin == AdminFlags.FDRAIN and s2.drain and not s2.maint and not s2.up
    s3 = states[("app", "s3")]  # set to maint by the CLI
    assert s3.admin == AdminFlags.FMAINT and s3.maint and not s3.drain
    s4 = states[("app", "s4")]  # "disabled" in the configuration
    assert s4.admin == AdminFlags.FMAINT | AdminFlags.CMAINT and s4.maint
    assert states[("app2", "t3")].address == "::1"
    assert states[("soft", "n1")].operational_state is OperationalState.STOPPING


def test_servers_state_inherited_maintenance() -> None:
    states = states_by_name("show_servers_state_transitions.txt")
    t2 = states[("app2", "t2")]  # tracks app/s1, which is in maint
    assert t2.admin == AdminFlags.IMAINT and t2.maint
    s2 = states[("app", "s2")]
    assert s2.drain and s2.operational_state is OperationalState.RUNNING


def test_servers_state_refuses_another_version() -> None:
    text = sample("show_servers_state_steady.txt").replace("1\n", "2\n", 1)
    with pytest.raises(EngineError, match="version"):
        server_states.parse_servers_state(text)


# --- show proc ---------------------------------------------------------------------------------


def test_show_proc_started() -> None:
    table = workers.parse_show_proc(sample("show_proc_started.txt"))
    assert table.master.role is ProcessRole.MASTER
    assert (table.master.reloads, table.master.failed_reloads) == (0, 0)
    assert table.master.version == "2.6.12-1+deb12u4"
    assert len(table.workers) == 1 and table.workers[0].reloads == 0
    assert table.worker_pids == [table.workers[0].pid]
    assert table.old_workers == () and table.programs == ()


def test_show_proc_after_a_reload_with_an_old_worker() -> None:
    table = workers.parse_show_proc(sample("show_proc_old_worker.txt"))
    assert (table.master.reloads, table.master.failed_reloads) == (1, 0)
    [worker] = table.workers
    [old] = table.old_workers
    assert worker.reloads == 0  # a new worker starts counting at 0
    assert old.reloads == 1 and old.role is ProcessRole.OLD_WORKER
    assert old.uptime_seconds == 13
    assert table.worker_pids == [worker.pid]


def test_show_proc_after_a_failed_reload() -> None:
    table = workers.parse_show_proc(sample("show_proc_reload_failed.txt"))
    assert (table.master.reloads, table.master.failed_reloads) == (2, 1)
    [worker] = table.workers
    assert worker.reloads == 1  # the old worker goes on serving


def test_show_proc_documented_example_with_programs() -> None:
    text = (
        "#<PID>          <type>          <reloads>       <uptime>        <version>\n"
        "1162            master          5 [failed: 0]   0d00h02m07s     2.5-dev13\n"
        "# workers\n"
        "1271            worker          1               0d00h00m00s     2.5-dev13\n"
        "# old workers\n"
        "1233            worker          3               0d00h00m43s     2.0-dev3-6019f6-289\n"
        "# programs\n"
        "1244            foo             0               0d00h00m00s     -\n"
    )
    table = workers.parse_show_proc(text)
    assert table.master.uptime_seconds == 127
    assert [p.pid for p in table.programs] == [1244]
    assert table.old_workers[0].version == "2.0-dev3-6019f6-289"


def test_show_proc_empty_answer_is_an_error() -> None:
    # The master answers nothing while it re-executes itself during a reload.
    with pytest.raises(EngineError):
        workers.parse_show_proc("")


# --- haproxy -v / -c ---------------------------------------------------------------------------


def test_version_and_alerts() -> None:
    out = "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/\nStatus: LTS\n"
    assert runtime.parse_version(out) == "2.6.12-1+deb12u4"
    lines = [
        "[NOTICE]   (20892) : haproxy version is 2.6.12-1+deb12u4",
        "[ALERT]    (20892) : Binding [cfg:11] for frontend web: cannot bind socket "
        "(Cannot assign requested address) for [198.18.0.77:23190]",
        "[WARNING]  (20892) : Loading failure!",
    ]
    assert runtime.alert_lines(lines) == [
        "Binding [cfg:11] for frontend web: cannot bind socket "
        "(Cannot assign requested address) for [198.18.0.77:23190]"
    ]
