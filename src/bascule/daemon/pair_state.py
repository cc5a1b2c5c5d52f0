"""State sync of a joined HA pair: HAProxy's stick tables (``peers``) and the kernel's L4 flows
(conntrackd) shared by the two nodes.

Where it sits: beside the configuration sync (daemon/pair.py), over the HAProxy engine. A
client a node keeps on a real server (persistence) must find that server after a failover, so
each node's HAProxy pushes every stick-table update to the other's, over the node addresses:
the ``peers`` section names the local peer after the node (``localpeer lb1``) and the other node
as a remote peer, and listens on ``node address:PEERS_PORT``.

Nobody else on the segment may read or feed the tables (every persisted client's address and
server is in them): the link is TLS both ways, ``verify required`` on the listener and on the
connection to the peer. Each node makes its own peers certificate at first start
(``ensure_peers_certificate``: self-signed, for server and client authentication, its key 0600
in ``<data dir>/ha``); ``bascule ha join`` exchanges the two over the pinned channel; each
HAProxy trusts exactly those two (``peers-ca.pem``: its own, for the local handover of a
reload, and the peer's).

The L4 NAT flows are the kernel's conntrack entries: conntrackd (engines/conntrackd) copies
each node's into the other's kernel table, so an established connection through an L4 NAT
service keeps its translation (its real server) on the node that takes the VIPs over.

Every ``REFRESH_INTERVAL``, ``refresh`` derives both from the document's pair, this node's
addresses and the link: when the peers section changes HAProxy is reloaded with it (the old
worker hands its tables to the new one as on any reload), and conntrackd is started,
restarted on a new configuration, or stopped. A node that is not joined keeps the local
unix-socket peer of a single node and runs no conntrackd. This is not an ``Engine`` of the
reconciler: what it runs depends on the link (the peer's certificate), not on the document
alone.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bascule.daemon.handover import Handover
from bascule.daemon.service import ConfigService
from bascule.engines.conntrackd.render import render as render_conntrackd
from bascule.engines.conntrackd.shell import ConntrackdShell
from bascule.engines.conntrackd.view import build_view as conntrackd_view
from bascule.engines.haproxy.engine import HaproxyEngine
from bascule.engines.haproxy.peers import PeersListener, PeersTls
from bascule.engines.keepalived.engine import KeepalivedEngine
from bascule.engines.keepalived.view import NotANode, find_self
from bascule.errors import BasculeError
from bascule.model.high_availability import HaNode, HighAvailability
from bascule.net.addresses import host_port
from bascule.store.certificates import write_file
from bascule.store.pair import PairLink, PairStore

log = logging.getLogger("bascule.pair")

#: Where each node's HAProxy listens for its peer's stick-table updates (on its node address).
PEERS_PORT = 8444
REFRESH_INTERVAL = 2.0
VALIDITY = datetime.timedelta(days=3650)


def ensure_peers_certificate(directory: Path) -> str:
    """This node's peers certificate (PEM), made at first start: ``peers.pem`` in
    ``directory`` holds it and its key (0600, what HAProxy's ``crt`` reads)."""
    path = directory / "peers.pem"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        text = path.read_text()
        end = text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
        return text[:end] + "\n"
    key = ec.generate_private_key(ec.SECP256R1())
    # a name of its own: OpenSSL finds a trusted certificate by its subject, and two nodes'
    # certificates of one name in one ca-file would hide each other
    common_name = f"bascule ha peers {secrets.token_hex(8)}"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        # its own trust anchor: the peer's HAProxy trusts this very certificate (ca-file)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    write_file(path, (pem + private).encode())
    return pem


class StateSync:
    """Keeps HAProxy's peers section on the pair's (see the module's doc)."""

    def __init__(
        self,
        *,
        store: PairStore,
        config: ConfigService,
        haproxy: HaproxyEngine,
        keepalived: KeepalivedEngine,
        directory: Path,
        own_certificate: str,
        conntrackd: ConntrackdShell | None = None,
        handover: Handover | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.haproxy = haproxy
        self.keepalived = keepalived
        self.directory = directory
        self.own_certificate = own_certificate
        self.conntrackd = conntrackd
        self.handover = handover  # the planned handover's table (daemon/handover.py)
        self.peer_name: str | None = None  # the remote peer HAProxy shares the tables with

    async def _placement(self) -> tuple[HighAvailability, HaNode, HaNode, PairLink] | None:
        """(the pair, this node, its peer, the link) of a joined node, else ``None``."""
        pair = self.config.desired().high_availability
        link = self.store.link()
        if pair is None or link is None or not link.peers_cert:
            return None
        try:
            me, peer = find_self(pair, await self.keepalived.addresses())
        except NotANode:
            return None
        return pair, me, peer, link

    async def listener(self) -> PeersListener | None:
        """The pair's peers listener, or ``None`` (not joined, not a node of the document's
        pair, or a link from before the peers' certificates)."""
        placed = await self._placement()
        if placed is None:
            return None
        _, me, peer, link = placed
        trusted = self.directory / "peers-ca.pem"
        wanted = (self.own_certificate + link.peers_cert).encode()
        if not trusted.exists() or trusted.read_bytes() != wanted:
            write_file(trusted, wanted)
        tls = PeersTls(crt=str(self.directory / "peers.pem"), ca_file=str(trusted))
        return PeersListener(
            address=host_port(me.address, PEERS_PORT),
            tls=tls,
            name=me.name,
            remotes=((peer.name, host_port(peer.address, PEERS_PORT)),),
        )

    async def prepare(self) -> None:
        """At start, before the first reconcile: HAProxy starts (or is adopted) with the
        pair's peers section at once."""
        listener = await self.listener()
        self.haproxy.set_local_peer(listener)
        self.peer_name = None if listener is None else listener.remotes[0][0]

    async def refresh(self) -> None:
        """Put what the pair needs in place: conntrackd, HAProxy's peers section, and the
        handover's table."""
        if self.handover is not None:
            try:
                await self.handover.refresh()
            except (BasculeError, OSError, ValueError) as exc:  # the rest goes on
                log.warning("could not set the handover table", extra={"error": str(exc)})
        await self.refresh_flows()
        await self.refresh_tables()

    async def refresh_flows(self) -> None:
        """conntrackd on the pair's configuration on a joined node; stopped otherwise."""
        if self.conntrackd is None:
            return
        placed = await self._placement()
        if placed is None:
            await self.conntrackd.stop()
            return
        pair, me, peer, _ = placed
        text = render_conntrackd(conntrackd_view(pair, me, peer, self.conntrackd.paths))
        if await self.conntrackd.apply(text):
            log.info("conntrackd shares the L4 flows with the peer", extra={"peer": peer.address})

    def flows(self) -> str:
        """conntrackd's state: ``running``, or ``stopped`` (a node not joined runs none)."""
        if self.conntrackd is None:
            return "none"
        return "running" if self.conntrackd.pid() is not None else "stopped"

    async def refresh_tables(self) -> None:
        """The peers section the pair needs; HAProxy reloaded if it changed."""
        listener = await self.listener()
        reconciler = self.config.reconciler
        async with reconciler.lock:
            if not self.haproxy.set_local_peer(listener):
                return
            self.peer_name = None if listener is None else listener.remotes[0][0]
            log.info(
                "HAProxy's stick tables: "
                + ("shared with the peer" if listener else "kept on this node"),
                extra={"peers": listener.address if listener else "local"},
            )
            # a configuration HAProxy is not known to run: the next pass writes and reloads
            reconciler.adopt(self.haproxy.name, None)
            await reconciler.reconcile_locked()

    async def health(self) -> str:
        """The stick tables' link to the peer, as HAProxy reports it: ``established``,
        ``connecting`` (or its other states), or ``local`` when not shared."""
        if self.peer_name is None:
            return "local"
        status = (await self.haproxy.remote_peers()).get(self.peer_name)
        if status is None:
            return "not configured"
        return "established" if status == "ESTA" else status.lower()

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except (BasculeError, OSError, ValueError) as exc:
                log.warning("could not set HAProxy's peers up", extra={"error": str(exc)})
            await asyncio.sleep(REFRESH_INTERVAL)


def private_directory(data_dir: Path) -> Path:
    """``<data dir>/ha``, 0700: the peers certificate's key and the trusted certificates."""
    directory = data_dir / "ha"
    directory.mkdir(mode=0o700, exist_ok=True)
    directory.chmod(0o700)
    return directory
