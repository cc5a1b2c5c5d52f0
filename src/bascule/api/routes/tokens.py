"""/tokens: API tokens, for scripts and the remote CLI (``bascule token ...``).

Beside the flow of a change: a token is how a program becomes an ``Actor``. The secret
(``bsc_<id>_<secret>``) is in the answer of ``POST /tokens`` and nowhere else, ever: the store
keeps its SHA-256. A token carries a role, capped by its owner's role at each use.

Who may do what: with ``administer``, every token (list all, create one for any user, revoke
any). Anyone else sees, creates and revokes only their own, and creates them only at or below
their own role (an operator may make an operator or viewer token for a script, not an admin
one). Revoked tokens stay listed, with ``revoked_at``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, Field

from bascule.api.bodies import OffLoopRoute
from bascule.api.deps import AccountServiceDep, Reader
from bascule.daemon.accounts import TokenInfo
from bascule.errors import Forbidden
from bascule.model.access import Permission, Role

router = APIRouter(prefix="/tokens", tags=["tokens"], route_class=OffLoopRoute)


class TokenOut(BaseModel):
    id: str
    name: str
    role: Role
    owner: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, token: TokenInfo) -> TokenOut:
        return cls(
            id=token.id,
            name=token.name,
            role=token.role,
            owner=token.owner,
            created_at=token.created_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
        )


class TokensOut(BaseModel):
    items: list[TokenOut]


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="What the token is for")
    role: Role
    owner: str | None = Field(
        default=None, max_length=64, description="Whose token (default: the caller's own)"
    )


class TokenCreatedOut(BaseModel):
    token: TokenOut
    secret: str = Field(description="The bearer token; shown this once, never again")


@router.get("", summary="API tokens: all of them (administer), else one's own")
async def list_tokens(
    actor: Reader,
    accounts: AccountServiceDep,
    owner: Annotated[
        str | None, Query(max_length=64, description="Only this user's tokens")
    ] = None,
) -> TokensOut:
    if not actor.may(Permission.administer):
        if owner is not None and owner != actor.name:
            raise Forbidden("only an administrator may list someone else's tokens")
        owner = actor.name
    return TokensOut(items=[TokenOut.of(token) for token in accounts.tokens(owner=owner)])


@router.post("", status_code=201, summary="Create an API token; its secret is shown once")
async def create_token(
    actor: Reader, accounts: AccountServiceDep, token: Annotated[TokenIn, Body()]
) -> TokenCreatedOut:
    info, secret = accounts.create_token(token.name, token.role, by=actor, owner=token.owner)
    return TokenCreatedOut(token=TokenOut.of(info), secret=secret)


@router.delete("/{token_id}", status_code=204, summary="Revoke an API token")
async def revoke_token(
    token_id: Annotated[str, Path(min_length=1, max_length=64)],
    actor: Reader,
    accounts: AccountServiceDep,
) -> None:
    accounts.revoke_token(token_id, by=actor)
