"""HttpUserService over real stores and a FakeEngine that takes the hashes: the document's
names, a password change reaching the engine (a reload when a service names the user),
deletion while named, and an audit log without a password."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from change_requests import by

from bascule.daemon.audit import AuditService
from bascule.daemon.http_users import HttpUserService
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import FakeEngine
from bascule.errors import InvalidConfiguration, NotFound
from bascule.store.audit import AuditStore
from bascule.store.http_users import (
    HttpUserStore,
    InvalidHttpUser,
    hash_password,
    verify_password,
)
from bascule.store.revisions import RevisionStore

ADMIN = by("alice").actor


class HashedEngine(FakeEngine):
    """A FakeEngine that keeps the hashes it is handed, like the HAProxy engine's globals."""

    def __init__(self) -> None:
        super().__init__()
        self.hashes: dict[str, str] = {}

    def set_http_users(self, hashes: Mapping[str, str]) -> bool:
        changed = dict(hashes) != self.hashes
        self.hashes = dict(hashes)
        return changed


Parts = tuple[HttpUserService, ConfigService, AuditStore, HashedEngine]


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    path = tmp_path / "bascule.db"
    with (
        RevisionStore(path) as revisions,
        HttpUserStore(path) as store,
        AuditStore(path) as audits,
    ):
        audit = AuditService(audits)
        engine = HashedEngine()
        config = ConfigService(
            store=revisions, engines=[engine], vips=NullVipManager(), audit=audit
        )
        users = HttpUserService(store, config=config, audit=audit, engine=engine)
        config.attach_certificates(users.document_problems, tuple)
        yield users, config, audits, engine


def protected(*users: str) -> dict[str, Any]:
    return {
        "virtual_services": [
            {
                "name": "ops",
                "address": "198.18.0.100",
                "port": 80,
                "authentication": {"realm": "Operations", "users": list(users)},
            }
        ]
    }


async def test_a_document_naming_a_missing_user_is_refused_on_its_field(parts: Parts) -> None:
    users, config, _, _ = parts
    await users.add("ops", "password-1", actor=ADMIN)
    with pytest.raises(InvalidConfiguration) as caught:
        await config.apply(protected("ops", "nobody"), by("alice"))
    [error] = caught.value.errors
    assert error.path == "virtual_services[0].authentication.users[1]"
    assert "no HTTP user nobody" in error.message
    assert config.store.head() is None


async def test_a_new_password_reaches_the_engine_with_a_reload_when_a_service_names_it(
    parts: Parts,
) -> None:
    users, config, audits, engine = parts
    await users.add("ops", "password-1", actor=ADMIN)
    await users.add("spare", "password-1", actor=ADMIN)
    assert set(engine.hashes) == {"ops", "spare"}
    await config.apply(protected("ops"), by("alice"))
    reloads = engine.reloads

    # a user no service names: the engine has the hash, nothing reloads
    await users.set_password("spare", "password-2", actor=ADMIN)
    assert verify_password("password-2", engine.hashes["spare"])
    assert engine.reloads == reloads

    # a named user: reloaded, so the running userlist checks the new password
    change = await users.set_password("ops", "password-3", actor=ADMIN)
    assert verify_password("password-3", engine.hashes["ops"])
    assert engine.reloads == reloads + 1
    assert change.message == "" and change.details.used_by == ("ops",)

    entries, _ = audits.page(0, 20)
    assert ("http_user.passwd", "ops", "ok") in [(e.action, e.target, e.outcome) for e in entries]
    assert not any("password-" in f"{e.detail}{e.diff}" for e in entries)


async def test_a_named_user_cannot_be_deleted(parts: Parts) -> None:
    users, config, _, engine = parts
    await users.add("ops", "password-1", actor=ADMIN)
    await config.apply(protected("ops"), by("alice"))
    with pytest.raises(InvalidHttpUser, match="named by the authentication of virtual service ops"):
        await users.delete("ops", actor=ADMIN)
    await config.apply({"virtual_services": []}, by("alice"))
    await users.delete("ops", actor=ADMIN)
    assert users.entries() == [] and engine.hashes == {}
    with pytest.raises(NotFound):
        await users.delete("ops", actor=ADMIN)


@pytest.mark.parametrize(
    ("name", "password", "field"),
    [("ops", "short", "password"), ("a:b", "password-1", "name"), ("", "password-1", "name")],
)
async def test_bad_input_is_refused_on_its_field_and_changes_nothing(
    parts: Parts, name: str, password: str, field: str
) -> None:
    users, _, _, engine = parts
    with pytest.raises(InvalidHttpUser) as caught:
        await users.add(name, password, actor=ADMIN)
    assert [e.path for e in caught.value.errors] == [field]
    assert users.entries() == [] and engine.hashes == {}


async def test_replicate_holds_the_active_users_and_reloads_for_a_named_one(
    parts: Parts, tmp_path: Path
) -> None:
    users, config, _, engine = parts
    await users.add("ops", "password-1", actor=ADMIN)
    await config.apply(protected("ops"), by("alice"))
    reloads = engine.reloads
    with HttpUserStore(tmp_path / "active.db") as active:
        active.add("ops", users.store.hashes()["ops"], at=users.clock())
        active.set_password_hash("ops", hash_password("password-9"), at=users.clock())
        assert await users.replicate(active.export()) == ("ops",)
    assert verify_password("password-9", engine.hashes["ops"])
    assert engine.reloads == reloads + 1
