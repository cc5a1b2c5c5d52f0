"""The HA pair as this node sees it: ``bascule ha status``, ``standby`` and ``takeover``.

Where it sits: above the keepalived engine (engines/keepalived), beside the service layer.
``status`` says which node of the document's pair this machine is, its peer, its role (the
active holds the VIPs: VRRP's MASTER; the standby is BACKUP; a node held back is FAULT),
keepalived's state and priority, what holds it back (``ha standby``, a dead HAProxy), and
the revision it runs. ``standby`` is the planned failover for maintenance: the active hands
the VIPs to its peer at once (keepalived's priority 0 advert, not three lost adverts), then
stands by as the BACKUP again, ready to take over if the peer fails. ``takeover`` is the same
handover asked from the other side: the standby has the active run its ``standby`` (a call to
the peer, daemon/pair.py), then waits to be the MASTER. The configuration sync (join, leave,
who may write) is ``PairService``'s; its state joins the status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bascule.daemon.audit import AuditService
from bascule.daemon.handover import Handover
from bascule.daemon.pair import PairService, SyncStatus
from bascule.daemon.pair_state import StateSync
from bascule.daemon.peer import PeerClient
from bascule.daemon.service import ConfigService
from bascule.engines.keepalived.engine import KeepalivedEngine, VrrpStatus
from bascule.engines.keepalived.handover import DrainedService
from bascule.engines.keepalived.view import NotANode, find_self
from bascule.errors import BasculeError, EngineError, NotApplicable
from bascule.model.access import Actor
from bascule.model.high_availability import HaNode

log = logging.getLogger("bascule.pair")

#: How long ``standby`` waits for keepalived to hand the VIPs over.
HANDOVER_TIMEOUT = 5.0
_POLL = 0.02


class Role(enum.StrEnum):
    single = "single"  # no high_availability in the document
    active = "active"  # holds the VIPs (VRRP MASTER)
    standby = "standby"  # ready to take over (VRRP BACKUP)
    held = "held"  # held back (VRRP FAULT): a needed process is down, or ha standby
    unknown = "unknown"  # keepalived is starting, or not running


ROLES: dict[str, Role] = {"MASTER": Role.active, "BACKUP": Role.standby, "FAULT": Role.held}


@dataclass(frozen=True, kw_only=True)
class HaStatus:
    role: Role
    node: HaNode | None = None
    peer: HaNode | None = None
    vrrp: VrrpStatus | None = None
    revision: int | None = None
    detail: str = ""
    sync: SyncStatus | None = None
    # the stick tables' link to the peer's HAProxy: established, local (not shared), ...
    tables: str | None = None
    # conntrackd, which copies the L4 flows to the peer: running, stopped, none
    flows: str | None = None


class HaService:
    """This node of the pair: its status, and the planned handover of the VIPs."""

    def __init__(
        self,
        config: ConfigService,
        keepalived: KeepalivedEngine,
        *,
        audit: AuditService | None = None,
        pair: PairService | None = None,
        state: StateSync | None = None,
        handover: Handover | None = None,
    ) -> None:
        self.config = config
        self.keepalived = keepalived
        self.audit = audit
        self.pair = pair
        self.state = state
        self.handover = handover

    async def status(self) -> HaStatus:
        desired = self.config.desired()
        revision = self.config.store.head_number()
        pair = desired.high_availability
        sync = None if self.pair is None else self.pair.status()
        if pair is None:
            return HaStatus(role=Role.single, revision=revision, sync=sync)
        try:
            me, peer = find_self(pair, await self.keepalived.addresses())
        except NotANode as exc:
            return HaStatus(role=Role.unknown, revision=revision, detail=str(exc), sync=sync)
        vrrp = self.keepalived.vrrp()
        role = ROLES.get(vrrp.state, Role.unknown) if vrrp.running else Role.unknown
        detail = ""
        if not vrrp.running:
            detail = "keepalived is not running (the pair needs a VIP to move)"
        elif vrrp.failed:
            detail = "held back: " + ", ".join(vrrp.failed) + " not running"
        elif vrrp.standby:
            detail = "held back by ha standby"
        return HaStatus(
            role=role,
            node=me,
            peer=peer,
            vrrp=vrrp,
            revision=revision,
            detail=detail,
            sync=sync,
            tables=None if self.state is None else await self.state.health(),
            flows=None if self.state is None else self.state.flows(),
        )

    async def standby(self, actor: Actor) -> HaStatus:
        """Hand the VIPs to the peer now, then stand by (NotApplicable unless active)."""
        before = await self.status()
        if before.role is not Role.active:
            raise NotApplicable(
                f"this node is {before.role.value}, not the active: only the active hands "
                "over the VIPs" + (f" ({before.detail})" if before.detail else "")
            )
        desired = self.config.desired()
        interval = desired.high_availability.advert_interval if desired.high_availability else 1
        vips = {
            vs.address
            for vs in desired.virtual_services
            if not ipaddress.ip_address(vs.address).is_unspecified
        }

        async def in_fault() -> bool:
            return self.keepalived.vrrp().state == "FAULT"

        async def vips_gone() -> bool:
            return not vips & await self._held_addresses()

        drained = await self._drain()
        self.keepalived.set_standby(True)
        try:
            await _until(in_fault)
            await _until(vips_gone)
            # the peer takes over after its skew time (at most one advert interval) once it
            # has the priority 0 advert; released before three intervals, this node then
            # hears the new active's adverts and stays BACKUP
            await asyncio.sleep(interval)
        finally:
            self.keepalived.set_standby(False)
            if self.handover is not None:
                self.handover.finish_later(drained)
        if self.audit is not None:
            self.audit.record(actor, "ha.standby", before.node.name if before.node else "")
        return await self.status()

    async def _drain(self) -> tuple[DrainedService, ...]:
        """Before a handover: this node keeps the connections of the services with a
        drain_time, and the peer hands them to it (daemon/handover.py). Nothing is drained
        on a node not joined (the peer cannot be told), or when the peer does not answer."""
        link = None if self.pair is None else self.pair.link()
        if self.handover is None or link is None:
            return ()
        try:
            drained = await self.handover.begin()
            if drained:
                body = {"services": [dataclasses.asdict(service) for service in drained]}
                await PeerClient(link).call("POST", "/drain", body=body)
        except (BasculeError, OSError) as exc:
            log.warning("the handover drains nothing", extra={"error": str(exc)})
            return ()
        return drained

    async def _held_addresses(self) -> frozenset[str]:
        """The addresses this machine holds, but for those on lo (a drain keeps VIPs there)."""
        if self.handover is None:
            return await self.keepalived.addresses()
        listed = await self.handover.ip.addresses()
        return frozenset(str(a.network.ip) for a in listed.addresses if a.interface != "lo")

    async def drain_from_peer(self, services: list[DrainedService]) -> None:
        """The peer hands the VIPs over and keeps its connections of ``services``: this node
        sends it the segments of connections it does not know, for their drain time."""
        if self.handover is None:
            raise NotApplicable("this daemon hands no connections over")
        await self.handover.forward(services)

    async def takeover(self, actor: Actor) -> HaStatus:
        """Take the VIPs from the active now (on the standby): the active is asked to stand by
        over the pair's link, then this node waits to be the MASTER."""
        before = await self.status()
        if before.role is Role.active:
            raise NotApplicable("this node is already the active")
        if before.role is Role.single:
            raise NotApplicable("this node is not part of a pair (no high_availability)")
        link = None if self.pair is None else self.pair.link()
        if link is None:
            raise NotApplicable(
                "this node has not joined its peer (bascule ha join): run bascule ha standby "
                "on the active instead"
            )
        await PeerClient(link).call("POST", "/standby")

        async def master() -> bool:
            return self.keepalived.vrrp().state == "MASTER"

        await _until(master)
        if self.audit is not None:
            self.audit.record(actor, "ha.takeover", before.node.name if before.node else "")
        return await self.status()


async def _until(condition: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + HANDOVER_TIMEOUT
    while not await condition():
        if time.monotonic() > deadline:
            raise EngineError("keepalived did not hand the VIPs over in time")
        await asyncio.sleep(_POLL)
