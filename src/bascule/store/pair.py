"""The HA pair's link: which peer this node follows or feeds, and how the two know each other.

Written by ``bascule ha join`` (daemon/pair.py) on both nodes, read by every call between them,
deleted by ``bascule ha leave``. One row (a node has one peer):

- ``peer_url``: the peer's HTTPS listener, ``https://ADDRESS:PORT``;
- ``peer_cert``: the peer's listener certificate (PEM), pinned: the only one a call to the peer
  accepts;
- ``peer_token``: the API token this node presents to the peer (minted by the peer for this
  node, a secret like the certificate keys beside it in this 0600 file);
- ``minted_token``: the id of the token this node minted for the peer, revoked on leave;
- ``peers_cert``: the certificate of the peer's HAProxy peers listener (PEM), which this node's
  HAProxy trusts to exchange the stick tables (daemon/pair_state.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bascule.store.database import Database, transaction


@dataclass(frozen=True, kw_only=True)
class PairLink:
    """This node's link to its peer (see the module's doc)."""

    peer_url: str
    peer_cert: str
    peer_token: str
    minted_token: str
    peers_cert: str
    joined_at: datetime


class PairStore(Database):
    """The ``ha_pair`` table of ``bascule.db``."""

    def link(self) -> PairLink | None:
        with self._use("read the HA pair's link") as db:
            row = db.execute(
                "SELECT peer_url, peer_cert, peer_token, minted_token, peers_cert, joined_at"
                " FROM ha_pair WHERE singleton = 1"
            ).fetchone()
        if row is None:
            return None
        url, cert, token, minted, peers_cert, joined_at = row
        return PairLink(
            peer_url=url,
            peer_cert=cert,
            peer_token=token,
            minted_token=minted,
            peers_cert=peers_cert,
            joined_at=datetime.fromisoformat(joined_at),
        )

    def save(self, link: PairLink) -> None:
        with self._use("save the HA pair's link") as db, transaction(db):
            db.execute(
                "INSERT OR REPLACE INTO ha_pair (singleton, peer_url, peer_cert, peer_token,"
                " minted_token, peers_cert, joined_at) VALUES (1, ?, ?, ?, ?, ?, ?)",
                (
                    link.peer_url,
                    link.peer_cert,
                    link.peer_token,
                    link.minted_token,
                    link.peers_cert,
                    link.joined_at.astimezone(UTC).isoformat(),
                ),
            )

    def forget(self) -> PairLink | None:
        """Delete the link; the one there was."""
        link = self.link()
        with self._use("forget the HA pair's link") as db, transaction(db):
            db.execute("DELETE FROM ha_pair")
        return link
