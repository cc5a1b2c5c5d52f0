"""The HA pair -> conntrackd's configuration, as one frozen value (pure).

Where this sits: the pair's state sync (daemon/pair_state.py) knows which node this machine
is and hands ``build_view`` the document's pair, this node and its peer, and the paths;
``render`` (a dumb template) prints the view, and the shell installs and runs it.

What conntrackd does here (conntrackd.conf(5), "Sync"): **FTFW** over UDP unicast between the
two node addresses on the pair's interface, with **DisableExternalCache On**: the flows each
node hears of from its peer go straight into its kernel's conntrack table, so the standby's
kernel already holds every established L4 NAT flow of the active, its translation included,
when it takes the VIPs; nothing has to be committed at the takeover. The nodes' own traffic
(the API between them, VRRP, the stick tables, this sync) is not synchronised (``Address
Ignore``).

Injection safety: conntrackd's configuration has no quoting, so every value is one the view
has checked: IP addresses (re-spelt by ``ipaddress``), the interface (the model's alphabet),
the port (an integer) and absolute paths of a plain alphabet; anything else raises.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from bascule.model.high_availability import HaNode, HighAvailability

#: conntrackd's UDP port for the sync messages (conntrackd.conf(5)'s example).
SYNC_PORT = 3780
_PATH = re.compile(r"^/[A-Za-z0-9_./@+-]{1,200}$")
_INTERFACE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")


@dataclass(frozen=True, kw_only=True)
class ConntrackdPaths:
    """Where conntrackd keeps its lock, control socket and log (absolute, plain names)."""

    lock_file: str
    socket: str
    log_file: str


@dataclass(frozen=True, kw_only=True)
class ConntrackdView:
    """Every value of conntrackd.conf, decided."""

    family: str  # "IPv4" or "IPv6": the keyword prefix of the addresses
    local_address: str
    peer_address: str
    interface: str
    port: int
    ignored: tuple[str, ...]  # loopback and both node addresses
    paths: ConntrackdPaths


def build_view(
    pair: HighAvailability, me: HaNode, peer: HaNode, paths: ConntrackdPaths
) -> ConntrackdView:
    """conntrackd's view for ``me`` syncing with ``peer`` (both nodes of ``pair``)."""
    local = ipaddress.ip_address(me.address)
    remote = ipaddress.ip_address(peer.address)
    if local.version != remote.version:  # pragma: no cover (the model refuses it)
        raise ValueError("both node addresses must be of one family")
    if not _INTERFACE.fullmatch(pair.interface):  # pragma: no cover (the model refuses it)
        raise ValueError(f"not an interface name: {pair.interface!r}")
    for path in (paths.lock_file, paths.socket, paths.log_file):
        if not _PATH.fullmatch(path):
            raise ValueError(f"conntrackd's files need plain absolute paths, not {path!r}")
    loopback = "127.0.0.1" if local.version == 4 else "::1"
    return ConntrackdView(
        family=f"IPv{local.version}",
        local_address=str(local),
        peer_address=str(remote),
        interface=pair.interface,
        port=SYNC_PORT,
        ignored=(loopback, str(local), str(remote)),
        paths=paths,
    )
