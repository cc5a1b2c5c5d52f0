"""``by("alice")``: a ChangeRequest as a door would hand it to the service layer, for the tests
that call the service layer directly (importable from every test under tests/unit, whose
conftest puts this directory on the path)."""

from __future__ import annotations

from bascule.daemon.changes import UNCHECKED, Base, ChangeRequest
from bascule.model.access import Actor, Role


def by(
    name: str,
    *,
    role: Role = Role.admin,
    remote: str = "",
    base: Base = UNCHECKED,
    message: str = "",
    dry_run: bool = False,
) -> ChangeRequest:
    """A change asked by ``name`` (an administrator on the unix socket unless told)."""
    actor = Actor(name=name, role=role, via="local", remote=remote)
    return ChangeRequest(actor=actor, base=base, message=message, dry_run=dry_run)
