"""The networks the load balancer is directly connected to, for the status' route-back check.

``route_back_warning`` (daemon/status.py, pure) warns about a transparent service's real
server on one of these networks; this shell reads them from the namespace the daemon runs in
(``ip -j address show``, through ``net.shell.Ip``), at most once per ``ttl`` seconds, so a
status polled every 2 s by each open page costs one ``ip`` run in a while, and none when no
service is transparent (the caller asks only then).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bascule.daemon.status import ConnectedNetworks
from bascule.errors import EngineError
from bascule.net.shell import Ip

Clock = Callable[[], float]


class ConnectedSubnets:
    """The networks of this machine's addresses, read through ``ip`` and kept ``ttl`` s."""

    def __init__(self, ip: Ip | None = None, *, ttl: float = 30.0, clock: Clock = time.monotonic):
        self._ip = ip or Ip()
        self._ttl = ttl
        self._clock = clock
        self._networks: ConnectedNetworks = frozenset()
        self._read_at: float | None = None

    async def networks(self) -> ConnectedNetworks:
        """The networks now (as read at most ``ttl`` s ago); none when ``ip`` fails (the
        check is advice: a status is never refused for it)."""
        now = self._clock()
        if self._read_at is not None and now - self._read_at < self._ttl:
            return self._networks
        try:
            addresses = await self._ip.addresses()
        except EngineError:
            addresses = None
        self._networks = frozenset(
            () if addresses is None else (a.network.network for a in addresses.addresses)
        )
        self._read_at = now
        return self._networks
