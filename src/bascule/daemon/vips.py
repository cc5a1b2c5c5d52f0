"""VIP addresses: put each virtual service's address on the interface that should carry it.

A VIP goes on the interface whose subnet holds it (or the one the service names), as a host
address (/32 or /128) so no route changes. Bascule only ever removes addresses it added itself;
it remembers them in ``vips.json`` in the data dir so a restarted daemon still knows. An
address that is already on the machine (127.0.0.1, the host's own address) is used as it is.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bascule.errors import EngineError

log = logging.getLogger("bascule.vips")


class VipManager(Protocol):
    def owned(self) -> frozenset[str]: ...

    def placement_problem(self, address: str, interface: str | None) -> str | None: ...

    async def ensure(self, address: str, interface: str | None) -> None: ...

    async def remove(self, address: str) -> None: ...


@dataclass(frozen=True, kw_only=True)
class InterfaceAddress:
    interface: str
    network: ipaddress.IPv4Interface | ipaddress.IPv6Interface


def parse_ip_addr(data: list[dict[str, Any]]) -> list[InterfaceAddress]:
    """The addresses in ``ip -j addr show`` output."""
    found: list[InterfaceAddress] = []
    for link in data:
        for info in link.get("addr_info", []):
            local, prefix = info.get("local"), info.get("prefixlen")
            if local is None or prefix is None:
                continue
            found.append(
                InterfaceAddress(
                    interface=link["ifname"],
                    network=ipaddress.ip_interface(f"{local}/{prefix}"),
                )
            )
    return found


def choose_interface(
    address: str, interface: str | None, addresses: list[InterfaceAddress]
) -> tuple[str | None, str | None]:
    """(interface to add the VIP to or None if already present, problem or None)."""
    ip = ipaddress.ip_address(address)
    if ip.is_unspecified:
        return None, None
    names = {a.interface for a in addresses}
    if interface is not None and interface not in names and not _link_exists(interface):
        return None, f"interface {interface!r} does not exist on this machine"
    if any(a.network.ip == ip for a in addresses):
        return None, None
    if interface is not None:
        return interface, None
    holders = [
        a
        for a in addresses
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


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


class IpVipManager:
    """Adds and removes VIPs with iproute2 (``ip -j``)."""

    def __init__(self, state_file: Path) -> None:
        self._state_file = state_file
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

    def _addresses(self) -> list[InterfaceAddress]:
        try:
            out = subprocess.run(
                ["ip", "-j", "addr", "show"], capture_output=True, check=True, text=True
            ).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            raise EngineError(f"cannot list the machine's addresses: {exc}") from exc
        return parse_ip_addr(json.loads(out))

    def placement_problem(self, address: str, interface: str | None) -> str | None:
        if address in self._owned:
            return None
        return choose_interface(address, interface, self._addresses())[1]

    async def ensure(self, address: str, interface: str | None) -> None:
        if address in self._owned:
            return
        target, problem = choose_interface(address, interface, self._addresses())
        if problem is not None:
            raise EngineError(problem)
        if target is None:
            self._foreign.add(address)  # already on the machine and not ours: use it as it is
            return
        prefix = 32 if ipaddress.ip_address(address).version == 4 else 128
        argv = ["ip", "addr", "add", f"{address}/{prefix}", "dev", target]
        if prefix == 128:
            argv.append("nodad")
        await _run(argv)
        self._owned[address] = target
        self._save()
        log.info("added VIP", extra={"address": address, "interface": target})

    async def remove(self, address: str) -> None:
        self._foreign.discard(address)
        target = self._owned.get(address)
        if target is None:
            return
        prefix = 32 if ipaddress.ip_address(address).version == 4 else 128
        try:
            await _run(["ip", "addr", "del", f"{address}/{prefix}", "dev", target])
        except EngineError as exc:
            if "Cannot assign" not in str(exc) and "not found" not in str(exc).lower():
                raise
        del self._owned[address]
        self._save()
        log.info("removed VIP", extra={"address": address, "interface": target})

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

    def placement_problem(self, address: str, interface: str | None) -> str | None:
        return None

    async def ensure(self, address: str, interface: str | None) -> None:
        self.added[address] = interface

    async def remove(self, address: str) -> None:
        self.added.pop(address, None)


async def _run(argv: list[str]) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        raise EngineError(f"{' '.join(argv)}: {err.decode().strip()}")
