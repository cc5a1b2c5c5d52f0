"""Real servers: the back ends a virtual service spreads its clients over."""

from __future__ import annotations

import enum
import sys

from pydantic import BaseModel, ConfigDict

from bascule.model.types import IPAddress, Port, Weight
from bascule.model.types import bounded as _bounded


class RealServerState(enum.StrEnum):
    """Administrative state. ``drain``: existing connections finish, new ones go elsewhere."""

    enabled = "enabled"
    disabled = "disabled"
    drain = "drain"


class Forwarding(enum.StrEnum):
    nat = "nat"
    dsr = "dsr"


class RealServer(BaseModel):
    """One back end, identified inside its virtual service by ``address:port``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: IPAddress
    port: Port
    weight: Weight = 1000
    state: RealServerState = RealServerState.enabled
    max_connections: _bounded(0, 1000000) = 0  # type: ignore[valid-type]
    critical: bool = False
    forwarding: Forwarding | None = None

    @property
    def key(self) -> str:
        """``address:port`` (IPv6 in brackets), the real server's identity in its service.

        Interned: the status rows, the engine's observations and the statistics keep it for
        every real server, one string for all of them instead of one each (issue 15)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return sys.intern(f"{host}:{self.port}")
