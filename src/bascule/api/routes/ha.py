"""/ha: this node of the HA pair (``bascule ha``): its status, the handover, the sync's link.

``GET /ha`` says which node of the document's pair this machine is, its role (``single``,
``active``, ``standby``, ``held``, ``unknown``), VRRP's state and priority, what holds the
node back, and the configuration sync (``sync``: the peer, last sync, the peer's revision, its
health). ``POST /ha/standby`` (operate) hands the VIPs to the peer at once and stands by, 422
``not_applicable`` unless this node is the active; ``POST /ha/takeover`` (operate) asks the
active for them. ``POST /ha/join`` (administer) joins this node to the active at ``url``,
``POST /ha/leave`` (administer) ends the link. While the two histories diverge, ``sync.conflict``
names the revisions of each side; ``POST /ha/resolve`` (administer) keeps one node's history on
both (``{"keep": "lb1"}``), the other's revisions archived in a file on that node, which
``sync.resolution`` names. See daemon/ha.py, daemon/pair.py and daemon/pair_conflict.py.

``/ha/peer/...`` are the calls the two daemons make on each other: only the peer's token
(owned by ``PAIR_ACTOR``) may call them, but ``/ha/peer/join``, which takes an administrator's
token (the one given to ``bascule ha join``) from a node address of the pair.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, IPvAnyAddress

from bascule.api.bodies import OffLoopRoute
from bascule.api.deps import Administrator, Operator, Reader, get_services
from bascule.daemon.ha import HaService, HaStatus, Role
from bascule.daemon.pair import PAIR_ACTOR, PairService, SyncStatus
from bascule.engines.keepalived.handover import DrainedService
from bascule.errors import Forbidden, NotApplicable
from bascule.model.access import Actor

router = APIRouter(prefix="/ha", tags=["high availability"], route_class=OffLoopRoute)


def get_ha(request: Request) -> HaService:
    ha = get_services(request).ha
    if ha is None:
        raise NotApplicable("this daemon runs no HA service")
    return ha


HaServiceDep = Annotated[HaService, Depends(get_ha)]


def get_pair(request: Request) -> PairService:
    pair = get_ha(request).pair
    if pair is None:
        raise NotApplicable("this daemon runs no configuration sync")
    return pair


PairDep = Annotated[PairService, Depends(get_pair)]


def peer_actor(actor: Administrator) -> Actor:
    """The caller, refused unless it is the peer (its token, minted by this node)."""
    if actor.name != PAIR_ACTOR or actor.via != "token":
        raise Forbidden("only the HA pair's peer may call this (with the token minted for it)")
    return actor


Peer = Annotated[Actor, Depends(peer_actor)]


class HaNodeOut(BaseModel):
    name: str
    address: str
    priority: int


class VrrpOut(BaseModel):
    running: bool
    state: str  # MASTER, BACKUP, FAULT, unknown, stopped
    priority: int | None
    standby: bool  # held back by ha standby
    failed: list[str]  # needed processes that do not run


class RevisionMarkOut(BaseModel):
    number: int
    author: str
    created_at: datetime
    message: str


class ConflictOut(BaseModel):
    """Both nodes committed after ``fork``: the revisions of each, oldest first."""

    fork: int
    here: list[RevisionMarkOut]
    peer: list[RevisionMarkOut]


class ResolutionOut(BaseModel):
    """The last ``ha resolve``: whose history was kept, and where the other's revisions are
    (a file on the node named ``archived_node``)."""

    kept: str
    archived_node: str
    archived: list[int]
    archive: str
    at: datetime
    by: str


class SyncOut(BaseModel):
    """The configuration sync: joined or not, the peer, and how in step the two are."""

    joined: bool
    peer_url: str | None
    peer_fingerprint: str | None
    joined_at: datetime | None
    last_sync_at: datetime | None
    peer_revision: int | None  # the revision the peer holds, as last seen
    # single, in_sync, behind (a commit not yet on the peer), following (the standby),
    # unreachable, diverged (both committed under one number: nothing overwritten), unknown
    health: str
    error: str
    conflict: ConflictOut | None
    resolution: ResolutionOut | None


class HaStatusOut(BaseModel):
    role: Role
    node: HaNodeOut | None
    peer: HaNodeOut | None
    vrrp: VrrpOut | None
    revision: int | None
    detail: str
    sync: SyncOut | None
    # the stick tables' link to the peer's HAProxy (state sync): established, local, ...
    tables: str | None
    # conntrackd, which copies the L4 flows to the peer: running, stopped, none
    flows: str | None

    @classmethod
    def of(cls, status: HaStatus) -> HaStatusOut:
        def node(value: object) -> HaNodeOut | None:
            return None if value is None else HaNodeOut.model_validate(value, from_attributes=True)

        vrrp = status.vrrp
        return cls(
            role=status.role,
            node=node(status.node),
            peer=node(status.peer),
            vrrp=None if vrrp is None else VrrpOut.model_validate(vrrp, from_attributes=True),
            revision=status.revision,
            detail=status.detail,
            sync=None if status.sync is None else _sync(status.sync),
            tables=status.tables,
            flows=status.flows,
        )


def _sync(sync: SyncStatus) -> SyncOut:
    return SyncOut.model_validate(sync, from_attributes=True)


class JoinIn(BaseModel):
    """``bascule ha join``: the active's listener, an administrator's API token there, and
    how to know its certificate (one of the two)."""

    url: str = Field(max_length=300, description="https://ADDRESS:PORT of the active")
    token: str = Field(max_length=300, description="an administrator's API token on the active")
    fingerprint: str | None = Field(default=None, max_length=200)
    ca_cert: str | None = Field(default=None, max_length=65536, description="PEM")


class PeerJoinIn(BaseModel):
    port: int = Field(ge=1, le=65535)
    certificate: str = Field(max_length=65536)
    peers_certificate: str = Field(default="", max_length=65536)
    token: str = Field(min_length=1, max_length=300)


class RevisionsIn(BaseModel):
    revisions: list[dict[str, Any]] = Field(max_length=1000)
    certificates: list[dict[str, Any]] | None = None
    # the HTTP user store's rows, hashes included (HttpUserStore.export)
    http_users: list[dict[str, Any]] | None = None


class DrainedServiceIn(BaseModel):
    name: str = Field(max_length=63)
    address: IPvAnyAddress
    port: int = Field(ge=1, le=65535)
    drain_time: int = Field(ge=1, le=86400)


class DrainIn(BaseModel):
    """The peer hands the VIPs over and keeps its connections of these services."""

    services: list[DrainedServiceIn] = Field(max_length=10000)


class ResolveIn(BaseModel):
    """``bascule ha resolve --keep NODE``: the node (of the pair) whose history both keep."""

    keep: str = Field(max_length=63, description="a node's name, as in high_availability.nodes")


class PeerResolveIn(ResolveIn):
    by: str = Field(max_length=200)


class ReplaceIn(RevisionsIn):
    fork: int = Field(ge=0)
    fork_digest: str | None = Field(default=None, max_length=64)
    kept: str = Field(max_length=63)
    by: str = Field(max_length=200)


@router.get("", summary="This node of the HA pair: role, peer, VRRP state")
async def read_ha(actor: Reader, ha: HaServiceDep) -> HaStatusOut:
    return HaStatusOut.of(await ha.status())


@router.post("/standby", summary="Hand the VIPs to the peer now, then stand by")
async def standby(actor: Operator, ha: HaServiceDep) -> HaStatusOut:
    # the caller's permission first: a role that may not is told 403 on any node
    return HaStatusOut.of(await ha.standby(actor))


@router.post("/takeover", summary="Take the VIPs from the active now (on the standby)")
async def takeover(actor: Operator, ha: HaServiceDep) -> HaStatusOut:
    return HaStatusOut.of(await ha.takeover(actor))


@router.post("/join", summary="Join this node to the pair's active, and follow it")
async def join(body: JoinIn, actor: Administrator, ha: HaServiceDep, pair: PairDep) -> HaStatusOut:
    await pair.join(
        body.url,
        token=body.token,
        fingerprint_text=body.fingerprint,
        ca_pem=body.ca_cert,
        actor=actor,
    )
    return HaStatusOut.of(await ha.status())


@router.post("/leave", summary="End the configuration sync with the peer, on both nodes")
async def leave(actor: Administrator, ha: HaServiceDep, pair: PairDep) -> HaStatusOut:
    await pair.leave(actor)
    return HaStatusOut.of(await ha.status())


@router.post("/resolve", summary="Keep one node's history on both (after a partition)")
async def resolve(
    body: ResolveIn, actor: Administrator, ha: HaServiceDep, pair: PairDep
) -> HaStatusOut:
    await pair.resolve(body.keep, actor)
    return HaStatusOut.of(await ha.status())


# -- the peer's calls ----------------------------------------------------------------------------


@router.post("/peer/join", summary="(the joining node) Link to it; the token, store and history")
async def peer_join(body: PeerJoinIn, actor: Administrator, pair: PairDep) -> dict[str, Any]:
    return await pair.accept_join(
        remote=actor.remote,
        port=body.port,
        certificate_pem=body.certificate,
        peers_certificate_pem=body.peers_certificate,
        token=body.token,
        actor=actor,
    )


@router.get("/peer/state", summary="(the peer) This node's head, digests of revisions")
async def peer_state(
    actor: Peer, pair: PairDep, number: Annotated[int, Query(ge=0)] = 0
) -> dict[str, Any]:
    return pair.state(number)


@router.get("/peer/revisions", summary="(the peer) Revisions after a number")
async def peer_revisions(
    actor: Peer, pair: PairDep, after: Annotated[int, Query(ge=0)] = 0
) -> dict[str, Any]:
    return {"revisions": pair.revisions_after(after)}


@router.get("/peer/digests", summary="(the peer) Digests of revisions after a number")
async def peer_digests(
    actor: Peer, pair: PairDep, after: Annotated[int, Query(ge=0)] = 0
) -> dict[str, Any]:
    return {"revisions": await asyncio.to_thread(pair.digests_after, after)}


@router.post("/peer/resolve", summary="(the peer, resolving) Impose this node's history")
async def peer_resolve(body: PeerResolveIn, actor: Peer, pair: PairDep) -> dict[str, Any]:
    await pair.impose(kept=body.keep, by=body.by, peer_actor=actor)
    return {"kept": body.keep}


@router.post("/peer/replace", summary="(the peer whose history is kept) Take its history")
async def peer_replace(body: ReplaceIn, actor: Peer, pair: PairDep) -> dict[str, Any]:
    return await pair.accept_resolution(
        fork=body.fork,
        fork_digest=body.fork_digest,
        revisions=body.revisions,
        certificates=body.certificates,
        kept=body.kept,
        by=body.by,
        http_users=body.http_users,
    )


@router.post("/peer/revisions", summary="(the active) Store its revisions and certificates")
async def peer_receive(body: RevisionsIn, actor: Peer, pair: PairDep) -> dict[str, Any]:
    return await pair.receive(body.revisions, body.certificates, body.http_users)


@router.post("/peer/standby", summary="(the standby, taking over) Hand it the VIPs")
async def peer_standby(actor: Peer, ha: HaServiceDep) -> HaStatusOut:
    return HaStatusOut.of(await ha.standby(actor))


@router.post("/peer/drain", summary="(the active, handing over) Hand it its connections")
async def peer_drain(body: DrainIn, actor: Peer, ha: HaServiceDep) -> dict[str, Any]:
    services = [
        DrainedService(name=s.name, address=str(s.address), port=s.port, drain_time=s.drain_time)
        for s in body.services
    ]
    await ha.drain_from_peer(services)
    return {"services": len(services)}


@router.post("/peer/leave", summary="(the peer, leaving) Forget the link")
async def peer_leave(actor: Peer, pair: PairDep) -> dict[str, Any]:
    pair.forget(actor)
    return {"joined": False}
