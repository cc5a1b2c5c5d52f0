"""VIP addresses: put each virtual service's address on the interface that should carry it.

A VIP goes on the interface whose subnet holds it (or the one the service names), as a host
address (/32 or /128) so no route changes. Bascule only ever removes addresses it added itself;
it remembers them in ``vips.json`` in the data dir so a restarted daemon still knows. An
address that is already on the machine (127.0.0.1, the host's own address) is used as it is.

Every ``ip`` runs through net's async ``Ip`` runner: the service layer asks for the
placement of a change's VIPs under its change lock, and a slow ``ip`` must not stall the event
loop that also serves the API and runs the health checks; one change lists the machine's
addresses once (``placement_problems``), however many services it has.

On a node of an HA pair keepalived places the VIPs instead (``PairedVips``).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from bascule.errors import EngineError
from bascule.model import Configuration
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

    async def present(self, address: str) -> bool:
        """Whether ``address`` is on the machine now, whoever put it there."""
        ip = ipaddress.ip_address(address)
        return any(a.network.ip == ip for a in (await self._machine()).addresses)

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


@runtime_checkable
class FollowsDocument(Protocol):
    """A VIP manager whose behaviour depends on the desired document (the pair's)."""

    def follow(self, config: Configuration) -> None: ...


class PairedVips:
    """The daemon's VIPs, or keepalived's on a paired node.

    A single node places its VIPs itself (``inner``). A node of a pair (the document has
    ``high_availability``) does not: keepalived adds them on the active and removes them on
    the standby (engines/keepalived), so this only remembers which VIPs the document wants and
    hands over any address the daemon had added before the node was paired; a node leaving the
    pair takes each VIP back once keepalived (stopped in the same reconcile) has let it go.
    Placement is still checked (a VIP must be reachable on the node's interfaces).
    """

    def __init__(self, inner: IpVipManager) -> None:
        self.inner = inner
        self.paired = False
        self._wanted: set[str] = set()
        self._handback: set[str] = set()  # keepalived's VIPs the daemon takes back

    def follow(self, config: Configuration) -> None:
        paired = config.high_availability is not None
        if paired != self.paired:
            log.info("VIPs are now placed by " + ("keepalived" if paired else "the daemon"))
            # leaving the pair: keepalived still holds its VIPs until it stops (later in the
            # same pass); the daemon takes each back once it is gone
            self._handback = set() if paired else set(self._wanted)
            self._wanted.clear()
        self.paired = paired

    def owned(self) -> frozenset[str]:
        if self.paired:
            return frozenset(self._wanted)
        return self.inner.owned() - self._handback

    async def placement_problems(self, wanted: Sequence[Placement]) -> list[str | None]:
        return await self.inner.placement_problems(wanted)

    async def ensure(self, address: str, interface: str | None) -> None:
        if not self.paired:
            if address in self._handback:
                await self.inner.remove(address)  # not "found on the machine": keepalived's
                if await self.inner.present(address):
                    return  # keepalived has not let it go yet: the next pass adds it
                self._handback.discard(address)
            await self.inner.ensure(address, interface)
            return
        await self.inner.remove(address)  # keepalived's from now on
        self._wanted.add(address)

    async def remove(self, address: str) -> None:
        self._wanted.discard(address)
        self._handback.discard(address)
        await self.inner.remove(address)

    async def forget_missing(self) -> list[str]:
        """As ``IpVipManager.forget_missing`` on a single node; on a paired node a VIP missing
        is keepalived's business (the standby holds none), so nothing is forgotten."""
        if self.paired:
            return []
        return await self.inner.forget_missing()

    async def remove_all(self) -> None:
        await self.inner.remove_all()
