"""The configuration sync's protocol between two PairServices in one process (the peer's calls
routed to the other node's service, no network): the active pushes what the standby lacks,
a standby that was away catches up, an active behind its peer fetches, two histories that
diverge are both kept and named on both nodes, and ``resolve`` keeps one on both, the other's
revisions archived."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bascule.daemon import pair_membership, pair_resolution, pair_sync
from bascule.daemon.accounts import AccountService
from bascule.daemon.certificates import CertificateService
from bascule.daemon.http_users import HttpUserService
from bascule.daemon.pair import PairService
from bascule.daemon.peer import revision_from_wire
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import FakeEngine
from bascule.engines.keepalived.engine import KeepalivedEngine
from bascule.errors import DaemonUnavailable, DivergedHistory, InvalidConfiguration, NotApplicable
from bascule.model.access import Actor, Role
from bascule.store.accounts import AccountStore
from bascule.store.certificates import CertificateStore
from bascule.store.http_users import HttpUserStore, hash_password
from bascule.store.pair import PairLink, PairStore
from bascule.store.revisions import RevisionStore


@dataclasses.dataclass
class Node:
    name: str
    store: RevisionStore
    pair: PairService
    users: HttpUserService
    active: bool = False


def document(weight: int) -> dict[str, Any]:
    return {
        "high_availability": {
            "nodes": [
                {"name": "lb1", "address": "198.18.0.3", "priority": 150},
                {"name": "lb2", "address": "198.18.0.4", "priority": 100},
            ],
            "interface": "eth0",
        },
        "virtual_services": [
            {
                "name": "web",
                "address": "127.0.0.1",
                "port": 8080,
                "real_servers": [{"address": "127.0.0.1", "port": 9000, "weight": weight}],
            }
        ],
    }


ADMIN = Actor(name="admin", role=Role.admin, via="local", remote="test")
#: The nodes that do not answer (a test adds one to take it down).
DOWN: set[str] = set()


@pytest.fixture
def nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Node]]:
    made: dict[str, Node] = {}
    down = DOWN
    down.clear()

    class RoutedPeer:
        """PeerClient, its calls handled by the other node's PairService."""

        def __init__(self, link: PairLink) -> None:
            self.peer = made[link.peer_url]

        async def call(
            self,
            method: str,
            path: str,
            *,
            body: Any = None,
            params: Mapping[str, Any] | None = None,
            within: float = 5.0,
        ) -> dict[str, Any]:
            if self.peer.name in down:
                raise DaemonUnavailable(f"{self.peer.name} is down")
            service = self.peer.pair
            if (method, path) == ("GET", "/state"):
                return service.state(int((params or {})["number"]))
            if (method, path) == ("GET", "/revisions"):
                return {"revisions": service.revisions_after(int((params or {})["after"]))}
            if (method, path) == ("POST", "/revisions"):
                return await service.receive(
                    body["revisions"], body["certificates"], body["http_users"]
                )
            if (method, path) == ("GET", "/digests"):
                return {"revisions": service.digests_after(int((params or {})["after"]))}
            if (method, path) == ("POST", "/resolve"):
                await service.impose(kept=body["keep"], by=body["by"])
                return {"kept": body["keep"]}
            if (method, path) == ("POST", "/replace"):
                return await service.accept_resolution(**body)
            raise AssertionError(f"unexpected call {method} {path}")

    for part in (pair_sync, pair_membership, pair_resolution):  # PairService's modules
        monkeypatch.setattr(part, "PeerClient", RoutedPeer)
    monkeypatch.setattr(PairService, "is_active", lambda self: made[self.name].active)
    with ExitStack() as stack:
        for name, peer, address in (("lb1", "lb2", "198.18.0.3"), ("lb2", "lb1", "198.18.0.4")):

            async def addresses(address: str = address) -> frozenset[str]:
                return frozenset({address})

            path = tmp_path / f"{name}.db"
            store = stack.enter_context(RevisionStore(path))
            config = ConfigService(store=store, engines=[FakeEngine()], vips=NullVipManager())
            certificates = CertificateService(
                stack.enter_context(CertificateStore(path)),
                directory=tmp_path / name / "certificates",
                config=config,
            )
            accounts = AccountService(
                stack.enter_context(AccountStore(path)), idle_timeout=900, lockout_attempts=5,
                lockout_seconds=300,
            )  # fmt: skip
            pair_store = stack.enter_context(PairStore(path))
            pair_store.save(
                PairLink(
                    peer_url=peer, peer_cert="", peer_token="t", minted_token="m",
                    peers_cert="", joined_at=datetime.now(UTC),
                )
            )  # fmt: skip
            service = PairService(
                store=pair_store,
                config=config,
                certificates=certificates,
                accounts=accounts,
                keepalived=KeepalivedEngine(tmp_path / name / "keepalived", addresses=addresses),
                listener=None,
                archive_dir=tmp_path / name / "conflicts",
                http_users=(
                    users := HttpUserService(
                        stack.enter_context(HttpUserStore(path)), config=config, audit=None
                    )
                ),
            )
            users.after_change = service.after_commit
            service.name = name  # type: ignore[attr-defined]
            made[name] = Node(name=name, store=store, pair=service, users=users)
        made["lb1"].active = True
        yield made


