"""Where HAProxy's local peer listens, and how it is reached (pure; used by view.py).

Persistence keeps stick tables (client -> real server). On a reload the old worker connects to
the local peer (configuration.txt 3.5 "Peers": "during a soft restart, local peer <ip>:<port>
is used by the old instance to connect the new one and initiate a complete replication") and
hands the new one its tables, so persisted clients keep their servers. Whoever can connect to
that listener can also ask for the tables (every client address and its server), so it is
bound where only HAProxy and Bascule can reach it:

- on the appliance alone (the default): a **unix socket** in HAProxy's run directory, mode 0600
  in a 0700 directory, both root's: no other local user can connect (a TCP port on 127.0.0.1
  answered every local uid). HAProxy 2.6 accepts ``bind unix@<path>`` in a peers section and
  hands the listener to the new worker on a reload like any other (checked with 2.6.12: the
  tables survive the reload);
- across the network (the HA pair, issue 16): ``ip:port`` **with TLS**, each end presenting a
  certificate signed by the pair's CA and verifying the other's (``verify required``), on the
  listener and on every connection to a peer (``default-server``), the local handover
  included. A listener on the network without TLS is refused. The daemon of a joined pair
  (daemon/pair_state.py) names the local peer after its node and adds the other node as a
  remote peer (``remotes``), so the two HAProxy processes push each stick table's updates to
  each other (3.5: a peer "server" with an address is a remote peer; its name must be the
  ``localpeer`` of the HAProxy it reaches).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from bascule.engines.haproxy.quoting import quote, token
from bascule.engines.haproxy.view import PEERS


@dataclass(frozen=True, kw_only=True)
class PeersTls:
    """TLS of a peers listener on the network: ``crt``, this node's certificate and key in
    one PEM file (5.1 "crt"), and ``ca_file``, the CA every peer's certificate is signed by."""

    crt: str
    ca_file: str

    @property
    def options(self) -> str:
        # 5.1 "ssl", "crt", "ca-file", "verify required": both ends prove who they are
        return f"ssl crt {quote(self.crt)} ca-file {quote(self.ca_file)} verify required"


@dataclass(frozen=True, kw_only=True)
class PeersListener:
    """The local peer's listener: an absolute unix socket path, or ``ip:port`` with ``tls``."""

    address: str
    tls: PeersTls | None = None
    # this process's peer name (3.1 "localpeer"); the HA pair's node name on a joined node
    name: str = PEERS
    # the other HAProxy processes that share the tables: (peer name, ADDRESS:PORT)
    remotes: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        token(self.name)
        if self.unix:
            if self.remotes:
                raise ValueError("remote peers need a peers listener on the network, with TLS")
            return
        for address in (self.address, *(address for _, address in self.remotes)):
            _check_address(address)
        for name, _ in self.remotes:
            if token(name) == self.name:
                raise ValueError(f"a remote peer cannot have the local peer's name {name!r}")
        if self.tls is None:
            raise ValueError(
                "a peers listener on the network hands out every persisted client: it needs "
                "TLS with verified certificates (peers_tls_cert and peers_tls_ca)"
            )

    @property
    def unix(self) -> bool:
        return self.address.startswith("/")

    def lines(self) -> tuple[str, ...]:
        """The ``peers`` section's lines: the listener, then this process's own peer."""
        if self.unix:
            # 5.1 "mode" on a unix socket's bind: the socket file itself is 0600
            return (f"bind {quote('unix@' + self.address)} mode 600", f"server {token(self.name)}")
        if self.tls is None:  # pragma: no cover (refused at construction)
            raise ValueError("a peers listener on the network needs TLS")
        return (
            f"bind {quote(self.address)} {self.tls.options}",
            f"default-server {self.tls.options}",
            f"server {token(self.name)}",
            *(f"server {token(name)} {quote(address)}" for name, address in self.remotes),
        )


def _check_address(address: str) -> None:
    host, _, port = address.rpartition(":")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(
            f"a peers listener is a unix socket path or ADDRESS:PORT, not {address!r}"
        ) from None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"a peers listener needs a port 1-65535: {address!r}")
