"""/users: the people who log in, their roles and passwords (``bascule user ...``).

Outside the flow of a configuration change, beside it: accounts decide who may make one.
Everything here needs the ``administer`` permission, except that anyone may change their own
password (``PATCH /users/<self>`` with ``password`` and ``current_password``). Changing a
password ends that user's sessions; deleting a user also revokes their API tokens; the last
administrator can be neither deleted nor demoted (422 ``not_applicable``). Each change is in
the audit log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel, Field

from bascule.api.auth import check
from bascule.api.bodies import OffLoopRoute
from bascule.api.deps import AccountServiceDep, Administrator, Reader
from bascule.api.errors import LOCKED_RESPONSES
from bascule.daemon.accounts import User
from bascule.errors import FieldError, InvalidConfiguration
from bascule.model.access import Permission, Role

router = APIRouter(prefix="/users", tags=["users"], route_class=OffLoopRoute)

UserName = Annotated[str, Path(min_length=1, max_length=64, description="The user's name")]


class UserOut(BaseModel):
    name: str
    role: Role
    created_at: datetime
    password_changed_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            name=user.name,
            role=user.role,
            created_at=user.created_at,
            password_changed_at=user.password_changed_at,
        )


class UsersOut(BaseModel):
    items: list[UserOut]


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    role: Role
    password: str = Field(min_length=1, max_length=1024)


class UserPatch(BaseModel):
    role: Role | None = None
    password: str | None = Field(default=None, min_length=1, max_length=1024)
    current_password: str | None = Field(
        default=None,
        max_length=1024,
        description="Required to change one's own password without the administer permission",
    )


@router.get("", summary="Every user (administer)")
async def list_users(actor: Administrator, accounts: AccountServiceDep) -> UsersOut:
    return UsersOut(items=[UserOut.of(user) for user in accounts.users()])


@router.post("", status_code=201, summary="Add a user (administer)")
async def create_user(
    actor: Administrator, accounts: AccountServiceDep, user: Annotated[UserIn, Body()]
) -> UserOut:
    created = await accounts.create_user(user.name, user.role, user.password, by=actor)
    return UserOut.of(created)


@router.get("/{user}", summary="One user (administer, or oneself)")
async def read_user(user: UserName, actor: Reader, accounts: AccountServiceDep) -> UserOut:
    if user != actor.name:
        check(actor, Permission.administer)
    return UserOut.of(accounts.user(user))


@router.patch(
    "/{user}",
    summary="Change a user's role (administer) or password",
    responses=LOCKED_RESPONSES,
)
async def update_user(
    user: UserName,
    actor: Reader,
    accounts: AccountServiceDep,
    changes: Annotated[UserPatch, Body()],
) -> UserOut:
    if changes.role is None and changes.password is None:
        raise InvalidConfiguration(
            [FieldError(path="body", message="give a role, a password, or both")]
        )
    if changes.role is not None or user != actor.name:
        check(actor, Permission.administer)
    if changes.role is not None:
        accounts.set_role(user, changes.role, by=actor)
    if changes.password is not None:
        await accounts.set_password(
            user, changes.password, by=actor, current=changes.current_password
        )
    return UserOut.of(accounts.user(user))


@router.delete("/{user}", status_code=204, summary="Delete a user (administer)")
async def delete_user(user: UserName, actor: Administrator, accounts: AccountServiceDep) -> None:
    accounts.delete_user(user, by=actor)
