"""Who may do what: roles, permissions and the actor behind a request (pure; no I/O).

Every door (the API on the unix socket or over HTTPS, the WUI) turns its caller into an
``Actor`` before anything else happens; the route then asks ``actor.may(permission)``. The
daemon records the actor's name and address with every change (history and audit log).

A role is a fixed set of permissions (``ROLE_PERMISSIONS``); the mapping is the whole policy::

    admin     read, operate, configure, administer
    operator  read, operate
    viewer    read

A PATCH of a real server whose only field is ``weight`` needs ``operate``; any other field
needs ``configure`` (see ``permission_for_real_server_patch``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType


class Role(enum.StrEnum):
    """A user's or a token's role, from the most to the least powerful."""

    admin = "admin"
    operator = "operator"
    viewer = "viewer"


class Permission(enum.StrEnum):
    """What a request needs."""

    read = "read"  # everything readable: status, configuration, history, statistics
    operate = "operate"  # enable/disable/drain a real server, change a real server's weight
    configure = "configure"  # any structural change: apply, add/replace/patch/delete, rollback
    administer = "administer"  # users, all tokens, the audit log, system settings


ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = MappingProxyType(
    {
        Role.admin: frozenset(Permission),
        Role.operator: frozenset({Permission.read, Permission.operate}),
        Role.viewer: frozenset({Permission.read}),
    }
)

#: Real server fields an operator may change with a PATCH (everything else is structural).
OPERATE_FIELDS: frozenset[str] = frozenset({"weight"})


def role_covers(role: Role, other: Role) -> bool:
    """Whether ``role`` has every permission of ``other`` (a token may not exceed its owner)."""
    return ROLE_PERMISSIONS[other] <= ROLE_PERMISSIONS[role]


def permission_for_real_server_patch(fields: Iterable[str]) -> Permission:
    """The permission a PATCH of a real server changing ``fields`` needs."""
    names = set(fields)
    if names and names <= OPERATE_FIELDS:
        return Permission.operate
    return Permission.configure


@dataclass(frozen=True, kw_only=True)
class Actor:
    """The authenticated caller of one request."""

    name: str  # user name ("admin"), or "root@local" style for the unix socket
    role: Role
    via: str  # "session" | "token" | "local"
    remote: str  # client address "127.0.0.1", or "unix socket"

    def may(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]
