"""The HA pair's configuration sync itself: who takes writes, the push, the follow, the status.

Where it sits: beside the service layer, under the doors (the ``/ha/peer/...`` routes the two
daemons call on each other, ``ha status``); ``pair.py`` draws the whole protocol and composes
``PairService`` of this sync, joining and leaving (``pair_membership.py``) and resolving a
diverged history (``pair_resolution.py``). Here: a write is taken only by the active
(``check_writable``); after each commit and every ``SYNC_INTERVAL`` the active brings the
standby to its head (revisions, then the certificate and HTTP user stores when their digests
differ), or fetches what it lacks when it is behind; the standby checks that it follows the
active's history; the peer's calls here answer both; a ``DivergedHistory`` is examined for
the conflicting revisions (daemon/pair_conflict.py) and shown by ``status``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bascule.daemon.accounts import AccountService
from bascule.daemon.audit import AuditService
from bascule.daemon.certificates import CertificateService
from bascule.daemon.http_users import HttpUserService
from bascule.daemon.pair_conflict import (
    EXAMINED,
    HistoryConflict,
    Resolution,
    RevisionMark,
    find_conflict,
)
from bascule.daemon.peer import (
    CALL_TIMEOUT,
    PeerClient,
    certificate_fingerprint,
    revision_from_wire,
    revision_to_wire,
)
from bascule.daemon.service import ConfigService
from bascule.engines.keepalived.engine import KeepalivedEngine
from bascule.errors import (
    BasculeError,
    DivergedHistory,
    InvalidConfiguration,
    NotApplicable,
    NotTheActive,
)
from bascule.model.access import Actor, Role
from bascule.store.pair import PairLink, PairStore

log = logging.getLogger("bascule.pair")

#: The owner of the tokens the two nodes mint for each other (a space: no user is named so).
PAIR_ACTOR = "ha peer"
#: How often the active checks that the standby holds its head (and catches it up).
SYNC_INTERVAL = 2.0
#: Revisions per call to the peer.
BATCH = 50


@dataclass(frozen=True, kw_only=True)
class SyncStatus:
    """What ``ha status`` shows of the configuration sync."""

    joined: bool
    peer_url: str | None = None
    peer_fingerprint: str | None = None
    joined_at: datetime | None = None
    last_sync_at: datetime | None = None  # the last time both nodes held the same head
    peer_revision: int | None = None  # the head the peer said it holds, last time asked
    health: str = "single"  # single | in_sync | behind | unreachable | diverged | following
    error: str = ""
    conflict: HistoryConflict | None = None  # while diverged: the revisions of each side
    resolution: Resolution | None = None  # the last ``ha resolve`` since this daemon started


@dataclass(frozen=True, kw_only=True)
class Listener:
    """This node's HTTPS listener, as the peer will call it: its port and certificate; and
    the certificate of its HAProxy peers listener (daemon/pair_state.py)."""

    host: str
    port: int
    certificate_pem: str
    peers_certificate_pem: str


class PairSync:
    """The sync of a joined node: who takes writes, the active bringing the standby to its
    head, the standby following, the peer's calls here, a divergence noticed, the status."""

    def __init__(
        self,
        *,
        store: PairStore,
        config: ConfigService,
        certificates: CertificateService,
        accounts: AccountService,
        keepalived: KeepalivedEngine,
        listener: Listener | None,
        audit: AuditService | None = None,
        archive_dir: Path | None = None,
        http_users: HttpUserService | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.certificates = certificates
        self.http_users = http_users
        self.accounts = accounts
        self.keepalived = keepalived
        self.listener = listener
        self.audit = audit
        self.archive_dir = archive_dir
        self._sync = asyncio.Lock()
        self._last_sync_at: datetime | None = None
        self._peer_head: int | None = None
        self._health = "unknown"
        self._error = ""
        self._conflict: HistoryConflict | None = None
        self._conflict_key: tuple[Any, ...] | None = None
        self._resolution: Resolution | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- who may write -------------------------------------------------------------------------

    def link(self) -> PairLink | None:
        return self.store.link()

    def is_active(self) -> bool:
        """Whether this node holds the VIPs (VRRP MASTER): the one that takes writes."""
        vrrp = self.keepalived.vrrp()
        return vrrp.running and vrrp.state == "MASTER"

    def takes_writes(self) -> bool:
        """The active; or any node while the document has no ``high_availability`` (no VRRP,
        no roles: the sync still carries each change to the other, and reports a
        divergence); or a node not joined."""
        return (
            self.is_active()
            or self.config.desired().high_availability is None
            or self.store.link() is None
        )

    def check_writable(self) -> None:
        """``NotTheActive`` on a joined node that is not the active (the change pipeline and
        the certificate store ask before every write)."""
        link = self.store.link()
        if link is None or self.takes_writes():
            return
        vrrp = self.keepalived.vrrp()
        raise NotTheActive(
            active=urlsplit(link.peer_url).hostname or link.peer_url,
            detail=f"VRRP here: {vrrp.state}",
        )

    # -- syncing -------------------------------------------------------------------------------

    async def after_commit(self) -> None:
        """After a commit on the active: the standby gets it before the write returns, or
        the loop retries (the write itself is committed either way)."""
        try:
            # under the reconciler's lock: no fetch (it reconciles), only a push
            await asyncio.wait_for(self.sync_once(fetch=False), timeout=CALL_TIMEOUT)
        except (BasculeError, TimeoutError) as exc:
            self._failed(exc)

    async def run(self) -> None:
        while True:
            try:
                await self.sync_once()
            except BasculeError as exc:
                self._failed(exc)
            except Exception:  # the loop must survive the unexpected; logged with its trace
                log.exception("the configuration sync failed")
            await asyncio.sleep(SYNC_INTERVAL)

    async def sync_once(self, *, fetch: bool = True) -> None:
        """Bring the peer to this node's head (on the active); nothing on a standby.
        ``fetch``: an active behind its peer takes the revisions it lacks (and reconciles)."""
        async with self._sync:
            link = self.store.link()
            if link is None:
                return
            peer = PeerClient(link)
            try:
                if self.takes_writes():
                    await self._push_once(peer, link, fetch=fetch)
                else:
                    await self._check_following(peer)
            except DivergedHistory as exc:
                try:
                    await self._note_conflict(peer)
                except BasculeError as why:
                    log.warning("could not compare the histories", extra={"error": str(why)})
                self._failed(exc)
                raise

    async def _check_following(self, peer: PeerClient) -> None:
        """On the standby: the active's revision under this node's head (or this node's
        revision under the active's head, when the active is behind) must be the same."""
        store = self.config.store
        mine = store.head_number()
        state = await peer.call("GET", "/state", params={"number": mine or 0})
        theirs = state.get("head")
        if mine is not None and isinstance(theirs, int):
            if theirs >= mine and state.get("digest_at") != store.digest(mine):
                raise DivergedHistory(number=mine, current=mine, detail="the active's differs")
            if theirs < mine and state.get("head_digest") != store.digest(theirs):
                raise DivergedHistory(number=theirs, current=mine, detail="the active's differs")
        self._health, self._error = "following", ""
        self._conflict = None

    async def _push_once(self, peer: PeerClient, link: PairLink, *, fetch: bool) -> None:
        """On the active: bring the peer to this node's head (see ``sync_once``)."""
        store = self.config.store
        mine = store.head_number()
        state = await peer.call("GET", "/state", params={"number": mine or 0})
        theirs = state.get("head")
        if theirs is not None and not isinstance(theirs, int):
            raise NotApplicable(f"the peer at {link.peer_url} answered a head of {theirs!r}")
        if theirs is not None and (mine is None or theirs > mine):
            if not fetch:
                return  # the loop fetches
            await self._fetch(peer, mine, state)
            mine = store.head_number()
        elif theirs is not None and store.digest(theirs) != state.get("head_digest"):
            raise DivergedHistory(number=theirs, current=mine, detail="the peer's differs")
        certificates = None
        if state.get("certificates") != self.certificates.store.digest():
            certificates = self.certificates.store.snapshot()
        users = None
        if self.http_users is not None and state.get("http_users") != self._users_digest():
            users = self._users_export()
        after = await self._push(peer, theirs, certificates, users)
        self._synced(after if isinstance(after, int) else theirs)

    async def _push(
        self,
        peer: PeerClient,
        after: int | None,
        certificates: list[dict[str, Any]] | None,
        users: list[dict[str, str]] | None = None,
    ) -> int | None:
        """Send the peer every revision after ``after`` (and ``certificates`` and the HTTP
        ``users``, first); the head it then holds."""
        while True:
            batch = await asyncio.to_thread(self.config.store.since, after, limit=BATCH)
            if not batch and certificates is None and users is None:
                return after
            body = {
                "revisions": [revision_to_wire(r) for r in batch],
                "certificates": certificates,
                "http_users": users,
            }
            reply = await peer.call("POST", "/revisions", body=body)
            certificates = users = None
            head = reply.get("head")
            after = head if isinstance(head, int) else after
            if not batch:
                return after

    async def _fetch(self, peer: PeerClient, mine: int | None, state: Mapping[str, Any]) -> None:
        """The active is behind its peer (it came back alone while the peer had taken
        changes): the missing revisions, if this node's head is the peer's revision of the
        same number; ``DivergedHistory`` if not."""
        if mine is not None and state.get("digest_at") != self.config.store.digest(mine):
            raise DivergedHistory(number=mine, current=mine, detail="the peer's differs")
        reply = await peer.call("GET", "/revisions", params={"after": mine or 0})
        revisions = [
            revision_from_wire(item, index) for index, item in enumerate(reply["revisions"])
        ]
        await asyncio.to_thread(self.config.store.replicate, revisions)
        await self.config.reconcile()

    # -- the peer's calls here -------------------------------------------------------------

    def state(self, number: int) -> dict[str, Any]:
        store = self.config.store
        head = store.head_number()
        return {
            "head": head,
            "head_digest": store.digest(head),
            "digest_at": store.digest(number) if number else None,
            "certificates": self.certificates.store.digest(),
            "http_users": self._users_digest(),
        }

    def revisions_after(self, after: int) -> list[dict[str, Any]]:
        return [revision_to_wire(r) for r in self.config.store.since(after or None, limit=BATCH)]

    async def receive(
        self,
        revisions: Sequence[Mapping[str, Any]],
        certificates: Sequence[Mapping[str, Any]] | None,
        http_users: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The active's revisions (and its certificates and HTTP users, first: the documents
        name them); reconciled in the background, so the active's write returns once they
        are stored."""
        parsed = [revision_from_wire(item, index) for index, item in enumerate(revisions)]
        if certificates is not None:
            await self.certificates.replicate(certificates)
        await self._replicate_users(http_users)
        head = await asyncio.to_thread(self.config.store.replicate, parsed)
        self._synced(head)
        if parsed or certificates is not None:
            self._reconcile_soon()
        return {"head": head}

    # -- the HTTP user store, synced like the certificate store -----------------------------

    def _users_export(self) -> list[dict[str, str]] | None:
        """Every HTTP user with its hash (only ever on the pinned channel)."""
        return None if self.http_users is None else self.http_users.store.export()

    def _users_digest(self) -> str | None:
        return None if self.http_users is None else self.http_users.store.digest()

    async def _replicate_users(self, rows: Sequence[Mapping[str, Any]] | None) -> None:
        """Hold exactly the peer's HTTP users (None: the peer sent none, as a Bascule from
        before the HTTP users were synced does)."""
        if rows is not None and self.http_users is not None:
            await self.http_users.replicate(rows)

    def _reconcile_soon(self) -> None:
        task = asyncio.create_task(self.config.reconcile(), name="reconcile on sync")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def digests_after(self, after: int) -> list[dict[str, Any]]:
        """This node's revisions after ``after`` as the peer compares them (number, digest,
        author, time, message), at most ``2 * EXAMINED``."""
        revisions = self.config.store.since(after or None, limit=2 * EXAMINED)
        return [RevisionMark.of(revision).to_wire() for revision in revisions]

    # -- a diverged history ----------------------------------------------------------------

    async def _note_conflict(self, peer: PeerClient) -> None:
        """After ``DivergedHistory``: find which revisions conflict (once per pair of heads),
        for the status, the WUI and the log."""
        store = self.config.store
        state = await peer.call("GET", "/state", params={"number": 0})
        key = (store.head_number(), store.digest(store.head_number()), state.get("head_digest"))
        if key == self._conflict_key and self._conflict is not None:
            return
        conflict = await self._examine(peer)
        self._conflict, self._conflict_key = conflict, key
        if conflict is not None:
            log.warning(
                "the pair's histories diverge: bascule ha resolve --keep NODE keeps one",
                extra={
                    "fork": conflict.fork,
                    "here": ",".join(str(mark.number) for mark in conflict.here),
                    "peer": ",".join(str(mark.number) for mark in conflict.peer),
                },
            )

    async def _examine(self, peer: PeerClient) -> HistoryConflict | None:
        """Compare this node's recent history with the peer's (``find_conflict``)."""
        store = self.config.store
        mine = store.head_number()
        state = await peer.call("GET", "/state", params={"number": 0})
        theirs = state.get("head")
        if mine is None or not isinstance(theirs, int):
            return None
        lowest = max(0, min(mine, theirs) - EXAMINED)
        reply = await peer.call("GET", "/digests", params={"after": lowest})
        peer_marks = [
            RevisionMark.from_wire(item, index)
            for index, item in enumerate(reply.get("revisions") or [])
        ]
        own = await asyncio.to_thread(store.since, lowest or None, limit=2 * EXAMINED)
        return find_conflict([RevisionMark.of(r) for r in own], peer_marks, lowest=lowest)

    # -- status --------------------------------------------------------------------------------

    def status(self) -> SyncStatus:
        link = self.store.link()
        if link is None:
            return SyncStatus(joined=False)
        mine = self.config.store.head_number()
        health = self._health
        if health == "in_sync" and self.is_active() and self._peer_head != mine:
            health = "behind"
        return SyncStatus(
            joined=True,
            peer_url=link.peer_url,
            peer_fingerprint=_fingerprint_or_none(link.peer_cert),
            joined_at=link.joined_at,
            last_sync_at=self._last_sync_at,
            peer_revision=self._peer_head,
            health=health,
            error=self._error,
            conflict=self._conflict if health == "diverged" else None,
            resolution=self._resolution,
        )

    def _synced(self, peer_head: int | None) -> None:
        self._peer_head = peer_head
        self._last_sync_at = datetime.now(UTC)
        self._health, self._error = "in_sync", ""
        self._conflict = self._conflict_key = None

    def _failed(self, exc: BaseException) -> None:
        message = str(exc) or f"no answer within {CALL_TIMEOUT:g} s"
        health = "diverged" if isinstance(exc, DivergedHistory) else "unreachable"
        if isinstance(exc, DivergedHistory) and self._conflict is not None:
            message = self._conflict.describe() + ": bascule ha resolve --keep NODE keeps one"
        if (health, message) != (self._health, self._error):
            log.warning("the peer is not in sync", extra={"health": health, "error": message})
        self._health, self._error = health, message

    def _revoke(self, token_id: str) -> None:
        try:
            self.accounts.revoke_token(token_id, by=pair_actor())
        except BasculeError as exc:
            log.warning("could not revoke the peer's token", extra={"error": str(exc)})

    def _record(self, actor: Actor, action: str, target: str, *, detail: str = "") -> None:
        if self.audit is not None:
            self.audit.record(actor, action, target, detail=detail)


def _fingerprint_or_none(pem: str) -> str | None:
    try:
        return certificate_fingerprint(pem)
    except InvalidConfiguration:
        return None


def pair_actor() -> Actor:
    return Actor(name=PAIR_ACTOR, role=Role.admin, via="local", remote="ha pair")
