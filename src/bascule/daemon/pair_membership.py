"""Joining and leaving an HA pair: the pinned channel and the tokens set up, and undone.

Where it sits: one part of ``PairService`` (``pair.py`` draws the whole protocol), under the
doors (``bascule ha join``, ``bascule ha leave``, the ``/ha/peer/join`` and ``/leave`` routes).
``join``, on the second node, pins the active's listener certificate (``--fingerprint`` or
``--ca-cert``), mints a token for the peer and receives one, the whole history, the
certificate store and the HTTP user store (``accept_join`` is the active's side); from then
on ``pair_sync.py`` keeps the two in sync. ``leave`` ends the link on both nodes; each keeps
its configuration.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from datetime import UTC, datetime
from typing import Any

from bascule.daemon.pair_sync import PairSync, SyncStatus, log, pair_actor
from bascule.daemon.peer import (
    PeerClient,
    base_url,
    certificate_fingerprint,
    fetch_certificate,
    normalize_fingerprint,
    parse_peer_url,
    revision_from_wire,
    revision_to_wire,
)
from bascule.errors import BasculeError, FieldError, InvalidConfiguration, NotApplicable
from bascule.model.access import Actor, Role
from bascule.store.pair import PairLink


class PairMembership(PairSync):
    """Joining the pair (``bascule ha join`` here, the active's side of it) and leaving it."""

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
        info, minted = self.accounts.create_token("ha pair", Role.admin, by=pair_actor())
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
            self.accounts.revoke_token(info.id, by=pair_actor())
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
        info, minted = self.accounts.create_token("ha pair", Role.admin, by=pair_actor())
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
