"""High availability: the ``high_availability`` section, an active/standby pair (pure).

Two load balancers share the VIPs of every virtual service through VRRP (keepalived, see
``engines/keepalived``): the node holding them (the active, VRRP's MASTER) serves, the other
(the standby) takes them over when the active fails. Each node finds itself in ``nodes`` by its
own addresses; VRRP's adverts go by unicast between the two node addresses on ``interface``.

``advert_interval`` is in seconds, VRRPv3's centiseconds (0.01..40.95, RFC 5798 5.2.7): the
standby declares the active dead after three silent intervals plus a skew (RFC 5798 6.1), so
0.2 s gives a failover of about 0.7 s. ``preempt: false`` (the default) keeps a returning
higher-priority node from taking the VIPs back by itself: a failover costs a gap, and one is
enough.
"""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, model_validator

from bascule.model.types import IPAddress, Name
from bascule.model.types import bounded as _bounded

#: The VRRPv3 advert interval's range in seconds (12 bits of centiseconds, RFC 5798 5.2.7).
MIN_ADVERT_INTERVAL = Decimal("0.01")
MAX_ADVERT_INTERVAL = Decimal("40.95")
_INTERFACE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")


def _interface(value: str) -> str:
    if not _INTERFACE.fullmatch(value):
        raise ValueError("must be a network interface name such as eth0")
    return value


def _seconds(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a number of seconds such as 0.2")
    return value


def _centiseconds(value: float) -> float:
    try:
        exact = Decimal(str(value))
    except ArithmeticError:
        raise ValueError("must be a number of seconds such as 0.2") from None
    if not exact.is_finite() or not MIN_ADVERT_INTERVAL <= exact <= MAX_ADVERT_INTERVAL:
        raise ValueError(f"must be between {MIN_ADVERT_INTERVAL} and {MAX_ADVERT_INTERVAL} seconds")
    if exact != exact.quantize(Decimal("0.01")):
        raise ValueError("must be whole centiseconds (VRRPv3 counts in 0.01 s), such as 0.2")
    return value


class HaNode(BaseModel):
    """One load balancer of the pair."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    address: IPAddress
    # VRRP's priority: 1..254 (255 is the address owner's, 0 means "leaving")
    priority: _bounded(1, 254) = 100  # type: ignore[valid-type]


class HighAvailability(BaseModel):
    """The pair: its two nodes, where VRRP runs, and how fast it fails over."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nodes: list[HaNode]
    interface: Annotated[str, AfterValidator(_interface)]
    virtual_router_id: _bounded(1, 255) = 51  # type: ignore[valid-type]
    advert_interval: Annotated[float, BeforeValidator(_seconds), AfterValidator(_centiseconds)] = (
        1.0
    )
    preempt: bool = False

    @model_validator(mode="after")
    def _a_pair(self) -> Self:
        if len(self.nodes) != 2:
            raise ValueError("nodes: exactly two nodes make a pair")
        first, second = self.nodes
        if first.name == second.name:
            raise ValueError(f"nodes[1]: {second.name!r} is already the name of nodes[0]")
        if first.address == second.address:
            raise ValueError(f"nodes[1]: {second.address} is already the address of nodes[0]")
        if (
            ipaddress.ip_address(first.address).version
            != ipaddress.ip_address(second.address).version
        ):
            raise ValueError("nodes[1]: both nodes' addresses must be IPv4, or both IPv6")
        for index, node in enumerate(self.nodes):
            ip = ipaddress.ip_address(node.address)
            if ip.is_unspecified or ip.is_multicast or ip.is_loopback:
                raise ValueError(
                    f"nodes[{index}]: {node.address} cannot be a node's address: give its own "
                    "unicast address on the interface (not loopback, multicast or unspecified)"
                )
        return self

    def node(self, name: str) -> HaNode | None:
        return next((node for node in self.nodes if node.name == name), None)

    def find_self(self, addresses: frozenset[str]) -> tuple[HaNode, HaNode] | None:
        """(this node, its peer) for a machine holding ``addresses``; None if neither node's
        address is there (or both are: a machine cannot be both nodes)."""
        mine = [node for node in self.nodes if node.address in addresses]
        if len(mine) != 1:
            return None
        peer = next(node for node in self.nodes if node is not mine[0])
        return mine[0], peer
