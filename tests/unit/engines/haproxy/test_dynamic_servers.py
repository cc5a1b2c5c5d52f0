"""Which structural changes HAProxy applies with dynamic servers, and the exact commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bascule.engines.haproxy.dynamic import (
    PendingReload,
    ServerEdits,
    dynamic_arguments,
    server_edits,
)
from bascule.engines.haproxy.engine import HaproxyEngine
from bascule.engines.haproxy.persistence import table_names
from bascule.engines.haproxy.servers import ServerView
from bascule.engines.haproxy.view import HaproxyGlobals, HaproxyView, build_view
from bascule.model import Configuration, parse_document
from bascule.reconcile.actions import ChangeServers

GLOBALS = HaproxyGlobals(
    stats_socket="/run/bascule/haproxy.sock", maxconn=4096, nbthread=2, descriptor_limit=20000
)
CHECK = {"type": "http", "path": "/health", "interval": 2, "rise": 2, "fall": 3}


def service(*hosts: int, **fields: Any) -> dict[str, Any]:
    return {
        "name": "web",
        "address": "198.18.0.100",
        "port": 80,
        "type": "http",
        "scheduler": "weighted_round_robin",
        "check": CHECK,
        "real_servers": [{"address": f"198.18.0.{host}", "port": 80} for host in hosts],
        **fields,
    }


def view(vs: dict[str, Any]) -> HaproxyView:
    return build_view(parse_document({"virtual_services": [vs]}), GLOBALS)


def edits(old: dict[str, Any], new: dict[str, Any]) -> ServerEdits | str:
    config = parse_document({"virtual_services": [new]})
    tables = {pool.name for pool in config.pools() if table_names(pool)}
    return server_edits(view(old), view(new), tables=tables)


def commands(found: ServerEdits | str) -> list[str]:
    assert isinstance(found, ServerEdits), found
    return [*found.add_commands(), *found.maint_commands(), *found.delete_commands()]


def test_an_added_checked_server_is_created_checked_and_ready() -> None:
    assert commands(edits(service(4, 5), service(4, 5, 6))) == [
        "add server web/198.18.0.6:80 198.18.0.6:80 weight 1 check inter 2s rise 2 fall 3",
        "enable health web/198.18.0.6:80",
        "set server web/198.18.0.6:80 state ready",
    ]


def test_a_removed_server_goes_to_maintenance_then_is_deleted() -> None:
    assert commands(edits(service(4, 5, 6), service(4, 6))) == [
        "set server web/198.18.0.5:80 state maint",
        "del server web/198.18.0.5:80",
    ]


def test_the_initial_state_is_the_one_a_fresh_load_gives() -> None:
    disabled = service(4)
    disabled["real_servers"].append({"address": "198.18.0.5", "port": 80, "state": "disabled"})
    drained = service(4)
    drained["real_servers"].append({"address": "198.18.0.5", "port": 80, "state": "drain"})
    check = "check inter 2s rise 2 fall 3"
    assert commands(edits(service(4), disabled)) == [
        f"add server web/198.18.0.5:80 198.18.0.5:80 weight 1 disabled {check}",
        "enable health web/198.18.0.5:80",  # in maintenance: no "state ready"
    ]
    assert commands(edits(service(4), drained)) == [
        f"add server web/198.18.0.5:80 198.18.0.5:80 weight 0 {check}",
        "enable health web/198.18.0.5:80",
        "set server web/198.18.0.5:80 state ready",
    ]


def test_weights_the_addition_rescales_are_left_to_the_next_pass() -> None:
    old = service(4, 5)
    new = service(4, 5)
    new["real_servers"].append({"address": "198.18.0.6", "port": 80, "weight": 3000})
    found = edits(old, new)
    assert isinstance(found, ServerEdits)
    assert [a.arguments[:3] for a in found.added] == [("198.18.0.6:80", "weight", "3")]


def test_every_keyword_a_dynamic_server_takes_is_sent() -> None:
    new = service(
        4,
        5,
        check={**CHECK, "port": 8080},
        proxy_protocol="v2",
        slow_start=10,
        transparent=True,
    )
    new["real_servers"][1]["max_connections"] = 50
    found = edits(
        service(
            4, check={**CHECK, "port": 8080}, proxy_protocol="v2", slow_start=10, transparent=True
        ),
        new,
    )
    assert isinstance(found, ServerEdits)
    (added,) = found.added
    assert " ".join(added.arguments) == (
        "198.18.0.5:80 weight 1 maxconn 50 check inter 2s rise 2 fall 3 port 8080 "
        "send-proxy-v2 check-send-proxy slowstart 10s source 0.0.0.0 usesrc clientip"
    )


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"persistence": {"method": "active_cookie", "cookie": "LB", "timeout": 600}},
            "cookie persistence",
        ),
        ({"scheduler": "fixed_weighting"}, "backup server"),
        ({"enabled": False}, "the service is disabled"),
    ],
)
def test_what_add_server_cannot_do_reloads(fields: dict[str, Any], reason: str) -> None:
    found = edits(service(4, 5, **fields), service(4, 5, 6, **fields))
    assert isinstance(found, str) and reason in found, found


def test_a_change_beyond_the_servers_reloads() -> None:
    assert edits(service(4), service(4, 5, port=81)) == "more than real servers changed"
    critical = service(4)
    critical["real_servers"].append({"address": "198.18.0.5", "port": 80, "critical": True})
    assert edits(service(4), critical) == "more than real servers changed"  # a new rule
    moved = service(5, 4)
    assert edits(service(4, 5), moved) == "web: the servers' order changed"


def test_a_server_changed_beyond_its_weight_and_state_reloads() -> None:
    old = service(4, 5)
    new = service(4, 5, 6)
    new["real_servers"][0]["max_connections"] = 10
    assert edits(old, new) == "web: server 198.18.0.4:80 changed beyond its weight and state"


def test_with_stick_tables_ids_stay_those_a_fresh_load_gives() -> None:
    sticky = {"persistence": {"method": "source_ip", "timeout": 600}}
    check = "check inter 2s rise 2 fall 3"
    assert commands(edits(service(4, 5, **sticky), service(4, 5, 6, **sticky)))[0] == (
        f"add server web/198.18.0.6:80 198.18.0.6:80 weight 1 {check} id 3"
    )
    assert commands(edits(service(4, 5, 6, **sticky), service(4, 5, **sticky))) == [
        "set server web/198.18.0.6:80 state maint",
        "del server web/198.18.0.6:80",
    ]
    inserted = service(4, 5, **sticky)
    inserted["real_servers"].insert(0, {"address": "198.18.0.6", "port": 80})
    assert "only be added after the others" in str(edits(service(4, 5, **sticky), inserted))
    assert "only the last servers" in str(
        edits(service(4, 5, 6, **sticky), service(4, 6, **sticky))
    )
    # without stick tables, anywhere
    assert isinstance(edits(service(4, 5, 6), service(4, 6)), ServerEdits)


def test_a_word_the_runtime_api_cannot_take_is_not_sent() -> None:
    server = ServerView(name="s", address="198.18.0.4:80", weight=1)
    assert dynamic_arguments(server) == ("198.18.0.4:80", "weight", "1")
    quoted = ServerView(
        name="s", address="198.18.0.4:80", weight=1, check_keywords=("check-sni", "'a.example'")
    )
    assert dynamic_arguments(quoted) == ("198.18.0.4:80", "weight", "1", "check-sni", "a.example")
    spaced = ServerView(
        name="s", address="198.18.0.4:80", weight=1, check_keywords=("check-sni", "'a b'")
    )
    assert "cannot take" in str(dynamic_arguments(spaced))
    unknown = ServerView(name="s", address="198.18.0.4:80", weight=1, check_keywords=("track",))
    assert "keyword 'track'" in str(dynamic_arguments(unknown))


def engine_for(tmp_path: Path) -> HaproxyEngine:
    # few descriptors: maxconn is sized by them, so a server's check changes it
    return HaproxyEngine(
        tmp_path / "haproxy",
        binary="haproxy",
        maxconn=100000,
        nbthread=1,
        descriptor_limit=5000,
        dynamic_servers=True,
    )


def two_services(web: tuple[int, ...], api: tuple[int, ...]) -> Configuration:
    sub = {"name": "v2", **{k: service(8)[k] for k in ("check", "real_servers")}}
    return parse_document(
        {
            "virtual_services": [
                service(*web, sub_services=[sub]),
                {**service(*api), "name": "api", "port": 81},
            ]
        }
    )


def test_the_engine_changes_servers_only_of_what_it_installed_with_its_settings(
    tmp_path: Path,
) -> None:
    engine = engine_for(tmp_path)
    before, after = two_services((4, 5), (6,)), two_services((4, 6), (6, 7))
    assert engine.server_changes(before, after) is None  # HAProxy runs what it did not install
    engine._installed = engine._prepared_for(before)
    assert engine.server_changes(before, after) == ChangeServers(
        config=after,
        added=(("web", "198.18.0.6:80"), ("api", "198.18.0.7:80")),
        removed=(("web", "198.18.0.5:80"),),
        reload_follows=True,
    )
    assert engine.server_changes(before, before) is None  # nothing to add or remove
    engine.set_http_users({"alice": "$6$hash"})  # settings the running text was not made with
    assert engine.server_changes(before, after) is None


def test_the_runtime_path_is_on_unless_turned_off(tmp_path: Path) -> None:
    """Servers added at runtime, made ordinary by a deferred reload; off: a reload at once."""
    before, after = two_services((4, 5), (6,)), two_services((4, 6), (6, 7))
    engine = HaproxyEngine(tmp_path / "on", binary="haproxy", maxconn=1000, nbthread=1)
    engine._installed = engine._prepared_for(before)
    assert engine.dynamic_servers
    assert engine.server_changes(before, after) is not None
    off = HaproxyEngine(
        tmp_path / "off", binary="haproxy", maxconn=1000, nbthread=1, dynamic_servers=False
    )
    off._installed = off._prepared_for(before)
    assert off.server_changes(before, after) is None


def test_the_deferred_reload_waits_for_the_last_change_but_not_for_ever() -> None:
    pending = PendingReload.starting(100.0, delay=3.0, max_delay=30.0)
    assert pending.due == 103.0
    assert pending.changed(102.0).due == 105.0  # each change pushes it back
    assert pending.changed(102.0).changed(129.0).due == 130.0  # at most max_delay after the first
    assert pending.retried(140.0).due == 170.0  # a failed reload: again max_delay later
    assert pending.retried(140.0).changed(141.0).due == 144.0
    assert PendingReload.starting(0.0, delay=10.0, max_delay=5.0).due == 10.0


class RecordingShell:
    """What ``HaproxyEngine`` asks of its shell, recorded: a running HAProxy that takes
    every command (the real one is tested in tests/integration)."""

    def __init__(self, paths: Any) -> None:
        self.paths = paths
        self.sent: list[str] = []
        self.marker_at_commands: list[bool] = []
        self.applied: list[str] = []
        self.checked: list[str] = []

    async def is_running(self) -> bool:
        return True

    async def runtime(self, command: str) -> str:
        self.sent.append(command)
        return ""

    async def runtime_many(self, commands: list[str]) -> None:
        self.marker_at_commands.append(self.paths.reload_pending.exists())
        self.sent += commands

    def rewrite(self, text: str) -> None:
        self.paths.config.write_text(text)

    async def apply(self, text: str) -> None:
        self.applied.append(text)

    async def check(self, text: str) -> None:
        self.checked.append(text)

    async def adopt(self) -> bool:
        return True

    async def worker_pids(self) -> list[int]:
        return [1]

    def missing_inherited(self) -> list[int]:
        return []


def recording(tmp_path: Path, **settings: Any) -> tuple[HaproxyEngine, RecordingShell]:
    engine = HaproxyEngine(
        tmp_path / "haproxy", binary="haproxy", maxconn=1000, nbthread=1, **settings
    )
    engine.paths.run_dir.mkdir(parents=True)
    shell = RecordingShell(engine.paths)
    engine.shell = shell  # type: ignore[assignment]

    async def no_plumbing(wanted: object) -> None:  # transparency's: none of it here
        return None

    engine.transparency.ensure = no_plumbing  # type: ignore[method-assign,assignment]
    return engine, shell


async def test_servers_added_at_runtime_are_reloaded_later_from_the_text_written(
    tmp_path: Path,
) -> None:
    engine, shell = recording(tmp_path, reload_delay=60.0)
    before, after = two_services((4, 5), (6,)), two_services((4, 5, 6), (6,))
    engine._installed = engine._prepared_for(before)
    assert engine.reload_in() is None and engine.pending_reload() is None
    assert await engine._edit_servers(before, after)
    # the marker is on disk before the first command: a daemon dying now leaves it behind
    assert shell.marker_at_commands[0]
    assert engine.paths.reload_pending.exists()
    due = engine.reload_in()
    assert due is not None and 59 < due <= 60
    pending = engine.pending_reload()
    assert pending is not None and pending["error"] is None
    assert engine.reloads == 0 and shell.applied == []

    written = engine.paths.config.read_text()
    await engine.prepare_reload()  # checked ahead, without the lock
    assert shell.checked == [written]
    assert await engine.reload_deferred(after)
    assert shell.applied == [written]  # the file already written, not rendered again
    assert engine.reloads == 1
    assert engine.reload_in() is None and not engine.paths.reload_pending.exists()
    assert not await engine.reload_deferred(after)  # nothing pending any more


async def test_a_removal_alone_defers_no_reload_and_any_reload_settles_one(
    tmp_path: Path,
) -> None:
    engine, _ = recording(tmp_path)
    one, two, three = (two_services(web, (6,)) for web in ((4,), (4, 5), (4, 5, 6)))
    engine._installed = engine._prepared_for(two)
    assert await engine._edit_servers(two, one)
    assert engine.reload_in() is None and not engine.paths.reload_pending.exists()
    assert await engine._edit_servers(one, two)
    assert engine.reload_in() is not None
    # a change that reloads anyway (here: asked for directly) makes every server ordinary
    await engine._reload(three, two)
    assert engine.reload_in() is None and not engine.paths.reload_pending.exists()


async def test_an_adopted_haproxy_with_the_marker_gets_its_reload(tmp_path: Path) -> None:
    engine, _ = recording(tmp_path, reload_delay=5.0)
    engine.paths.reload_pending.write_text("1\n")
    assert await engine.adopt()
    due = engine.reload_in()
    assert due is not None and 4 < due <= 5
    # the document it runs is the reconciler's (adopted): rendered, since this engine did
    # not install the text itself
    config = two_services((4, 5), (6,))
    engine.shell.applied = []  # type: ignore[attr-defined]
    assert await engine.reload_deferred(config)
    assert engine.shell.applied == [engine.render(config)]  # type: ignore[attr-defined]
    assert not engine.paths.reload_pending.exists()


@pytest.mark.parametrize(
    ("web", "api"),
    [((4, 5, 6), (6,)), ((4,), (6,)), ((4, 5), (6, 7, 9)), ((5,), ())],
)
def test_the_spliced_text_is_the_whole_render(
    tmp_path: Path, web: tuple[int, ...], api: tuple[int, ...]
) -> None:
    engine = engine_for(tmp_path)
    before, after = two_services((4, 5), (6,)), two_services(web, api)
    installed = engine._prepared_for(before)
    engine._installed = installed
    text, descriptors, maxconn = engine._spliced(installed, before, after)
    whole = engine.view(after)
    assert text == engine.render(after)
    assert (descriptors, maxconn) == (whole.descriptors, whole.maxconn)
