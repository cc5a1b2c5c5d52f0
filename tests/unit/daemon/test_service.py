"""ConfigService over a real RevisionStore, the FakeEngine and the NullVipManager."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from change_requests import by

from bascule.daemon.service import ConfigService
from bascule.daemon.status import build_status
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import (
    EngineObservation,
    FakeEngine,
    Health,
    ServerObservation,
    ServiceObservation,
)
from bascule.errors import Conflict, EngineRejected, InvalidConfiguration, NotFound
from bascule.model import RealServerState, edits, parse_document
from bascule.reconcile.actions import (
    ReplaceConfig,
    SetState,
    SetWeight,
)
from bascule.reconcile.diff import DiffItem, DiffOp
from bascule.reconcile.planner import ServerRuntime
from bascule.store.revisions import RevisionStore

Document = dict[str, Any]


def rs(last: int, weight: int = 1000, **fields: Any) -> Document:
    return {"address": f"198.18.0.{last}", "port": 80, "weight": weight, **fields}


def vs(name: str = "web", *servers: Document, port: int = 80, **fields: Any) -> Document:
    return {
        "name": name,
        "address": "198.18.0.100",
        "port": port,
        "scheduler": "weighted_round_robin",
        "real_servers": list(servers) or [rs(4), rs(5)],
        **fields,
    }


def doc(*services: Document) -> Document:
    return {"virtual_services": list(services) or [vs()]}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RevisionStore]:
    with RevisionStore(tmp_path / "bascule.db") as opened:
        yield opened


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def vips() -> NullVipManager:
    return NullVipManager()


@pytest.fixture
def service(store: RevisionStore, engine: FakeEngine, vips: NullVipManager) -> ConfigService:
    return ConfigService(store=store, engines=[engine], vips=vips)


# -- apply ------------------------------------------------------------------------------------


async def test_apply_commits_a_revision_and_replaces_the_engine_config(
    service: ConfigService, store: RevisionStore, engine: FakeEngine, vips: NullVipManager
) -> None:
    result = await service.apply(doc(), by("alice", message="first"))
    config = parse_document(doc())
    assert result.revision == 1
    assert (result.changed, result.applied, result.reloads, result.dry_run) == (
        True,
        True,
        True,
        False,
    )
    assert result.message == ""
    assert result.actions == (
        "add VIP 198.18.0.100",
        "fake: replace the configuration and reload (no configuration is running yet)",
    )
    assert engine.executed == [
        ReplaceConfig(config=config, reason="no configuration is running yet")
    ]
    assert engine.reloads == 1
    assert engine.running == config
    assert vips.added == {"198.18.0.100": None}
    head = store.head()
    assert head is not None
    assert (head.number, head.author, head.message) == (1, "alice", "first")
    assert head.document == config.to_document()
    applied = store.applied()
    assert applied is not None
    assert (applied.last_good, applied.last_attempt, applied.ok) == (1, 1, True)
    assert service.document() == (1, config.to_document())
    assert service.desired() == config


async def test_the_committed_document_spells_out_the_defaults(service: ConfigService) -> None:
    await service.apply(doc(), by("alice"))
    number, document = service.document()
    assert number == 1
    assert document["virtual_services"][0]["check"]["type"] == "http"
    assert document["virtual_services"][0]["mode"] == "l7"


async def test_the_document_of_an_empty_store(service: ConfigService) -> None:
    assert service.document() == (None, {"schema_version": 2, "virtual_services": []})


async def test_the_same_document_again_is_no_change(
    service: ConfigService, store: RevisionStore, engine: FakeEngine
) -> None:
    await service.apply(doc(), by("alice"))
    result = await service.apply(doc(), by("bob", base=1))
    assert (result.revision, result.changed, result.applied, result.message) == (
        1,
        False,
        True,
        "no change",
    )
    assert (result.diff, result.actions, result.reloads) == ((), (), False)
    assert store.head_number() == 1
    assert engine.reloads == 1


async def test_an_invalid_document_commits_nothing(
    service: ConfigService, store: RevisionStore, engine: FakeEngine
) -> None:
    bad = doc(vs(port=0, real_servers=[rs(4, weight=0)]))
    with pytest.raises(InvalidConfiguration) as caught:
        await service.apply(bad, by("alice"))
    assert [str(e) for e in caught.value.errors] == [
        "virtual_services[0].port: must be between 1 and 65535",
        "virtual_services[0].real_servers[0].weight: must be between 1 and 65535",
    ]
    assert store.head() is None
    assert store.applied() is None
    assert engine.executed == []


async def test_an_engine_rejection_commits_nothing(
    service: ConfigService, store: RevisionStore, engine: FakeEngine
) -> None:
    await service.apply(doc(), by("alice"))
    engine.reject_with = "line 12: unknown keyword"
    with pytest.raises(EngineRejected, match="line 12: unknown keyword"):
        await service.apply(doc(vs(port=81)), by("alice"))
    assert store.head_number() == 1
    assert engine.reloads == 1
    assert engine.running == parse_document(doc())


async def test_a_stale_base_is_a_conflict_and_loses_nothing(
    service: ConfigService, store: RevisionStore
) -> None:
    await service.apply(doc(), by("alice"))
    await service.apply(doc(vs(port=81)), by("bob", base=1))
    with pytest.raises(Conflict) as caught:
        await service.apply(doc(vs(port=82)), by("carol", base=1))
    assert (caught.value.base, caught.value.current) == (1, 2)
    head = store.head()
    assert head is not None
    assert (head.number, head.author) == (2, "bob")
    assert head.document["virtual_services"][0]["port"] == 81


async def test_a_base_on_an_empty_store(service: ConfigService) -> None:
    with pytest.raises(Conflict) as caught:
        await service.apply(doc(), by("alice", base=3))
    assert (caught.value.base, caught.value.current) == (3, None)
    result = await service.apply(doc(), by("alice", base=None))
    assert result.revision == 1


async def test_a_dry_run_commits_nothing_but_shows_the_diff_and_actions(
    service: ConfigService, store: RevisionStore, engine: FakeEngine
) -> None:
    await service.apply(doc(), by("alice"))
    result = await service.apply(doc(vs("web", rs(4, 3000), rs(5))), by("bob", dry_run=True))
    assert result.dry_run
    assert (result.revision, result.changed, result.reloads) == (1, True, False)
    assert result.message == "dry run: nothing was changed"
    assert result.diff == (
        DiffItem(
            op=DiffOp.CHANGE,
            path="virtual_services[web].real_servers[198.18.0.4:80].weight",
            old=1000,
            new=3000,
        ),
    )
    assert result.actions == ("fake: set weight of web/198.18.0.4:80 to 3 (runtime, no reload)",)
    assert store.head_number() == 1
    assert engine.executed == [
        ReplaceConfig(config=parse_document(doc()), reason="no configuration is running yet")
    ]


async def test_a_dry_run_of_a_first_apply(
    service: ConfigService, store: RevisionStore, engine: FakeEngine, vips: NullVipManager
) -> None:
    result = await service.apply(doc(), by("alice", dry_run=True))
    assert (result.revision, result.changed, result.reloads, result.applied) == (
        None,
        True,
        True,
        False,
    )
    assert result.actions == (
        "add VIP 198.18.0.100",
        "fake: replace the configuration and reload (no configuration is running yet)",
    )
    assert store.head() is None
    assert engine.executed == []
    assert vips.added == {}


async def test_a_dry_run_still_validates(service: ConfigService, engine: FakeEngine) -> None:
    with pytest.raises(InvalidConfiguration):
        await service.apply(doc(vs(port=0)), by("alice", dry_run=True))
    engine.reject_with = "no"
    with pytest.raises(EngineRejected):
        await service.apply(doc(), by("alice", dry_run=True))


async def test_a_runtime_only_change_does_not_reload(
    service: ConfigService, store: RevisionStore, engine: FakeEngine
) -> None:
    await service.apply(doc(), by("alice"))
    result = await service.apply(doc(vs("web", rs(4, 3000), rs(5))), by("bob", base=1))
    assert (result.revision, result.applied, result.reloads) == (2, True, False)
    assert engine.reloads == 1
    assert engine.executed[1:] == [SetWeight(vs="web", server="198.18.0.4:80", weight=3)]
    assert engine.servers[("web", "198.18.0.4:80")].weight == 3


async def test_a_structural_change_reloads(service: ConfigService, engine: FakeEngine) -> None:
    await service.apply(doc(), by("alice"))
    result = await service.apply(doc(vs("web", rs(4), rs(5), rs(6))), by("bob"))
    assert result.reloads
    assert engine.reloads == 2
    assert result.actions == (
        "fake: replace the configuration and reload "
        "(the configuration changed beyond weights and states)",
    )


async def test_a_removed_service_releases_its_vip(
    service: ConfigService, vips: NullVipManager
) -> None:
    other = vs("api", port=81, address="198.18.0.101")
    await service.apply(doc(vs(), other), by("alice"))
    assert set(vips.added) == {"198.18.0.100", "198.18.0.101"}
    await service.apply(doc(vs()), by("alice"))
    assert set(vips.added) == {"198.18.0.100"}


# -- apply failures -----------------------------------------------------------------------------


async def test_an_apply_failure_keeps_the_revision_and_reports_it(
    service: ConfigService, store: RevisionStore, engine: FakeEngine
) -> None:
    await service.apply(doc(), by("alice"))
    engine.fail_apply_with = "boom"
    result = await service.apply(doc(vs("web", rs(4), rs(6))), by("bob"))
    assert (result.revision, result.changed, result.applied) == (2, True, False)
    assert result.message == "fake apply failed: boom"
    assert store.head_number() == 2
    applied = store.applied()
    assert applied is not None
    assert (applied.last_good, applied.last_attempt, applied.ok, applied.message) == (
        1,
        2,
        False,
        "fake apply failed: boom",
    )
    # the engine still runs the previous configuration
    assert engine.running == parse_document(doc())
    status = await service.status()
    assert (status.revision, status.applied_revision, status.apply_ok) == (2, 1, False)
    assert status.apply_message == "fake apply failed: boom"
    assert [(s.name, s.status, s.message) for s in status.virtual_services] == [
        ("web", "apply_error", "fake apply failed: boom")
    ]


async def test_a_failed_first_apply(
    service: ConfigService, store: RevisionStore, engine: FakeEngine
) -> None:
    engine.fail_apply_with = "no haproxy"
    result = await service.apply(doc(), by("alice"))
    assert (result.revision, result.applied) == (1, False)
    applied = store.applied()
    assert applied is not None
    assert (applied.last_good, applied.last_attempt, applied.ok) == (None, 1, False)
    assert engine.running is None


async def test_reconcile_without_retry_leaves_a_failed_head_alone(
    service: ConfigService, store: RevisionStore, engine: FakeEngine
) -> None:
    await service.apply(doc(), by("alice"))
    engine.fail_apply_with = "boom"
    await service.apply(doc(vs("web", rs(4), rs(6))), by("bob"))
    engine.fail_apply_with = None
    assert await service.reconcile(retry_failed=False) == (False, "fake apply failed: boom")
    assert engine.reloads == 1
    # a deliberate reconcile retries, and the success is recorded
    assert await service.reconcile() == (True, "")
    assert engine.reloads == 2
    assert engine.running == parse_document(doc(vs("web", rs(4), rs(6))))
    applied = store.applied()
    assert applied is not None
    assert (applied.last_good, applied.last_attempt, applied.ok) == (2, 2, True)
    assert (await service.status()).apply_ok


async def test_reconcile_repairs_drift(service: ConfigService, engine: FakeEngine) -> None:
    await service.apply(doc(), by("alice"))
    engine.servers[("web", "198.18.0.4:80")] = ServerRuntime(weight=9, state=RealServerState.drain)
    assert await service.reconcile(retry_failed=False) == (True, "")
    assert engine.executed[1:] == [
        SetState(vs="web", server="198.18.0.4:80", state=RealServerState.enabled),
        SetWeight(vs="web", server="198.18.0.4:80", weight=1),
    ]
    assert engine.reloads == 1


async def test_reconcile_restarts_a_stopped_engine(
    service: ConfigService, engine: FakeEngine
) -> None:
    await service.apply(doc(), by("alice"))
    await engine.stop(grace=0)
    assert await service.reconcile(retry_failed=False) == (True, "")
    assert engine.reloads == 2
    assert engine.running == parse_document(doc())


async def test_reconcile_on_an_empty_store(service: ConfigService, store: RevisionStore) -> None:
    assert await service.reconcile() == (True, "")
    assert store.applied() is None


# -- rollback and edits ------------------------------------------------------------------------


async def test_rollback_commits_the_old_document_as_a_new_revision(
    service: ConfigService, store: RevisionStore, engine: FakeEngine
) -> None:
    await service.apply(doc(), by("alice"))
    await service.apply(doc(vs(port=81)), by("bob"))
    result = await service.rollback(1, by("carol", base=2))
    assert (result.revision, result.applied) == (3, True)
    head = store.head()
    assert head is not None
    assert head.document == store.get(1).document
    assert (head.rolled_back_from, head.author, head.message) == (
        1,
        "carol",
        "roll back to revision 1",
    )
    assert engine.running == parse_document(doc())
    assert [s.number for s in service.history()] == [3, 2, 1]
    assert service.diff(1, 3) == ()


async def test_a_dry_run_rollback_plans_and_changes_nothing(
    service: ConfigService, store: RevisionStore, engine: FakeEngine
) -> None:
    await service.apply(doc(), by("alice"))
    await service.apply(doc(vs(port=81)), by("bob"))
    result = await service.rollback(1, by("carol", base=2, dry_run=True))
    assert (result.revision, result.changed, result.dry_run) == (2, True, True)
    assert [(d.path, d.old, d.new) for d in result.diff] == [("virtual_services[web].port", 81, 80)]
    assert result.actions[0].startswith("fake: replace the configuration and reload")
    assert store.head_number() == 2
    assert engine.reloads == 2


async def test_rollback_to_an_unknown_revision(service: ConfigService) -> None:
    with pytest.raises(NotFound):
        await service.rollback(7, by("alice"))


async def test_rollback_with_a_stale_base(service: ConfigService, store: RevisionStore) -> None:
    await service.apply(doc(), by("alice"))
    await service.apply(doc(vs(port=81)), by("bob"))
    with pytest.raises(Conflict):
        await service.rollback(1, by("carol", base=1))
    assert store.head_number() == 2


async def test_drain_a_real_server_at_runtime(
    service: ConfigService, store: RevisionStore, engine: FakeEngine
) -> None:
    await service.apply(doc(), by("alice"))
    result = await service.set_real_server_state(
        "web", "198.18.0.5:80", RealServerState.drain, by("bob")
    )
    assert (result.revision, result.applied, result.reloads) == (2, True, False)
    assert result.actions == ("fake: set web/198.18.0.5:80 drain (runtime, no reload)",)
    assert engine.executed[1:] == [
        SetState(vs="web", server="198.18.0.5:80", state=RealServerState.drain)
    ]
    assert engine.reloads == 1
    head = store.head()
    assert head is not None
    assert head.message == "drain real server 198.18.0.5:80 of web"
    assert head.document["virtual_services"][0]["real_servers"][1]["state"] == "drain"


async def test_an_invalid_state_is_refused(service: ConfigService, store: RevisionStore) -> None:
    await service.apply(doc(), by("alice"))
    with pytest.raises(InvalidConfiguration) as caught:
        await service.edit(
            lambda d: edits.update_real_server(d, "web", "198.18.0.5:80", {"state": "asleep"}),
            by("bob"),
        )
    assert caught.value.errors[0].path == "virtual_services[0].real_servers[1].state"
    assert store.head_number() == 1


async def test_set_the_state_of_an_unknown_server(service: ConfigService) -> None:
    await service.apply(doc(), by("alice"))
    with pytest.raises(NotFound):
        await service.set_real_server_state(
            "web", "198.18.0.9:80", RealServerState.drain, by("bob")
        )


async def test_edit_applies_a_pure_edit(service: ConfigService, engine: FakeEngine) -> None:
    await service.apply(doc(), by("alice"))
    result = await service.edit(
        lambda d: edits.add_real_server(d, "web", rs(6)), by("bob", base=1, message="add")
    )
    assert (result.revision, result.reloads) == (2, True)
    assert engine.servers.keys() == {
        ("web", "198.18.0.4:80"),
        ("web", "198.18.0.5:80"),
        ("web", "198.18.0.6:80"),
    }


# -- status -----------------------------------------------------------------------------------


async def test_status_of_an_empty_store(service: ConfigService) -> None:
    status = await service.status()
    assert (status.revision, status.applied_revision, status.apply_ok) == (None, None, True)
    assert status.virtual_services == ()
    assert status.engine == {"fake": {"version": "fake", "running": False, "reloads": 0}}


async def test_status_after_an_apply(service: ConfigService) -> None:
    await service.apply(doc(vs(check={"type": "none"})), by("alice"))
    status = await service.status()
    assert (status.revision, status.applied_revision, status.apply_ok) == (1, 1, True)
    [web] = status.virtual_services
    assert (web.name, web.status, web.up, web.total, web.ports) == ("web", "unchecked", 0, 2, "80")
    assert [(s.key, s.status, s.engine_weight) for s in web.real_servers] == [
        ("198.18.0.4:80", "unchecked", 1),
        ("198.18.0.5:80", "unchecked", 1),
    ]


# -- build_status: the health rules of daemon/status.py ----------------------------------------

A, B = "198.18.0.4:80", "198.18.0.5:80"


def seen(
    health: str, *, weight: int = 1, state: str = "enabled", **fields: Any
) -> ServerObservation:
    return ServerObservation(
        weight=weight, state=RealServerState(state), health=Health(health), **fields
    )


def observe(
    a: ServerObservation | None, b: ServerObservation | None, *, running: bool = True
) -> EngineObservation:
    servers = {("web", key): obs for key, obs in ((A, a), (B, b)) if obs is not None}
    return EngineObservation(running=running, servers=servers)


def verdict(
    service_fields: Document,
    observation: EngineObservation,
    *,
    a: Document | None = None,
    b: Document | None = None,
) -> tuple[str, str, list[str]]:
    config = parse_document(
        doc(vs("web", {**rs(4), **(a or {})}, {**rs(5), **(b or {})}, **service_fields))
    )
    report = build_status(
        config,
        observation,
        revision=1,
        applied_revision=1,
        apply_ok=True,
        apply_message="",
        engine={},
    )
    [web] = report.virtual_services
    return web.status, web.message, [s.status for s in web.real_servers]


STATUS_CASES: list[
    tuple[str, Document, EngineObservation, Document, Document, tuple[str, str, list[str]]]
] = [
    ("all up", {}, observe(seen("up"), seen("up")), {}, {}, ("up", "", ["up", "up"])),
    (
        "one down",
        {},
        observe(seen("up"), seen("down")),
        {},
        {},
        ("degraded", "1 of 2 real servers down", ["up", "down"]),
    ),
    (
        "all down",
        {},
        observe(seen("down"), seen("down")),
        {},
        {},
        ("down", "no real server is up", ["down", "down"]),
    ),
    (
        "a server the engine lacks",
        {},
        observe(seen("up"), None),
        {},
        {},
        ("degraded", "1 of 2 real servers down", ["up", "down"]),
    ),
    (
        "engine not running",
        {},
        observe(None, None, running=False),
        {},
        {},
        ("down", "the engine is not running", ["down", "down"]),
    ),
    (
        "engine not running, with its detail",
        {},
        EngineObservation(running=False, detail="haproxy exited with status 1"),
        {},
        {},
        ("down", "haproxy exited with status 1", ["down", "down"]),
    ),
    (
        "disabled service",
        {"enabled": False},
        observe(None, None),
        {},
        {},
        ("disabled", "the virtual service is disabled", ["disabled", "disabled"]),
    ),
    (
        "disabled service, engine stopped",
        {"enabled": False},
        observe(None, None, running=False),
        {},
        {},
        ("disabled", "the virtual service is disabled", ["disabled", "disabled"]),
    ),
    (
        "no health check",
        {"check": {"type": "none"}},
        observe(seen("unchecked"), seen("unchecked")),
        {},
        {},
        ("unchecked", "no health check", ["unchecked", "unchecked"]),
    ),
    (
        "no health check, one drained",
        {"check": {"type": "none"}},
        observe(seen("unchecked"), seen("unchecked", state="drain")),
        {},
        {"state": "drain"},
        ("unchecked", "no health check", ["unchecked", "drain"]),
    ),
    (
        "a drained server does not count",
        {},
        observe(seen("up"), seen("up", weight=0, state="drain")),
        {},
        {"state": "drain"},
        ("up", "", ["up", "drain"]),
    ),
    (
        "a drained server that is down is down",
        {},
        observe(seen("up"), seen("down", state="drain")),
        {},
        {"state": "drain"},
        ("up", "", ["up", "down"]),
    ),
    (
        "a disabled server does not count",
        {},
        observe(seen("down"), seen("maint", state="disabled")),
        {},
        {"state": "disabled"},
        ("down", "no real server is up", ["down", "disabled"]),
    ),
    (
        "every server drained or disabled",
        {},
        observe(seen("up", state="drain"), seen("maint", state="disabled")),
        {"state": "drain"},
        {"state": "disabled"},
        ("down", "no enabled real server", ["drain", "disabled"]),
    ),
    (
        "engine health drain counts as up",
        {},
        observe(seen("drain"), seen("up")),
        {},
        {},
        ("up", "", ["up", "up"]),
    ),
    (
        "critical server down",
        {},
        observe(seen("up"), seen("down")),
        {},
        {"critical": True},
        ("down", f"critical real server {B} is down", ["up", "down"]),
    ),
    (
        "critical server up",
        {},
        observe(seen("down"), seen("up")),
        {},
        {"critical": True},
        ("degraded", "1 of 2 real servers down", ["down", "up"]),
    ),
    (
        "critical server disabled",
        {},
        observe(seen("up"), seen("maint", state="disabled")),
        {},
        {"critical": True, "state": "disabled"},
        ("down", f"critical real server {B} is disabled", ["up", "disabled"]),
    ),
    (
        "critical server drained",
        {},
        observe(seen("up"), seen("up", weight=0, state="drain")),
        {},
        {"critical": True, "state": "drain"},
        ("up", "", ["up", "drain"]),
    ),
    (
        "critical server unchecked",
        {"check": {"type": "none"}},
        observe(seen("unchecked"), seen("unchecked")),
        {},
        {"critical": True},
        ("unchecked", "no health check", ["unchecked", "unchecked"]),
    ),
]


@pytest.mark.parametrize(
    ("service_fields", "observation", "a", "b", "expected"),
    [pytest.param(f, o, a, b, e, id=i) for i, f, o, a, b, e in STATUS_CASES],
)
def test_build_status(
    service_fields: Document,
    observation: EngineObservation,
    a: Document,
    b: Document,
    expected: tuple[str, str, list[str]],
) -> None:
    assert verdict(service_fields, observation, a=a, b=b) == expected


def test_an_apply_error_overrides_the_data_plane_status() -> None:
    config = parse_document(doc())
    report = build_status(
        config,
        observe(seen("up"), seen("up")),
        revision=2,
        applied_revision=1,
        apply_ok=False,
        apply_message="haproxy refused: line 3",
        engine={"fake": {}},
    )
    assert (report.revision, report.applied_revision, report.apply_ok, report.apply_message) == (
        2,
        1,
        False,
        "haproxy refused: line 3",
    )
    [web] = report.virtual_services
    assert (web.status, web.message) == ("apply_error", "haproxy refused: line 3")
    # the real servers still report the data plane
    assert [s.status for s in web.real_servers] == ["up", "up"]


def test_status_carries_the_counters_and_check_details() -> None:
    config = parse_document(doc(vs("web", rs(4, 3000), rs(5), extra_ports=[8080, "9000-9010"])))
    observation = EngineObservation(
        running=True,
        servers={
            ("web", A): seen(
                "up",
                weight=3,
                check_result="L7OK",
                check_code=200,
                check_duration_ms=4,
                check_detail="OK",
                current_connections=2,
                total_connections=10,
                bytes_in=100,
                bytes_out=2000,
            ),
            ("web", B): seen("down", check_result="L4CON", check_detail="Connection refused"),
        },
        services={
            "web": ServiceObservation(
                current_connections=2, total_connections=10, bytes_in=100, bytes_out=2000
            )
        },
    )
    report = build_status(
        config,
        observation,
        revision=1,
        applied_revision=1,
        apply_ok=True,
        apply_message="",
        engine={},
    )
    [web] = report.virtual_services
    assert (web.ports, web.up, web.total, web.scheduler, web.type, web.mode, web.protocol) == (
        "80,8080,9000-9010",
        1,
        2,
        "weighted_round_robin",
        "http",
        "l7",
        "tcp",
    )
    assert (web.current_connections, web.total_connections, web.bytes_in, web.bytes_out) == (
        2,
        10,
        100,
        2000,
    )
    first, second = web.real_servers
    assert (first.key, first.weight, first.engine_weight, first.state) == (A, 3000, 3, "enabled")
    assert (first.check_result, first.check_code, first.check_duration_ms, first.check_detail) == (
        "L7OK",
        200,
        4,
        "OK",
    )
    assert (first.current_connections, first.total_connections) == (2, 10)
    assert (first.bytes_in, first.bytes_out) == (100, 2000)
    assert (second.status, second.check_result, second.check_detail) == (
        "down",
        "L4CON",
        "Connection refused",
    )


def test_status_without_counters_is_zero() -> None:
    report = build_status(
        parse_document(doc()),
        observe(None, None),
        revision=1,
        applied_revision=None,
        apply_ok=True,
        apply_message="",
        engine={},
    )
    [web] = report.virtual_services
    assert (web.current_connections, web.total_connections, web.bytes_in, web.bytes_out) == (
        0,
        0,
        0,
        0,
    )
    assert [s.engine_weight for s in web.real_servers] == [None, None]
