"""Configuration sync of an HA pair: joining, the active feeding the standby, writes refused.

Where it sits: beside the service layer, under the doors (``bascule ha join``, the API's
``/ha/peer/...`` routes the two daemons call on each other). ``bascule ha join`` on the second
node pins the first node's listener certificate (checked against ``--fingerprint`` or signed by
``--ca-cert``), mints an API token for the peer and sends it with its own certificate, and
receives a token minted for it, the whole revision history and the certificate store (keys
included), and the HTTP user store (hashes included). From then on:

- **Who calls whom.** Every call between the two goes over HTTPS to the peer's listener, whose
  certificate must be the pinned one (it is the only trust anchor of the call), with the token
  the peer minted for this node (``Authorization: Bearer``; owned by ``PAIR_ACTOR``, a name no
  user can have). Both directions, every call: never anonymous.
- **Push, by the active.** Revisions are made on the node that holds the VIPs (VRRP's
  MASTER); a write anywhere else is refused with ``NotTheActive`` naming the peer. After each
  commit the active sends the standby what it lacks before the write returns
  (``after_commit``, bounded by ``CALL_TIMEOUT``); a peer that is down is caught up by the
  loop (``run``) every ``SYNC_INTERVAL`` while ``ha status`` shows how far behind it is; the
  certificate store and the HTTP user store go with them when their digests differ, and an
  HTTP user change is pushed the same way (``HttpUserService.after_change``). The
  standby stores the revisions under their own numbers (``RevisionStore.replicate``) and
  reconciles on them. Push rather than pull: the write returns once the revision is on both
  nodes, and the standby needs no timer to learn of a change.
- **Never a silent overwrite.** Each side compares digests of the revisions both hold: if the
  two committed different revisions under one number (a partition with writes on both sides),
  nothing is sent; ``ha status`` (on both nodes: the standby checks its head against the
  active's), the WUI and the log name the conflicting revisions (daemon/pair_conflict.py). A
  node behind an active it follows gets the missing revisions; an active behind a standby (it
  came back alone) fetches them.
- **Resolving.** ``bascule ha resolve --keep lb1``, on either node, keeps one node's history:
  that node (asked by its peer if the command ran on the other) sends its revisions after
  the fork and its certificate store (``POST /ha/peer/replace``); the other writes its own
  revisions after the fork to an archive file, replaces them (``RevisionStore.replace_after``)
  and reconciles. Both then hold the same numbers and documents, and ``ha status`` says where
  the discarded revisions are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
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
    write_archive,
)
from bascule.daemon.peer import (
    CALL_TIMEOUT,
    PeerClient,
    base_url,
    certificate_fingerprint,
    fetch_certificate,
    normalize_fingerprint,
    parse_peer_url,
    revision_from_wire,
    revision_to_wire,
)
from bascule.daemon.service import ConfigService
from bascule.engines.keepalived.engine import KeepalivedEngine
from bascule.engines.keepalived.view import NotANode, find_self
from bascule.errors import (
    BasculeError,
    DivergedHistory,
    FieldError,
    InvalidConfiguration,
    NotApplicable,
    NotTheActive,
)
from bascule.model.access import Actor, Role
from bascule.model.high_availability import HaNode
from bascule.store.pair import PairLink, PairStore

log = logging.getLogger("bascule.pair")

#: The owner of the tokens the two nodes mint for each other (a space: no user is named so).
PAIR_ACTOR = "ha peer"
#: How often the active checks that the standby holds its head (and catches it up).
SYNC_INTERVAL = 2.0
#: Revisions per call to the peer.
BATCH = 50
#: How long ``ha resolve`` waits for the peer (which may call this node back meanwhile).
RESOLVE_TIMEOUT = 60.0


# -- the sync ------------------------------------------------------------------------------------


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


class PairService:
    """This node's side of the configuration sync (see the module's doc)."""

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

    # -- joining -------------------------------------------------------------------------------

    async def join(
        self,
        url: str,
        *,
        token: str,
        fingerprint_text: str | None,
        ca_pem: str | None,
        actor: Actor,
    ) -> SyncStatus:
        """Join the pair whose active listens at ``url`` (``bascule ha join``)."""
        host, port = parse_peer_url(url)
        if not token.strip():
            raise InvalidConfiguration([FieldError(path="token", message="must not be empty")])
        if (fingerprint_text is None) == (ca_pem is None):
            raise InvalidConfiguration(
                [
                    FieldError(
                        path="fingerprint",
                        message="give the peer's certificate fingerprint or its CA certificate "
                        "(--fingerprint or --ca-cert), one of the two",
                    )
                ]
            )
        expected = None if fingerprint_text is None else normalize_fingerprint(fingerprint_text)
        if ca_pem is not None:
            certificate_fingerprint(ca_pem, field="ca_cert")
        current = self.store.link()
        if current is not None:
            raise NotApplicable(
                f"this node is already paired with {current.peer_url}: bascule ha leave first"
            )
        if self.listener is None:
            raise NotApplicable(
                "this node's HTTPS listener is off (listen: none): the peer calls this node "
                "there; start it with --listen ADDRESS:PORT on its node address"
            )
        if ipaddress.ip_address(self.listener.host).is_loopback:
            raise NotApplicable(
                f"this node's HTTPS listener is on {self.listener.host}, which the peer cannot "
                "reach: start it with --listen NODE-ADDRESS:PORT (or 0.0.0.0:PORT)"
            )
        peer_cert = await asyncio.to_thread(fetch_certificate, host, port, ca_pem=ca_pem)
        seen = certificate_fingerprint(peer_cert)
        if expected is not None and seen != expected:
            raise InvalidConfiguration(
                [
                    FieldError(
                        path="fingerprint",
                        message=f"the peer at {host}:{port} presents a certificate whose "
                        f"SHA-256 is {seen}, not {expected}: nothing was sent to it",
                    )
                ]
            )
        info, minted = self.accounts.create_token("ha pair", Role.admin, by=_pair_actor())
        link = PairLink(
            peer_url=base_url(host, port),
            peer_cert=peer_cert,
            peer_token=token.strip(),
            minted_token=info.id,
            peers_cert="",  # the peer's answer carries it
            joined_at=datetime.now(UTC),
        )
        try:
            offer = await PeerClient(link).call(
                "POST",
                "/join",
                body={
                    "port": self.listener.port,
                    "certificate": self.listener.certificate_pem,
                    "peers_certificate": self.listener.peers_certificate_pem,
                    "token": minted,
                },
            )
            revisions = [
                revision_from_wire(item, index)
                for index, item in enumerate(offer.get("revisions") or [])
            ]
            await self.certificates.replicate(list(offer.get("certificates") or []))
            await self._replicate_users(offer.get("http_users"))
            await asyncio.to_thread(self.config.store.replicate, revisions)
        except BasculeError:
            self.accounts.revoke_token(info.id, by=_pair_actor())
            raise
        peers_cert = str(offer.get("peers_certificate") or "")
        certificate_fingerprint(peers_cert, field="peers_certificate")
        self.store.save(
            dataclasses.replace(link, peer_token=str(offer["token"]), peers_cert=peers_cert)
        )
        self._synced(self.config.store.head_number())
        self._record(actor, "ha.join", link.peer_url, detail=f"pinned {seen}")
        log.info("joined the pair", extra={"peer": link.peer_url, "revisions": len(revisions)})
        await self.config.reconcile()
        return self.status()

    async def accept_join(
        self,
        *,
        remote: str,
        port: int,
        certificate_pem: str,
        peers_certificate_pem: str,
        token: str,
        actor: Actor,
    ) -> dict[str, Any]:
        """The active's side of a join: link to the caller (one of the pair's nodes), and
        hand it a token, the certificate store and the history."""
        certificate_fingerprint(certificate_pem)
        certificate_fingerprint(peers_certificate_pem, field="peers_certificate")
        if self.listener is None:  # pragma: no cover (the join came through the listener)
            raise NotApplicable("this node's HTTPS listener is off")
        pair = self.config.desired().high_availability
        if pair is None:
            raise NotApplicable(
                "this node's configuration has no high_availability: apply the pair's "
                "document (both nodes) here before joining the second node"
            )
        try:
            remote_ip = str(ipaddress.ip_address(remote))
        except ValueError:
            raise NotApplicable(f"a join must come from a node address, not {remote}") from None
        if remote_ip not in {str(ipaddress.ip_address(node.address)) for node in pair.nodes}:
            raise NotApplicable(
                f"the join comes from {remote}, which is not a node of high_availability "
                f"({', '.join(node.address for node in pair.nodes)})"
            )
        peer_url = base_url(remote_ip, port)
        current = self.store.link()
        if current is not None and current.peer_url != peer_url:
            raise NotApplicable(
                f"this node is already paired with {current.peer_url}: bascule ha leave there"
            )
        self.check_writable()
        if current is not None:  # the same node joins again (its first answer was lost)
            self._revoke(current.minted_token)
        info, minted = self.accounts.create_token("ha pair", Role.admin, by=_pair_actor())
        self.store.save(
            PairLink(
                peer_url=peer_url,
                peer_cert=certificate_pem,
                peer_token=token,
                minted_token=info.id,
                peers_cert=peers_certificate_pem,
                joined_at=datetime.now(UTC),
            )
        )
        revisions = await asyncio.to_thread(self.config.store.since, None, limit=1_000_000)
        self._synced(revisions[-1].number if revisions else None)
        self._record(actor, "ha.join", peer_url, detail="accepted")
        return {
            "token": minted,
            "peers_certificate": self.listener.peers_certificate_pem,
            "certificates": self.certificates.store.snapshot(),
            "http_users": self._users_export(),
            "revisions": [revision_to_wire(revision) for revision in revisions],
        }

    # -- leaving -------------------------------------------------------------------------------

    async def leave(self, actor: Actor) -> SyncStatus:
        """End the link on both nodes (the peer told if it answers); each keeps its
        configuration, and this node takes writes again."""
        link = self.store.link()
        if link is None:
            raise NotApplicable("this node is not joined to a peer")
        try:
            await PeerClient(link).call("POST", "/leave")
        except BasculeError as exc:
            log.warning("the peer was not told of the leave", extra={"error": str(exc)})
        self.forget(actor)
        return self.status()

    def forget(self, actor: Actor) -> None:
        link = self.store.forget()
        if link is not None:
            self._revoke(link.minted_token)
            self._record(actor, "ha.leave", link.peer_url)
        self._health, self._error, self._peer_head = "unknown", "", None

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

    async def names(self) -> tuple[HaNode, HaNode]:
        """(this node, its peer) in the document's pair; ``NotApplicable`` without one."""
        pair = self.config.desired().high_availability
        if pair is None:
            raise NotApplicable("this node's configuration has no high_availability")
        try:
            return find_self(pair, await self.keepalived.addresses())
        except NotANode as exc:
            raise NotApplicable(str(exc)) from None

    async def resolve(self, keep: str, actor: Actor) -> SyncStatus:
        """``bascule ha resolve --keep NODE``: both nodes take ``keep``'s history; the other
        node's revisions after the fork are archived there (see the module's doc)."""
        link = self.store.link()
        if link is None:
            raise NotApplicable("this node is not joined to a peer: nothing to resolve")
        me, other = await self.names()
        if keep not in (me.name, other.name):
            raise InvalidConfiguration(
                [
                    FieldError(
                        path="keep",
                        message=f"must name a node of the pair: {me.name} (this node) or "
                        f"{other.name}, not {keep!r}",
                    )
                ]
            )
        if keep == me.name:
            await self.impose(kept=me.name, by=actor.name)
        else:
            body = {"keep": keep, "by": actor.name}
            await PeerClient(link).call("POST", "/resolve", body=body, within=RESOLVE_TIMEOUT)
            try:
                await self.sync_once()
            except BasculeError as exc:  # the loop tries again
                self._failed(exc)
        resolution = self._resolution
        detail = f"kept {keep}'s history"
        if resolution is not None:
            detail += f"; {resolution.archived_node}'s revisions archived in {resolution.archive}"
        self._record(actor, "ha.resolve", keep, detail=detail)
        return self.status()

    async def impose(self, *, kept: str, by: str, peer_actor: Actor | None = None) -> None:
        """This node's history is kept: the peer replaces its revisions after the fork with
        this node's, and takes this node's certificate store. ``peer_actor``: the peer asked
        (the administrator ran ``ha resolve`` there), recorded here too."""
        link = self.store.link()
        if link is None:
            raise NotApplicable("this node is not joined to a peer: nothing to resolve")
        me, other = await self.names()
        if kept != me.name:
            raise NotApplicable(f"this node is {me.name}, not {kept}")
        async with self._sync:
            peer = PeerClient(link)
            conflict = await self._examine(peer)
            if conflict is None:
                raise NotApplicable("the two histories do not diverge: nothing to resolve")
            store = self.config.store
            batch = await asyncio.to_thread(store.since, conflict.fork or None, limit=BATCH)
            body = {
                "fork": conflict.fork,
                "fork_digest": store.digest(conflict.fork or None),
                "revisions": [revision_to_wire(revision) for revision in batch],
                "certificates": self.certificates.store.snapshot(),
                "http_users": self._users_export(),
                "kept": kept,
                "by": by,
            }
            reply = await peer.call("POST", "/replace", body=body, within=RESOLVE_TIMEOUT)
            after = await self._push(peer, reply.get("head"), None)
            self._resolution = Resolution(
                kept=kept,
                archived_node=other.name,
                archived=tuple(int(n) for n in reply.get("archived") or ()),
                archive=str(reply.get("archive") or ""),
                at=datetime.now(UTC),
                by=by,
            )
            self._synced(after)
        resolution = self._resolution
        log.warning(
            "the pair's histories were resolved: this node's was kept",
            extra={"archived_on": other.name, "archive": resolution.archive},
        )
        if peer_actor is not None:
            self._record(
                peer_actor,
                "ha.resolve",
                kept,
                detail=f"asked by {by} on the peer: its revisions "
                f"{','.join(map(str, resolution.archived))} archived in {resolution.archive}",
            )

    async def accept_resolution(
        self,
        *,
        fork: int,
        fork_digest: str | None,
        revisions: Sequence[Mapping[str, Any]],
        certificates: Sequence[Mapping[str, Any]] | None,
        kept: str,
        by: str,
        http_users: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The peer's history is kept: archive this node's revisions after ``fork``, replace
        them with the peer's, and reconcile."""
        me, _ = await self.names()
        if self.archive_dir is None:
            raise NotApplicable("this node keeps no archive of replaced revisions")
        parsed = [revision_from_wire(item, index) for index, item in enumerate(revisions)]
        store = self.config.store
        async with self._sync:
            if fork and store.digest(fork) != fork_digest:
                raise NotApplicable(
                    f"revision {fork} differs here too: run bascule ha resolve again"
                )
            if certificates is not None:
                await self.certificates.replicate(certificates)
            await self._replicate_users(http_users)
            at = datetime.now(UTC)
            async with self.config.reconciler.lock:  # no commit in between
                discarded = await asyncio.to_thread(store.since, fork or None, limit=1_000_000)
                path = None
                if discarded:
                    path = await asyncio.to_thread(
                        write_archive,
                        self.archive_dir,
                        node=me.name,
                        kept=kept,
                        fork=fork,
                        revisions=discarded,
                        at=at,
                    )
                await asyncio.to_thread(store.replace_after, fork, parsed)
                self.config.reconciler.forget()  # the numbers after the fork hold others
            head = store.head_number()
            numbers = tuple(revision.number for revision in discarded)
            self._resolution = Resolution(
                kept=kept,
                archived_node=me.name,
                archived=numbers,
                archive="" if path is None else str(path),
                at=at,
                by=by,
            )
            self._synced(head)
        log.warning(
            "the pair's histories were resolved: the peer's was kept, this node's archived",
            extra={"kept": kept, "archived": ",".join(map(str, numbers)), "archive": str(path)},
        )
        self._record(
            _pair_actor(),
            "ha.resolve",
            kept,
            detail=f"by {by}: revisions {','.join(map(str, numbers))} archived in {path}",
        )
        self._reconcile_soon()
        return {"head": head, "archived": list(numbers), "archive": str(path or "")}

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
            self.accounts.revoke_token(token_id, by=_pair_actor())
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


def _pair_actor() -> Actor:
    return Actor(name=PAIR_ACTOR, role=Role.admin, via="local", remote="ha pair")