def commit(node: Node, *weights: int) -> None:
    for weight in weights:
        node.store.commit(document(weight), base=node.store.head_number(), author="a", message="")


def numbers(node: Node) -> list[tuple[int, str]]:
    return [(r.number, r.created_at.isoformat()) for r in node.store.history(limit=100)]


async def test_the_active_pushes_what_the_standby_lacks(nodes: dict[str, Node]) -> None:
    lb1, lb2 = nodes["lb1"], nodes["lb2"]
    commit(lb1, 1, 2, 3)
    await lb1.pair.sync_once()
    assert numbers(lb2) == numbers(lb1)
    assert lb1.pair.status().health == "in_sync" and lb1.pair.status().peer_revision == 3
    await lb2.pair.sync_once()  # the standby pushes nothing
    assert lb2.pair.status().health == "following"


async def test_a_standby_that_was_away_catches_up(nodes: dict[str, Node]) -> None:
    lb1, lb2 = nodes["lb1"], nodes["lb2"]
    down = DOWN
    commit(lb1, 1)
    await lb1.pair.sync_once()
    down.add("lb2")
    commit(lb1, *range(2, 12))
    await lb1.pair.after_commit()
    assert lb1.pair.status().health == "unreachable" and lb2.store.head_number() == 1
    down.clear()
    await lb1.pair.sync_once()
    assert numbers(lb2) == numbers(lb1) and lb2.store.head_number() == 11


async def test_an_active_behind_its_peer_fetches(nodes: dict[str, Node]) -> None:
    lb1, lb2 = nodes["lb1"], nodes["lb2"]
    commit(lb1, 1)
    await lb1.pair.sync_once()
    # lb2 took over and took changes while lb1 was away; lb1 is the active again
    lb1.active, lb2.active = False, True
    commit(lb2, 2, 3)
    lb1.active, lb2.active = True, False
    await lb1.pair.sync_once()
    assert numbers(lb1) == numbers(lb2)


async def test_diverged_histories_are_both_kept(nodes: dict[str, Node]) -> None:
    lb1, lb2 = nodes["lb1"], nodes["lb2"]
    commit(lb1, 1)
    await lb1.pair.sync_once()
    commit(lb1, 2)  # a partition: both took a revision 2
    commit(lb2, 20)
    theirs, mine = numbers(lb2), numbers(lb1)
    await lb1.pair.after_commit()
    status = lb1.pair.status()
    assert status.health == "diverged" and "revisions 2 here and 2 on" in status.error, status
    assert numbers(lb2) == theirs and numbers(lb1) == mine  # nothing overwritten


def diverge(lb1: Node, lb2: Node) -> None:
    """A partition: both nodes are the active and commit (lb1 revision 2, lb2 revisions 2-3)."""
    commit(lb1, 2)
    commit(lb2, 20, 30)


async def test_a_diverged_history_is_named_on_both_nodes(nodes: dict[str, Node]) -> None:
    lb1, lb2 = nodes["lb1"], nodes["lb2"]
    commit(lb1, 1)
    await lb1.pair.sync_once()
    diverge(lb1, lb2)
    for node in (lb1, lb2):  # the link is back: lb1 is the active, lb2 its standby
        with pytest.raises(DivergedHistory):
            await node.pair.sync_once()
    on_lb1, on_lb2 = lb1.pair.status(), lb2.pair.status()
    assert on_lb1.conflict is not None and on_lb2.conflict is not None
    assert on_lb1.conflict.fork == on_lb2.conflict.fork == 1
    assert [m.number for m in on_lb1.conflict.here] == [2]
    assert [m.number for m in on_lb1.conflict.peer] == [2, 3]
    assert [m.number for m in on_lb2.conflict.here] == [2, 3]
    lb1.pair._failed(DivergedHistory(number=2, current=2))
    assert "revisions 2 here and 2-3 on the peer differ" in lb1.pair.status().error


