"""VIP addresses: put each virtual service's address on the interface that should carry it.

A VIP goes on the interface whose subnet holds it (or the one the service names), as a host
address (/32 or /128) so no route changes. Bascule only ever removes addresses it added itself;
it remembers them in ``vips.json`` in the data dir so a restarted daemon still knows. An
address that is already on the machine (127.0.0.1, the host's own address) is used as it is.

Every ``ip`` runs through net's async ``Ip`` runner: the service layer asks for the
placement of a change's VIPs under its change lock, and a slow ``ip`` must not stall the event
loop that also serves the API and runs the health checks; one change lists the machine's
addresses once (``placement_problems``), however many services it has.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from bascule.errors import EngineError
from bascule.net.iproute import Addresses
from bascule.net.shell import Ip

log = logging.getLogger("bascule.vips")

#: A VIP wanted on the machine: its address and the interface its service names (or None).
Placement = tuple[str, str | None]


class VipManager(Protocol):
    def owned(self) -> frozenset[str]: ...

    async def placement_problems(self, wanted: Sequence[Placement]) -> list[str | None]: ...

    async def ensure(self, address: str, interface: str | None) -> None: ...

    async def remove(self, address: str) -> None: ...


def choose_interface(
    address: str, interface: str | None, machine: Addresses
) -> tuple[str | None, str | None]:
    """(interface to add the VIP to or None if already present, problem or None)."""
    ip = ipaddress.ip_address(address)
    if ip.is_unspecified:
        return None, None
    if interface is not None and interface not in machine.links:
        return None, f"interface {interface!r} does not exist on this machine"
    if any(a.network.ip == ip for a in machine.addresses):
        return None, None
    if interface is not None:
        return interface, None
    holders = [
        a
        for a in machine.addresses
        if a.network.version == ip.version
        and ip in a.network.network
        and a.network.network.prefixlen < a.network.max_prefixlen
    ]
    if not holders:
        return None, (
            f"no interface has a subnet holding {address}; give the service an interface "
            "or use an address from a connected subnet"
        )
    # the most specific subnet wins
    best = max(holders, key=lambda a: a.network.network.prefixlen)
    return best.interface, None


class IpVipManager:
    """Adds and removes VIPs with iproute2, through ``net``'s async ``Ip`` runner: a slow
    ``ip`` never stalls the event loop, and one change lists the machine's addresses once."""

    def __init__(self, state_file: Path, *, ip: Ip | None = None) -> None:
        self._state_file = state_file
        self._ip = ip or Ip()
        self._owned: dict[str, str] = self._load()
        # Addresses a service uses that were already on the machine: used as they are,
        # never removed.
        self._foreign: set[str] = set()

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self._state_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable VIP state", extra={"error": str(exc)})
            return {}
        return {str(k): str(v) for k, v in data.items()}

    def _save(self) -> None:
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._owned, indent=1))
        os.replace(tmp, self._state_file)

    def owned(self) -> frozenset[str]:
        """VIPs in place for the services: those Bascule added and those it found there."""
        return frozenset(self._owned) | frozenset(self._foreign)

    async def _machine(self) -> Addresses:
        try:
            return await self._ip.addresses()
        except EngineError as exc:
            raise EngineError(f"cannot list the machine's addresses: {exc}") from exc

    async def placement_problems(self, wanted: Sequence[Placement]) -> list[str | None]:
        """For each (address, interface): why it cannot be placed, or None."""
        todo = [address for address, _ in wanted if address not in self._owned]
        machine = await self._machine() if todo else Addresses(links=frozenset(), addresses=())
        return [
            None if address in self._owned else choose_interface(address, interface, machine)[1]
            for address, interface in wanted
        ]

    async def ensure(self, address: str, interface: str | None) -> None:
        if address in self._owned:
            return
        target, problem = choose_interface(address, interface, await self._machine())
        if problem is not None:
            raise EngineError(problem)
        if target is None:
            self._foreign.add(address)  # already on the machine and not ours: use it as it is
            return
        await self._ip.add_host_address(address, target)
        self._owned[address] = target
        self._save()
        log.info("added VIP", extra={"address": address, "interface": target})

    async def remove(self, address: str) -> None:
        self._foreign.discard(address)
        target = self._owned.get(address)
        if target is None:
            return
        try:
            await self._ip.delete_host_address(address, target)
        except EngineError as exc:
            if "Cannot assign" not in str(exc) and "not found" not in str(exc).lower():
                raise
        del self._owned[address]
        self._save()
        log.info("removed VIP", extra={"address": address, "interface": target})

    async def forget_missing(self) -> list[str]:
        """Forget the VIPs ``vips.json`` lists that are no longer on the machine (a reboot,
        an address deleted by hand), so that the next reconcile adds them again; their list.

        Called at start, before the first reconcile (at boot every VIP is gone while the file
        remembers them), and before each repair pass.
        """
        if not self._owned:
            return []
        present = {str(a.network.ip) for a in (await self._machine()).addresses}
        missing = sorted(a for a in self._owned if str(ipaddress.ip_address(a)) not in present)
        if missing:
            for address in missing:
                del self._owned[address]
            self._save()
            log.info("VIPs missing from the machine: adding them again", extra={"vips": missing})
        return missing

    async def remove_all(self) -> None:
        self._foreign.clear()
        for address in sorted(self._owned):
            await self.remove(address)


class NullVipManager:
    """Accepts every address and touches nothing: for tests and dry environments."""

    def __init__(self) -> None:
        self.added: dict[str, str | None] = {}

    def owned(self) -> frozenset[str]:
        return frozenset(self.added)

    async def placement_problems(self, wanted: Sequence[Placement]) -> list[str | None]:
        return [None for _ in wanted]

    async def ensure(self, address: str, interface: str | None) -> None:
        self.added[address] = interface

    async def remove(self, address: str) -> None:
        self.added.pop(address, None)
