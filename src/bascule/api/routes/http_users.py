"""/http-users: the users of services' basic authentication (``bascule http-user ...``).

Everything here needs ``administer``: these are credentials, like the accounts of /users.
Every change goes through the one ``HttpUserService`` (daemon/http_users.py), which hashes
the password (yescrypt; a refusal is 422 naming ``name`` or ``password``), reloads HAProxy
when a service names the user, and records the change in the audit log. No answer ever holds
a password or a hash. A user is refused for deletion while a service names it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Request, Response
from pydantic import BaseModel, Field

from bascule.api.bodies import OffLoopRoute
from bascule.api.deps import Administrator, get_services
from bascule.daemon.http_users import HttpUserChange, HttpUserDetails, HttpUserService
from bascule.errors import NotApplicable
from bascule.store.http_users import MAX_PASSWORD

router = APIRouter(tags=["http-users"], route_class=OffLoopRoute)

UserName = Annotated[
    str, Path(min_length=1, max_length=64, description="The HTTP user's name in the store")
]


def get_http_users(request: Request) -> HttpUserService:
    users = get_services(request).http_users
    if users is None:
        raise NotApplicable("this daemon has no HTTP user store")
    return users


HttpUserServiceDep = Annotated[HttpUserService, Depends(get_http_users)]


class HttpUserOut(BaseModel):
    name: str
    created_at: datetime
    password_changed_at: datetime
    used_by: list[str] = Field(description="the virtual services whose authentication names it")
    message: str = Field(
        default="", description="after a change: why HAProxy does not check it yet, if it does not"
    )

    @classmethod
    def of(cls, details: HttpUserDetails, message: str = "") -> HttpUserOut:
        return cls(
            name=details.name,
            created_at=details.created_at,
            password_changed_at=details.password_changed_at,
            used_by=list(details.used_by),
            message=message,
        )

    @classmethod
    def changed(cls, change: HttpUserChange) -> HttpUserOut:
        return cls.of(change.details, change.message)


class HttpUsersOut(BaseModel):
    items: list[HttpUserOut]


class HttpUserIn(BaseModel):
    name: str = Field(max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class HttpPasswordIn(BaseModel):
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


@router.get("/http-users", summary="Every HTTP user of the store (administer)")
async def list_http_users(actor: Administrator, users: HttpUserServiceDep) -> HttpUsersOut:
    return HttpUsersOut(items=[HttpUserOut.of(details) for details in users.entries()])


@router.post("/http-users", status_code=201, summary="Add an HTTP user (administer)")
async def add_http_user(
    actor: Administrator, users: HttpUserServiceDep, body: Annotated[HttpUserIn, Body()]
) -> HttpUserOut:
    return HttpUserOut.changed(await users.add(body.name, body.password, actor=actor))


@router.get("/http-users/{name}", summary="One HTTP user (administer)")
async def read_http_user(
    name: UserName, actor: Administrator, users: HttpUserServiceDep
) -> HttpUserOut:
    return HttpUserOut.of(users.show(name))


@router.put(
    "/http-users/{name}/password",
    summary="Set an HTTP user's password (administer); HAProxy reloads if a service names it",
)
async def set_http_user_password(
    name: UserName,
    actor: Administrator,
    users: HttpUserServiceDep,
    body: Annotated[HttpPasswordIn, Body()],
) -> HttpUserOut:
    return HttpUserOut.changed(await users.set_password(name, body.password, actor=actor))


@router.delete(
    "/http-users/{name}",
    status_code=204,
    summary="Delete an HTTP user (administer; refused while a service names it)",
)
async def delete_http_user(
    name: UserName, actor: Administrator, users: HttpUserServiceDep
) -> Response:
    await users.delete(name, actor=actor)
    return Response(status_code=204)
