"""Resolving a diverged HA pair history: one node's kept, the other's archived and replaced.

Where it sits: one part of ``PairService`` (``pair.py`` draws the whole protocol), under the
doors (``bascule ha resolve --keep NODE``, the ``/ha/peer/resolve`` and ``/replace`` routes).
After the sync found a divergence (``pair_sync.py``, daemon/pair_conflict.py), ``resolve``
on either node has the kept node ``impose`` its revisions after the fork and its certificate
store; the other (``accept_resolution``) writes its own revisions after the fork to an archive
file, replaces them (``RevisionStore.replace_after``) and reconciles.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bascule.daemon.pair_conflict import Resolution, write_archive
from bascule.daemon.pair_sync import BATCH, PairSync, SyncStatus, log, pair_actor
from bascule.daemon.peer import PeerClient, revision_from_wire, revision_to_wire
from bascule.engines.keepalived.view import NotANode, find_self
from bascule.errors import BasculeError, FieldError, InvalidConfiguration, NotApplicable
from bascule.model.access import Actor
from bascule.model.high_availability import HaNode

#: How long ``ha resolve`` waits for the peer (which may call this node back meanwhile).
RESOLVE_TIMEOUT = 60.0


class PairResolution(PairSync):
    """Resolving a diverged history: ``bascule ha resolve --keep NODE`` on either node, the
    kept node imposing its history, the other archiving and replacing its own."""

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
            pair_actor(),
            "ha.resolve",
            kept,
            detail=f"by {by}: revisions {','.join(map(str, numbers))} archived in {path}",
        )
        self._reconcile_soon()
        return {"head": head, "archived": list(numbers), "archive": str(path or "")}
