"""The one shell of ``net``: commands run through a ``Runner``, and ``Ip``, the iproute2 runner.

Where it sits: every command Bascule runs on the machine's network (``ip``, and for the
nftables engine ``nft``, ``conntrack``, ``sysctl``) goes through a ``Runner``: argv and stdin
in, a ``Completed`` out, awaited, so a slow command never stalls the event loop (the API, the
health checks and the reconcile loop share it). ``subprocess_runner`` is the real one, inside
a network namespace when given one; tests pass a fake that plays the commands. ``Ip`` asks
iproute2 for JSON (``ip -j``) and reads it with iproute.py's parsers, so nothing else parses
``ip``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bascule.errors import EngineError
from bascule.net.addresses import host_prefix
from bascule.net.iproute import (
    Addresses,
    Link,
    Neighbour,
    Route,
    parse_addresses,
    parse_links,
    parse_neighbours,
    parse_route,
)

COMMAND_TIMEOUT = 30.0


@dataclass(frozen=True, kw_only=True)
class Completed:
    """What a command did: its exit status and its output, decoded."""

    returncode: int
    stdout: str
    stderr: str


Runner = Callable[[Sequence[str], str | None], Awaitable[Completed]]


def subprocess_runner(netns: str | None = None, *, timeout: float = COMMAND_TIMEOUT) -> Runner:
    """A Runner that executes commands (inside ``netns`` when given), each bounded by
    ``timeout`` seconds; a command that cannot start or does not end raises EngineError."""
    prefix = ["ip", "netns", "exec", netns] if netns else []

    async def run(argv: Sequence[str], stdin: str | None) -> Completed:
        try:
            proc = await asyncio.create_subprocess_exec(
                *prefix,
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise EngineError(f"cannot run {argv[0]}: {exc}") from exc
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None), timeout
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise EngineError(f"{' '.join(argv)}: no answer within {timeout}s") from None
        return Completed(returncode=proc.returncode or 0, stdout=out.decode(), stderr=err.decode())

    return run


class Ip:
    """iproute2 through a Runner: the machine's addresses, links, routes and neighbours.

    Queries raise EngineError when ``ip`` fails, except ``route``, for which "no route" is an
    answer (None).
    """

    def __init__(self, runner: Runner | None = None) -> None:
        self._run = runner or subprocess_runner()

    async def _query(self, *args: str) -> str:
        done = await self._run(["ip", "-j", *args], None)
        if done.returncode != 0:
            raise EngineError(f"ip {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    async def _change(self, *args: str) -> None:
        done = await self._run(["ip", *args], None)
        if done.returncode != 0:
            raise EngineError(f"ip {' '.join(args)}: {done.stderr.strip()}")

    async def addresses(self, interface: str | None = None) -> Addresses:
        """``ip -j address show [dev INTERFACE]``."""
        device = ("dev", interface) if interface is not None else ()
        return parse_addresses(await self._query("address", "show", *device))

    async def links(self, interface: str | None = None) -> tuple[Link, ...]:
        """``ip -j link show [dev INTERFACE]``."""
        device = ("dev", interface) if interface is not None else ()
        return parse_links(await self._query("link", "show", *device))

    async def route(self, address: str) -> Route | None:
        """``ip -j route get ADDRESS``: None when there is no route to it."""
        done = await self._run(["ip", "-j", "route", "get", address], None)
        return parse_route(done.stdout) if done.returncode == 0 else None

    async def neighbours(
        self, interface: str, *, address: str | None = None
    ) -> tuple[Neighbour, ...]:
        """``ip -j neigh show [to ADDRESS] dev INTERFACE``: the resolved entries."""
        target = ("to", address) if address is not None else ()
        return parse_neighbours(await self._query("neigh", "show", *target, "dev", interface))

    async def add_host_address(self, address: str, interface: str) -> None:
        """``ip address add ADDRESS/32 dev INTERFACE``; for IPv6 /128, ``nodad`` (a VIP must
        answer at once, not after duplicate address detection) and ``preferred_lft 0``: a
        deprecated address still receives and can be bound, but is never picked as the
        source of the machine's own connections (RFC 6724 rule 3), which a /128 on the link
        otherwise wins by its longest matching prefix (rule 8): health checks, HAProxy's
        connections and one-armed NAT would leave from a VIP."""
        v6 = ":" in address
        extra = ("nodad", "preferred_lft", "0") if v6 else ()
        await self._change("address", "add", host_prefix(address), "dev", interface, *extra)

    async def delete_host_address(self, address: str, interface: str) -> None:
        """``ip address del ADDRESS/32 dev INTERFACE`` (/128 for IPv6)."""
        await self._change("address", "del", host_prefix(address), "dev", interface)
