"""The planned handover's drain on this node: the table, the VIPs on lo, the closing.

Where it sits: beside ``StateSync`` (daemon/pair_state.py, which refreshes it), under
``HaService.standby`` (daemon/ha.py), which drains; the table itself is rendered by
engines/keepalived/handover.py, whose doc says how a handover keeps the old active's
connections. This is the I/O around it:

- ``refresh``: the table on a node of a pair (replaced when the pair changes, removed on a
  single node), and a VIP left on ``lo`` by a drain that did not end (a daemon restarted
  meanwhile) taken off;
- ``begin`` (the old active, before it lets go of the VIPs): ``arp_ignore`` and
  ``arp_announce``, each drained service's VIP on ``lo`` and in the ``draining`` set; the
  peer is then told (``POST /ha/peer/drain``) and runs ``forward``;
- ``forward`` (the new active): the services in the ``forwarded`` set, for their drain time;
- ``finish_later``: at each service's drain time, its remaining connections are closed
  (``ss -K``: the kernel resets them, HAProxy then closes the real server's side), unless
  this node is the active again; then the VIP leaves ``lo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bascule.daemon.service import ConfigService
from bascule.engines.keepalived.engine import KeepalivedEngine
from bascule.engines.keepalived.handover import (
    TABLE,
    DrainedService,
    HandoverView,
    add_elements,
    element,
    handover_view,
    render,
)
from bascule.engines.keepalived.view import NotANode, find_self
from bascule.errors import EngineError
from bascule.net.shell import Ip, Runner, subprocess_runner

log = logging.getLogger("bascule.pair")

#: The old active keeps its VIP on lo and its set elements this much past the drain time:
#: the closing runs first.
GRACE = 2
#: The old active must not answer ARP for a VIP it keeps on lo (ip-sysctl.rst, arp_ignore 1:
#: only for addresses of the interface asked on; arp_announce 2: the best source address).
ARP_SYSCTLS = {
    Path("/proc/sys/net/ipv4/conf/all/arp_ignore"): "1",
    Path("/proc/sys/net/ipv4/conf/all/arp_announce"): "2",
}


class Handover:
    """This node's part in planned handovers (see the module's doc)."""

    def __init__(
        self,
        *,
        config: ConfigService,
        keepalived: KeepalivedEngine,
        runner: Runner | None = None,
        sysctls: Mapping[Path, str] = ARP_SYSCTLS,
    ) -> None:
        self.config = config
        self.keepalived = keepalived
        self.sysctls = sysctls
        self._run = runner or subprocess_runner()
        self.ip = Ip(self._run)
        self._applied: HandoverView | None = None
        self._on_lo: dict[str, float] = {}  # VIP -> when its drain ends (monotonic)
        self._tasks: set[asyncio.Task[Any]] = set()

    async def view(self) -> HandoverView | None:
        config = self.config.desired()
        pair = config.high_availability
        if pair is None:
            return None
        try:
            me, peer = find_self(pair, await self.keepalived.addresses())
        except NotANode:
            return None
        return handover_view(config, me, peer)

    async def refresh(self) -> None:
        """The table this node's pair needs (none on a single node); stale VIPs off lo."""
        view, before = await self.view(), self._applied
        # the table depends on the pair, not on the services: a change of services (on the
        # new active, during a drain) must not empty its sets
        if _table_of(view) != _table_of(before):
            if view is not None:
                await self._nft(render(view))  # its sets start empty
                self._on_lo.clear()
            elif before is not None:
                await self._nft(f"delete table {before.family} {TABLE}\n", check=False)
        self._applied = view
        if view is not None:  # a single node never drains
            await self._clear_lo()

    async def _clear_lo(self) -> None:
        now = time.monotonic()
        vips = {
            str(ipaddress.ip_address(vs.address)) for vs in self.config.desired().virtual_services
        }
        for address in (await self.ip.addresses("lo")).addresses:
            vip = str(address.network.ip)
            if vip in vips and self._on_lo.get(vip, 0.0) <= now:
                await self.ip.delete_host_address(vip, "lo")
                self._on_lo.pop(vip, None)

    async def begin(self) -> tuple[DrainedService, ...]:
        """On the active about to hand over: keep the drained services' connections here."""
        await self.refresh()
        view = self._applied
        if view is None or not view.services:
            return ()
        for path, value in self.sysctls.items():
            await asyncio.to_thread(path.write_text, value)
        held = {str(a.network.ip) for a in (await self.ip.addresses("lo")).addresses}
        now = time.monotonic()
        for service in view.services:
            if service.address not in held:
                await self.ip.add_host_address(service.address, "lo")
                held.add(service.address)
            ends = now + service.drain_time + GRACE
            self._on_lo[service.address] = max(self._on_lo.get(service.address, 0.0), ends)
        await self._fill(view, "draining", view.services, grace=GRACE)
        return view.services

    async def forward(self, services: Sequence[DrainedService]) -> None:
        """On the new active: hand the peer's connections of ``services`` to it."""
        await self.refresh()
        if self._applied is None:
            raise EngineError("this node is not in a pair: nothing to hand over")
        await self._fill(self._applied, "forwarded", services, grace=0)

    def finish_later(self, services: Sequence[DrainedService]) -> None:
        """Close what is left of each service at its drain time (see the module's doc)."""
        if services:
            task = asyncio.create_task(self._finish(tuple(services)), name="handover drain")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _finish(self, services: tuple[DrainedService, ...]) -> None:
        started = time.monotonic()
        for service in sorted(services, key=lambda s: s.drain_time):
            await asyncio.sleep(max(0.0, started + service.drain_time - time.monotonic()))
            try:
                if self.keepalived.vrrp().state == "MASTER":
                    continue  # the active again: the connections are its own
                await self._close(service)
            except (EngineError, OSError) as exc:
                log.warning("could not end a drain", extra={"error": str(exc)})
            log.info(
                "handover drain time over: the old connections closed",
                extra={"vs": service.name, "drain_time": service.drain_time},
            )
        for service in services:
            self._on_lo[service.address] = 0.0
        with contextlib.suppress(EngineError, OSError):
            await self._clear_lo()

    async def _close(self, service: DrainedService) -> None:
        """Reset this node's connections of ``service`` (SOCK_DESTROY through ``ss -K``)."""
        source = service.address if ":" not in service.address else f"[{service.address}]"
        argv = ["ss", "-K", "-t", "state", "connected", "src", source,
                "sport", "=", f":{service.port}"]  # fmt: skip
        done = await self._run(argv, None)
        if done.returncode != 0:
            raise EngineError(f"ss -K: {done.stderr.strip()}")

    async def _fill(
        self, view: HandoverView, set_name: str, services: Sequence[DrainedService], *, grace: int
    ) -> None:
        elements = [element(view.family, s.address, s.port, s.drain_time + grace) for s in services]
        await self._nft(add_elements(view.family, set_name, elements))

    async def _nft(self, script: str, *, check: bool = True) -> None:
        if not script:
            return
        done = await self._run(["nft", "-f", "-"], script)
        if check and done.returncode != 0:
            raise EngineError(f"nft ({TABLE}): {done.stderr.strip()}")


def _table_of(view: HandoverView | None) -> HandoverView | None:
    return None if view is None else dataclasses.replace(view, services=())
