"""The operate path (daemon/operations.py): weights and states, one or many, in one revision,
with the same result as the whole flow; over a real RevisionStore and the FakeEngine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from change_requests import by

from bascule.daemon import operations
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import FakeEngine
from bascule.errors import Conflict, InvalidConfiguration, NotFound
from bascule.model import RealServerState, edits, parse_document
from bascule.reconcile.actions import SetState, SetWeight
from bascule.reconcile.operations import ServerOperation
from bascule.store.revisions import RevisionStore

Document = dict[str, Any]


def rs(last: int, weight: int = 1000) -> Document:
    return {"address": f"198.18.0.{last}", "port": 80, "weight": weight}


def vs(name: str, port: int, *servers: Document) -> Document:
    return {
        "name": name,
        "address": "198.18.0.100",
        "port": port,
        "scheduler": "weighted_round_robin",
        "real_servers": list(servers),
    }


DOCUMENT = {"virtual_services": [vs("web", 80, rs(4), rs(5)), vs("api", 81, rs(5), rs(6))]}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RevisionStore]:
    with RevisionStore(tmp_path / "bascule.db") as opened:
        yield opened


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
async def service(store: RevisionStore, engine: FakeEngine) -> ConfigService:
    service = ConfigService(store=store, engines=[engine], vips=NullVipManager())
    await service.apply(DOCUMENT, by("alice"))
    return service


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each change went through the operate path (True) or the whole flow."""
    seen: list[bool] = []
    original = operations.run

    async def run(*args: Any, **kwargs: Any) -> Any:
        result = await original(*args, **kwargs)
        seen.append(result is not None)
        return result

    monkeypatch.setattr(operations, "run", run)
    return seen


async def test_a_bulk_drain_by_address_is_one_revision(
    service: ConfigService, store: RevisionStore, engine: FakeEngine, taken: list[bool]
) -> None:
    result = await service.set_real_servers_state(
        RealServerState.drain, by("bob"), address="198.18.0.5"
    )
    assert taken == [True]
    assert (result.revision, result.applied, result.reloads) == (2, True, False)
    assert engine.executed[1:] == [
        SetState(vs="web", server="198.18.0.5:80", state=RealServerState.drain),
        SetState(vs="api", server="198.18.0.5:80", state=RealServerState.drain),
    ]
    head = store.head()
    assert head is not None
    assert head.message == "drain real servers at 198.18.0.5"
    assert [d.path for d in result.diff] == [
        "virtual_services[web].real_servers[198.18.0.5:80].state",
        "virtual_services[api].real_servers[198.18.0.5:80].state",
    ]
    # the stored document is what the whole flow stores for the same edit
    expected = parse_document(
        edits.update_real_servers(
            DOCUMENT,
            [
                ("web", "198.18.0.5:80", {"state": "drain"}),
                ("api", "198.18.0.5:80", {"state": "drain"}),
            ],
        )
    ).to_document()
    assert head.document == expected
    assert store.get(2).document == expected  # as read back from the database
    assert service.desired() == parse_document(expected)


async def test_a_list_of_servers(service: ConfigService, engine: FakeEngine) -> None:
    await service.set_real_servers_state(
        RealServerState.disabled,
        by("bob"),
        servers=[("web", "198.18.0.4:80"), ("api", "198.18.0.6:80")],
    )
    result = await service.set_real_servers_state(
        RealServerState.enabled,
        by("bob"),
        servers=[("web", "198.18.0.4:80"), ("api", "198.18.0.6:80")],
    )
    assert result.revision == 3
    assert engine.servers[("web", "198.18.0.4:80")].state is RealServerState.enabled


async def test_nothing_at_the_address(service: ConfigService) -> None:
    with pytest.raises(NotFound):
        await service.set_real_servers_state(RealServerState.drain, by("bob"), address="198.18.0.9")
    with pytest.raises(InvalidConfiguration):
        await service.set_real_servers_state(RealServerState.drain, by("bob"), address="web")


async def test_a_weight_moves_its_pool(
    service: ConfigService, engine: FakeEngine, taken: list[bool]
) -> None:
    result = await service.operate(
        [ServerOperation(pool="web", key="198.18.0.4:80", changes={"weight": 500})], by("bob")
    )
    assert taken == [True]
    assert result.applied
    assert all(isinstance(a, SetWeight) and a.vs == "web" for a in engine.executed[1:])
    # the engine holds what a whole reconcile wants: nothing is left to do
    assert (await service.reconciler.plan(service.desired())).empty


async def test_an_invalid_weight_gets_the_whole_flows_error(
    service: ConfigService, store: RevisionStore, taken: list[bool]
) -> None:
    with pytest.raises(InvalidConfiguration) as caught:
        await service.operate(
            [ServerOperation(pool="web", key="198.18.0.4:80", changes={"weight": 0})], by("bob")
        )
    assert taken == [False]
    assert caught.value.errors[0].path == "virtual_services[0].real_servers[0].weight"
    assert store.head_number() == 1


async def test_a_stale_base_is_a_conflict(service: ConfigService, store: RevisionStore) -> None:
    with pytest.raises(Conflict):
        await service.operate(
            [ServerOperation(pool="web", key="198.18.0.4:80", changes={"weight": 5})],
            by("bob", base=7),
        )
    assert store.head_number() == 1


async def test_a_dry_run_commits_nothing(
    service: ConfigService, store: RevisionStore, engine: FakeEngine, taken: list[bool]
) -> None:
    result = await service.set_real_server_state(
        "web", "198.18.0.4:80", RealServerState.drain, by("bob", dry_run=True)
    )
    assert taken == [True]
    assert (result.dry_run, result.changed, result.revision) == (True, True, 1)
    assert result.actions == ("fake: set web/198.18.0.4:80 drain (runtime, no reload)",)
    assert store.head_number() == 1 and len(engine.executed) == 1


async def test_after_a_failed_apply_the_whole_flow_decides(
    service: ConfigService, store: RevisionStore, engine: FakeEngine, taken: list[bool]
) -> None:
    store.record_applied(1, ok=False, message="it broke")
    result = await service.set_real_server_state(
        "web", "198.18.0.4:80", RealServerState.drain, by("bob")
    )
    assert taken == [False]
    assert (result.revision, result.applied) == (2, True)
