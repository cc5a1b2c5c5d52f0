"""Configuration sync of an HA pair: joining, the active feeding the standby, writes refused.

Where it sits: beside the service layer, under the doors (``bascule ha join``, the API's
``/ha/peer/...`` routes the two daemons call on each other). ``bascule ha join`` on the second
node pins the first node's listener certificate (checked against ``--fingerprint`` or signed by
``--ca-cert``), mints an API token for the peer and sends it with its own certificate, and
receives a token minted for it, the whole revision history and the certificate store (keys
included). From then on:

- **Who calls whom.** Every call between the two goes over HTTPS to the peer's listener, whose
  certificate must be the pinned one (it is the only trust anchor of the call), with the token
  the peer minted for this node (``Authorization: Bearer``; owned by ``PAIR_ACTOR``, a name no
  user can have). Both directions, every call: never anonymous.
- **Push, by the active.** Revisions are made on the node that holds the VIPs (VRRP's
  MASTER); a write anywhere else is refused with ``NotTheActive`` naming the peer. After each
  commit the active sends the standby what it lacks before the write returns
  (``after_commit``, bounded by ``CALL_TIMEOUT``); a peer that is down is caught up by the
  loop (``run``) every ``SYNC_INTERVAL`` while ``ha status`` shows how far behind it is. The
  standby stores the revisions under their own numbers (``RevisionStore.replicate``) and
  reconciles on them. Push rather than pull: the write returns once the revision is on both
  nodes, and the standby needs no timer to learn of a change.
- **Never a silent overwrite.** Each side compares digests of the revisions both hold: if the
  two committed different revisions under one number (a partition with writes on both sides),
  nothing is sent and ``ha status`` reports the divergence. A node behind an active it follows
  gets the missing revisions; an active behind a standby (it came back alone) fetches them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from bascule.daemon.accounts import AccountService
from bascule.daemon.audit import AuditService
from bascule.daemon.certificates import CertificateService
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
from bascule.errors import (
    BasculeError,
    DivergedHistory,
    FieldError,
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
    ) -> None:
        self.store = store
        self.config = config
        self.certificates = certificates
        self.accounts = accounts
        self.keepalived = keepalived
        self.listener = listener
        self.audit = audit
        self._sync = asyncio.Lock()
        self._last_sync_at: datetime | None = None
        self._peer_head: int | None = None
        self._health = "unknown"
        self._error = ""
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
            if link is None or not self.takes_writes():
                if link is not None:
                    self._health = "following"
                return
            store = self.config.store
            peer = PeerClient(link)
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
            after = theirs
            while True:
                batch = await asyncio.to_thread(store.since, after, limit=BATCH)
                if not batch and certificates is None:
                    break
                body = {
                    "revisions": [revision_to_wire(r) for r in batch],
                    "certificates": certificates,
                }
                reply = await peer.call("POST", "/revisions", body=body)
                certificates = None
                after = reply.get("head")
                if not batch:
                    break
            self._synced(after if isinstance(after, int) else theirs)

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
        }

    def revisions_after(self, after: int) -> list[dict[str, Any]]:
        return [revision_to_wire(r) for r in self.config.store.since(after or None, limit=BATCH)]

    async def receive(
        self,
        revisions: Sequence[Mapping[str, Any]],
        certificates: Sequence[Mapping[str, Any]] | None,
    ) -> dict[str, Any]:
        """The active's revisions (and certificates, first: the documents name them);
        reconciled in the background, so the active's write returns once they are stored."""
        parsed = [revision_from_wire(item, index) for index, item in enumerate(revisions)]
        if certificates is not None:
            await self.certificates.replicate(certificates)
        head = await asyncio.to_thread(self.config.store.replicate, parsed)
        self._synced(head)
        if parsed or certificates is not None:
            task = asyncio.create_task(self.config.reconcile(), name="reconcile on sync")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return {"head": head}

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
        )

    def _synced(self, peer_head: int | None) -> None:
        self._peer_head = peer_head
        self._last_sync_at = datetime.now(UTC)
        self._health, self._error = "in_sync", ""

    def _failed(self, exc: BaseException) -> None:
        message = str(exc) or f"no answer within {CALL_TIMEOUT:g} s"
        health = "diverged" if isinstance(exc, DivergedHistory) else "unreachable"
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