@pytest.mark.parametrize("where", ["lb1", "lb2"])
async def test_resolving_keeps_one_history_on_both_and_archives_the_other(
    nodes: dict[str, Node], where: str
) -> None:
    """``resolve --keep lb1`` run on either node: lb2's revisions 2-3 go to an archive file
    on lb2, and both nodes hold lb1's history."""
    lb1, lb2 = nodes["lb1"], nodes["lb2"]
    commit(lb1, 1)
    await lb1.pair.sync_once()
    diverge(lb1, lb2)
    lost = [lb2.store.get(n) for n in (2, 3)]
    await nodes[where].pair.resolve("lb1", ADMIN)
    assert numbers(lb2) == numbers(lb1) and lb2.store.head() == lb1.store.head()
    resolution = lb2.pair.status().resolution
    assert resolution is not None and resolution.archived == (2, 3)
    assert lb1.pair.status().resolution == dataclasses.replace(resolution, at=ANY_TIME)
    archive, mode = read_archive(resolution.archive)
    assert archive["node"] == "lb2" and archive["kept"] == "lb1" and archive["fork"] == 1
    assert [revision_from_wire(r, 0) for r in archive["revisions"]] == lost
    assert mode == 0o600
    await lb1.pair.sync_once()
    await lb2.pair.sync_once()
    assert lb1.pair.status().health == "in_sync" and lb2.pair.status().health == "following"


async def test_resolving_may_keep_the_standbys_history(nodes: dict[str, Node]) -> None:
    lb1, lb2 = nodes["lb1"], nodes["lb2"]
    commit(lb1, 1)
    await lb1.pair.sync_once()
    diverge(lb1, lb2)
    await lb1.pair.resolve("lb2", ADMIN)
    assert numbers(lb1) == numbers(lb2) and lb1.store.head_number() == 3
    resolution = lb1.pair.status().resolution
    assert resolution is not None and resolution.archived_node == "lb1"
    assert resolution.archived == (2,)
    await lb1.pair.sync_once()
    assert lb1.pair.status().health == "in_sync"


async def test_resolve_names_a_node_of_the_pair_and_needs_a_divergence(
    nodes: dict[str, Node],
) -> None:
    lb1, lb2 = nodes["lb1"], nodes["lb2"]
    commit(lb1, 1)
    await lb1.pair.sync_once()
    with pytest.raises(InvalidConfiguration) as refused:
        await lb1.pair.resolve("lb3", ADMIN)
    assert refused.value.errors[0].path == "keep"
    assert "lb1 (this node) or lb2" in refused.value.errors[0].message
    with pytest.raises(NotApplicable, match="do not diverge"):
        await lb2.pair.resolve("lb2", ADMIN)
    assert numbers(lb1) == numbers(lb2)


def read_archive(path: str) -> tuple[dict[str, Any], int]:
    """An archive file's content and its mode."""
    return json.loads(Path(path).read_text()), Path(path).stat().st_mode & 0o777


class _AnyTime:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, datetime)

    def __hash__(self) -> int:  # pragma: no cover
        return 0


ANY_TIME: Any = _AnyTime()


def hashes(node: Node) -> dict[str, str]:
    return node.users.store.hashes()


async def test_http_users_reach_the_standby_with_each_change(nodes: dict[str, Node]) -> None:
    """Added, given a new password, deleted: on the standby when the change returns, the same
    rows (hashes and times), never a password."""
    lb1, lb2 = nodes["lb1"], nodes["lb2"]
    commit(lb1, 1)
    await lb1.pair.sync_once()
    await lb1.users.add("ops", "password-1", actor=ADMIN)
    assert lb2.users.store.export() == lb1.users.store.export() and "ops" in hashes(lb2)
    await lb1.users.set_password("ops", "password-2", actor=ADMIN)
    assert hashes(lb2) == hashes(lb1)
    await lb1.users.delete("ops", actor=ADMIN)
    assert hashes(lb2) == {}
    assert lb1.pair.status().health == "in_sync"


async def test_a_standby_that_was_away_gets_the_users_it_missed(nodes: dict[str, Node]) -> None:
    lb1, lb2 = nodes["lb1"], nodes["lb2"]
    lb2.users.store.add("stale", hash_password("password-0"), at=datetime.now(UTC))
    down = DOWN
    down.add("lb2")
    await lb1.users.add("ops", "password-1", actor=ADMIN)  # the change returns all the same
    assert lb1.pair.status().health == "unreachable" and "ops" not in hashes(lb2)
    down.clear()
    await lb1.pair.sync_once()
    assert lb2.users.store.export() == lb1.users.store.export()  # "stale" is gone
    assert lb2.pair.state(0)["http_users"] == lb1.pair.state(0)["http_users"]


async def test_resolving_carries_the_kept_nodes_users(nodes: dict[str, Node]) -> None:
    lb1, lb2 = nodes["lb1"], nodes["lb2"]
    commit(lb1, 1)
    await lb1.pair.sync_once()
    diverge(lb1, lb2)
    lb1.users.store.add("ops", hash_password("password-1"), at=datetime.now(UTC))
    lb2.users.store.add("dev", hash_password("password-2"), at=datetime.now(UTC))
    await lb2.pair.resolve("lb1", ADMIN)
    assert hashes(lb2) == hashes(lb1) and set(hashes(lb2)) == {"ops"}
