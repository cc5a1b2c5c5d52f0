"""The filter engine: access lists and the global block, enforced in the kernel for every VIP.

Where it sits in the flow of a change: the daemon drives it as one more engine, first after
keepalived, so a service's filter is in place before HAProxy or the L4 tables serve it. Its
share of a document is ``access.share`` (the lists in use, ``block``, each service's VIPs,
ports and ``access``), so a change of real servers, checks or rules never reaches it, and a
change of ``access`` or of a list reloads neither HAProxy nor the L4 tables (``for_mode``
leaves ``access`` out of their shares). It owns one table, ``inet bascule_filter``
(``access.py`` decides it): a change of a list's entries refills that list's sets in one
transaction and touches no rule; any other change replaces the table in one transaction.

A DSR service's packets are forwarded at the netdev ingress hook and never reach prerouting:
they are filtered at ingress on the device they arrive on, the service's ``interface``, else
the engine's, else the device of the VIP (or of the route towards it, before it is placed).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from bascule.engines.base import ClientLoad, EngineObservation
from bascule.engines.nftables import access, conntrack
from bascule.engines.nftables.access import FilterRuleset, build_filter, is_dsr, set_update
from bascule.engines.nftables.nft import Json
from bascule.engines.nftables.transaction import Listing
from bascule.errors import ApplyFailed, EngineError, EngineRejected, NotApplicable
from bascule.model import Configuration, Mode
from bascule.net.shell import Completed, Ip, Runner, subprocess_runner
from bascule.reconcile.actions import Action, ReplaceConfig

log = logging.getLogger("bascule.filter")

#: Between the two reads of conntrack that count an l4 client's new connections per second.
CLIENT_INTERVAL_S = 1.0


class FilterEngine:
    """Engine contract implementation for the kernel's access lists (see engines/base.py)."""

    name = "filter"
    mode = Mode.l4  # unused: its share is chosen by ``share`` (SelectsServices)
    max_weight = 1  # it runs no real server

    def __init__(
        self,
        *,
        runner: Runner | None = None,
        netns: str | None = None,
        interface: str | None = None,
    ) -> None:
        self._run = runner or subprocess_runner(netns)
        self._ip = Ip(self._run)
        self._interface = interface
        self._lock = asyncio.Lock()
        self._applied: FilterRuleset | None = None

    def share(self, config: Configuration) -> Configuration:
        return access.share(config)

    # -- the Engine contract ----------------------------------------------------------------------

    async def adopt(self) -> bool:
        present = await self._present()
        if present:
            log.info("adopting Bascule's filter table")
        return present

    async def check(self, config: Configuration) -> None:
        ruleset = await self._build(config)
        if ruleset.empty:
            return
        done = await self._nft("-c", "-j", "-f", "-", stdin=json.dumps(ruleset.transaction()))
        if done.returncode != 0:
            devices = ", ".join(sorted(set((await self._devices(config)).values()))) or "none"
            raise EngineRejected(
                "nft", f"the filter table (DSR devices: {devices}): {done.stderr.strip()}"
            )

    async def execute(self, actions: Sequence[Action], applied: Configuration | None) -> None:
        replace = [action for action in actions if isinstance(action, ReplaceConfig)]
        if not replace:
            return  # it runs no real server: weights and states are not its business
        config = replace[-1].config
        async with self._lock:
            ruleset = await self._build(config)
            if ruleset.empty:
                # nothing to filter: no nft call unless our table is there (a machine with
                # l7 services only may have no nftables at all)
                if await self._present():
                    await self._send(access.removal(), "remove the filter table")
                self._applied = ruleset
                return
            if self._applied is None and applied is not None and await self._present():
                # adopted: what runs is what the previous daemon built from ``applied``
                self._applied = await self._build(applied)
            update = set_update(self._applied, ruleset) if self._applied is not None else None
            if update is None:
                await self._send(ruleset.transaction(), "apply the filter table")
                log.info("applied the filter table", extra={"sets": len(ruleset.sets)})
            elif update["nftables"]:
                await self._send(update, "update the access lists")
                log.info("updated the access lists", extra={"commands": len(update["nftables"])})
            self._applied = ruleset

    async def observe(
        self, applied: Configuration | None, *, counters: bool = True
    ) -> EngineObservation:
        if applied is None or not access.filters(applied):
            return EngineObservation(running=True)
        if await self._present():
            return EngineObservation(running=True)
        return EngineObservation(running=False, detail="Bascule's filter table is missing")

    async def stop(self, *, grace: float) -> None:
        async with self._lock:
            if await self._present():
                await self._send(access.removal(), "remove the filter table")
            self._applied = None

    async def info(self) -> dict[str, Any]:
        """The lists and services the filter drops for, with their counters."""
        ruleset = self._applied
        if ruleset is None or ruleset.empty:
            return {"running": await self._present(), "idle": True, "lists": {}, "services": {}}
        values = await self.counters()
        lists: dict[str, Any] = {}
        services: dict[str, Any] = {}
        for counter, (kind, name) in ruleset.counters.items():
            packets = values.get(counter, 0)
            if kind == "list":
                entries = sum(
                    len(ruleset.sets.get(access.set_name(name, version), ())) for version in (4, 6)
                )
                lists[name] = {"entries": entries, "dropped_packets": packets}
            elif kind == "limited":
                services.setdefault(name, {})["limited_packets"] = packets
            else:
                services.setdefault(name, {})["denied_packets"] = packets
        return {
            "running": True,
            "idle": False,
            "table": f"{access.FAMILY} {access.TABLE}",
            "lists": lists,
            "services": services,
        }

    async def counters(self) -> dict[str, int]:
        """Packets of every named counter of the filter table (none when it is not there)."""
        done = await self._nft("-j", "list", "counters", "table", access.FAMILY, access.TABLE)
        if done.returncode != 0:
            return {}
        listing = Listing.parse(done.stdout)
        found: dict[str, int] = {}
        for item in listing.items:
            body = item.get("counter")
            if isinstance(body, dict) and body.get("table") == access.TABLE:
                found[str(body["name"])] = int(body.get("packets", 0))
        return found

    async def client_loads(
        self, applied: Configuration | None, vs_name: str, *, top: int, rule: str | None = None
    ) -> list[ClientLoad]:
        """An l4 NAT service's busiest clients (``conntrack.client_loads``): conntrack read
        twice ``CLIENT_INTERVAL_S`` apart, and the clients its per-client meters dropped
        lately (``held4/<service>``)."""
        vs = applied.pool(vs_name) if applied is not None else None
        if vs is None or rule is not None or not access.kernel_limited(vs):
            raise NotApplicable(f"{vs_name!r} is not an l4 NAT service with limits")
        before = await self._connections()
        await asyncio.sleep(CLIENT_INTERVAL_S)
        after = await self._connections()
        held: list[str] = []
        for version in {ipaddress.ip_address(a).version for a in vs.addresses}:
            held += await self._elements(access.meter_name(vs.name, "held", version))
        return conntrack.client_loads(
            before, after, vs, held=held, interval=CLIENT_INTERVAL_S, top=top
        )

    # -- the shell --------------------------------------------------------------------------------

    async def _connections(self) -> list[conntrack.Connection]:
        done = await self._run(["cat", "/proc/net/nf_conntrack"], None)
        if done.returncode != 0:
            raise EngineError(f"cannot read conntrack: {done.stderr.strip()}")
        return conntrack.parse_conntrack(done.stdout)

    async def _elements(self, name: str) -> list[str]:
        """The addresses in set ``name`` of the filter table (none if it is not there)."""
        done = await self._nft("-j", "list", "set", access.FAMILY, access.TABLE, name)
        if done.returncode != 0:
            return []
        found: list[str] = []
        for item in json.loads(done.stdout).get("nftables", []):
            body = item.get("set") if isinstance(item, dict) else None
            for element in body.get("elem", []) if isinstance(body, dict) else []:
                if isinstance(element, dict):  # with its timeout: {"elem": {"val": ...}}
                    element = element.get("elem", {}).get("val")
                if isinstance(element, str):
                    found.append(element)
        return found

    async def _build(self, config: Configuration) -> FilterRuleset:
        devices = await self._devices(config)
        return build_filter(access.share(config), devices)

    async def _devices(self, config: Configuration) -> Mapping[str, str]:
        """DSR service name -> the device its clients' packets arrive on."""
        devices: dict[str, str] = {}
        for vs in config.virtual_services:
            if not is_dsr(vs):
                continue
            device = vs.interface or self._interface or await self._device_of(vs.address)
            if device is None:
                raise EngineRejected("filter", f"{vs.name}: no device found for VIP {vs.address}")
            devices[vs.name] = device
        return devices

    async def _device_of(self, address: str) -> str | None:
        route = await self._ip.route(address)
        if route is None:
            return None
        if not route.local:
            return route.interface
        held = await self._ip.addresses()
        return next(
            (a.interface for a in held.addresses if str(a.network.ip) == address),
            route.interface,
        )

    async def _present(self) -> bool:
        """Whether the table exists (``list tables``: listing the table itself would print
        every element of its sets)."""
        try:
            done = await self._nft("-j", "list", "tables", access.FAMILY)
        except (EngineError, OSError):
            return False
        if done.returncode != 0:
            return False
        return any(
            body.get("name") == access.TABLE
            for item in Listing.parse(done.stdout).items
            if isinstance(body := item.get("table"), dict)
        )

    async def _nft(self, *args: str, stdin: str | None = None) -> Completed:
        return await self._run(["nft", *args], stdin)

    async def _send(self, document: Json, what: str) -> None:
        # nft runs a file as one kernel transaction: refused, nothing changed (``check``
        # ran ``nft -c`` before the change was committed)
        done = await self._nft("-j", "-f", "-", stdin=json.dumps(document))
        if done.returncode != 0:
            raise ApplyFailed(f"nft could not {what}: {done.stderr.strip()}")
