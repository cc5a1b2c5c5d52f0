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

``PairService`` is this node's side of it, made of three parts: ``pair_sync.PairSync`` (who
takes writes, the push and the follow, the peer's calls, the status),
``pair_membership.PairMembership`` (joining and leaving) and
``pair_resolution.PairResolution`` (resolving). The values its doors use are exported here.
"""

from __future__ import annotations

from bascule.daemon.pair_membership import PairMembership
from bascule.daemon.pair_resolution import PairResolution
from bascule.daemon.pair_sync import PAIR_ACTOR, Listener, SyncStatus

__all__ = ["PAIR_ACTOR", "Listener", "PairService", "SyncStatus"]


class PairService(PairMembership, PairResolution):
    """This node's side of the configuration sync (see the module's doc)."""
