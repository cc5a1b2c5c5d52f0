"""Model -> keepalived view: every decision about the pair's VRRP configuration (pure).

Where this sits in the flow of a change: the keepalived engine hands ``build_view`` its share
of the document (``share``: the ``high_availability`` section and each service's VIP, nothing
that only the data planes read), the addresses this machine holds (to find which node it is)
and the daemon's paths and tracked processes (``KeepalivedGlobals``); ``render`` prints it.
Nothing here does I/O.

The configuration (keepalived.conf(5) of keepalived 2.2):

- one ``vrrp_instance`` in ``state BACKUP`` on both nodes (``nopreempt`` works only so), VRRPv3
  (``advert_int`` below a second needs it), adverts by unicast from this node's address to its
  peer's (``unicast_src_ip``, ``unicast_peer``, ``check_unicast_src``: adverts from anyone
  else are dropped);
- every VIP of every service as a host address on the service's interface, or the pair's;
  VIPs of the other family than the node addresses go in ``virtual_ipaddress_excluded``
  (an instance advertises one family; keepalived still moves the others with it);
- two ``track_file``s, read by keepalived as soon as they are written (inotify), where a
  non-zero value puts the instance in FAULT: it sends priority 0 and the peer takes over
  after its skew time, well before three advert intervals. ``bascule_alive`` is written by
  the sentinel (sentinel.py) when the daemon or HAProxy ends; ``bascule_standby`` by
  ``bascule ha standby``;
- ``notify``: a script that writes the instance's state to a file the engine reads.

keepalived's file has quoted strings but no escapes and substitutes ``$NAME``: every string
comes from the validated model or the daemon's paths, and ``_word`` refuses anything outside
a plain set of characters.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from bascule.model import Configuration, VirtualService
from bascule.model.document import constructed
from bascule.model.high_availability import HaNode, HighAvailability

#: The one virtual router's instance name (the pair runs one).
INSTANCE = "bascule"
#: keepalived words and quoted strings: no quote, no space, no ``$`` (its substitutions),
#: no comment character, nothing that could end a line.
_SAFE = re.compile(r"^[A-Za-z0-9_./,:=@+-]{1,4096}$")


@dataclass(frozen=True, kw_only=True)
class KeepalivedGlobals:
    """The daemon's side: the files keepalived reads and runs."""

    notify_script: str
    alive_file: str
    standby_file: str


@dataclass(frozen=True, kw_only=True)
class VipView:
    address: str  # with its prefix: 198.18.0.100/32
    interface: str


@dataclass(frozen=True, kw_only=True)
class InstanceView:
    name: str
    interface: str
    virtual_router_id: int
    priority: int
    advert_int: str
    preempt: bool
    source: str
    peer: str
    vips: tuple[VipView, ...]
    excluded: tuple[VipView, ...]


@dataclass(frozen=True, kw_only=True)
class KeepalivedView:
    router_id: str
    alive_file: str
    standby_file: str
    notify_script: str
    instance: InstanceView


class NotANode(ValueError):
    """The machine holds neither node's address (or both): it cannot tell which node it is."""


def share(config: Configuration) -> Configuration:
    """What keepalived runs of a document: the pair and each service's VIP and interface (a
    change of ports, real servers, checks or TLS is not keepalived's and does not reload it).
    A single node's share is empty: keepalived does not run."""
    if config.high_availability is None:
        return constructed(Configuration, virtual_services=[])
    return constructed(
        Configuration,
        virtual_services=[
            constructed(
                VirtualService, name=vs.name, address=vs.address, port=1, interface=vs.interface
            )
            for vs in config.virtual_services
        ],
        high_availability=config.high_availability,
    )


def runs_keepalived(config: Configuration) -> bool:
    """Whether a document needs keepalived: a pair with at least one VIP to move
    (keepalived refuses a virtual router without one)."""
    return config.high_availability is not None and any(
        not ipaddress.ip_address(vs.address).is_unspecified for vs in config.virtual_services
    )


def find_self(pair: HighAvailability, addresses: frozenset[str]) -> tuple[HaNode, HaNode]:
    """(this node, its peer), or NotANode saying why neither or both are this machine."""
    found = pair.find_self(addresses)
    if found is None:
        names = " and ".join(f"{node.name} ({node.address})" for node in pair.nodes)
        mine = [node.name for node in pair.nodes if node.address in addresses]
        why = "holds both" if mine else "holds neither node's address"
        raise NotANode(f"high_availability.nodes: this machine {why} of {names}")
    return found


def build_view(
    config: Configuration, globals_: KeepalivedGlobals, addresses: frozenset[str]
) -> KeepalivedView:
    """keepalived's configuration for this machine (``addresses``: the ones it holds)."""
    pair = config.high_availability
    if pair is None:
        raise ValueError("keepalived runs only for a pair (high_availability)")
    me, peer = find_self(pair, addresses)
    family = ipaddress.ip_address(me.address).version
    vips: dict[str, VipView] = {}
    for vs in config.virtual_services:
        ip = ipaddress.ip_address(vs.address)
        if ip.is_unspecified or vs.address in vips:
            continue
        vips[vs.address] = VipView(
            address=f"{ip}/{ip.max_prefixlen}", interface=_word(vs.interface or pair.interface)
        )
    ordered = sorted(vips.items(), key=lambda item: ipaddress.ip_address(item[0]).packed)
    return KeepalivedView(
        router_id=_word(me.name),
        alive_file=_word(globals_.alive_file),
        standby_file=_word(globals_.standby_file),
        notify_script=_word(globals_.notify_script),
        instance=InstanceView(
            name=INSTANCE,
            interface=_word(pair.interface),
            virtual_router_id=pair.virtual_router_id,
            priority=me.priority,
            advert_int=advert_int(pair.advert_interval),
            preempt=pair.preempt,
            source=me.address,
            peer=peer.address,
            vips=tuple(v for a, v in ordered if ipaddress.ip_address(a).version == family),
            excluded=tuple(v for a, v in ordered if ipaddress.ip_address(a).version != family),
        ),
    )


def advert_int(seconds: float) -> str:
    """``advert_int``'s value: seconds with at most two decimals (0.2, 1, 0.05)."""
    return f"{seconds:.2f}".rstrip("0").rstrip(".")


def _word(text: str) -> str:
    """A value that keepalived reads as one word or quoted string, and nothing else."""
    if not _SAFE.fullmatch(text):
        raise ValueError(f"{text!r} cannot be written to a keepalived configuration")
    return text
