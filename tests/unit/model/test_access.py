"""Roles and permissions: the whole policy is ROLE_PERMISSIONS."""

from __future__ import annotations

import pytest

from bascule.model.access import (
    ROLE_PERMISSIONS,
    Actor,
    Permission,
    Role,
    permission_for_real_server_patch,
    role_covers,
)


def test_the_roles() -> None:
    assert ROLE_PERMISSIONS[Role.admin] == set(Permission)
    assert ROLE_PERMISSIONS[Role.operator] == {Permission.read, Permission.operate}
    assert ROLE_PERMISSIONS[Role.viewer] == {Permission.read}


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.admin, {"read", "operate", "configure", "administer"}),
        (Role.operator, {"read", "operate"}),
        (Role.viewer, {"read"}),
    ],
)
def test_an_actor_may_what_its_role_may(role: Role, allowed: set[str]) -> None:
    actor = Actor(name="someone", role=role, via="token", remote="127.0.0.1")
    assert {p.value for p in Permission if actor.may(p)} == allowed


def test_role_order() -> None:
    assert role_covers(Role.admin, Role.operator)
    assert role_covers(Role.operator, Role.operator)
    assert role_covers(Role.operator, Role.viewer)
    assert not role_covers(Role.operator, Role.admin)
    assert not role_covers(Role.viewer, Role.operator)


@pytest.mark.parametrize(
    ("fields", "needed"),
    [
        (["weight"], Permission.operate),
        (["weight", "port"], Permission.configure),
        (["state"], Permission.configure),
        ([], Permission.configure),
    ],
)
def test_a_real_server_patch_needs(fields: list[str], needed: Permission) -> None:
    assert permission_for_real_server_patch(fields) == needed
