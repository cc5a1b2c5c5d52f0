"""L7 transparency (``transparent: true``): the kernel plumbing that brings replies to HAProxy.

With ``source 0.0.0.0 usesrc clientip`` on a server line (HAProxy 5.2 "source"), HAProxy
connects to the real server from the client's own address (an IP_TRANSPARENT socket). The
real server's reply is addressed to the client, and reaches the load balancer only if the real
server routes back through it; the load balancer must then deliver it locally, to HAProxy's
socket, instead of forwarding it. That is the Linux TPROXY recipe (kernel
Documentation/networking/tproxy.rst):

- an nftables table ``inet bascule_tproxy`` marks packets that belong to a transparent socket
  (``socket transparent 1``) with ``FWMARK``;
- a policy rule sends marked packets to ``ROUTE_TABLE``, where every address is local.

``plumbing`` decides (pure) what must exist for a configuration; ``Transparency.ensure`` makes
the kernel so, idempotently: it is called on every configuration HAProxy applies, so plumbing a
daemon left behind before a restart is adopted as it is and removed once no service needs it.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from bascule.errors import EngineError
from bascule.model import Configuration
from bascule.net.shell import Runner, subprocess_runner

TABLE = "bascule_tproxy"
# The mark and the routing table/rule priority: Bascule's own numbers ("bc" in ASCII), kept
# apart from the 0..255 tables and marks that distributions and other tools use.
FWMARK = 0x6263
ROUTE_TABLE = 25187
RULE_PRIORITY = 25187


@dataclass(frozen=True, kw_only=True)
class Plumbing:
    """What the kernel needs: for each IP version, whether transparent sockets are in use."""

    ipv4: bool = False
    ipv6: bool = False

    @property
    def needed(self) -> bool:
        return self.ipv4 or self.ipv6


def plumbing(config: Configuration) -> Plumbing:
    """The plumbing the transparent services of ``config`` need (by their servers' families)."""
    versions = {
        ipaddress.ip_address(rs.address).version
        for pool in config.pools()
        if pool.transparent
        for rs in pool.real_servers
    }
    return Plumbing(ipv4=4 in versions, ipv6=6 in versions)


def ruleset() -> str:
    """The nftables table, replaced atomically (declare, delete, define in one transaction)."""
    return (
        f"table inet {TABLE}\n"
        f"delete table inet {TABLE}\n"
        f"table inet {TABLE} {{\n"
        "    chain prerouting {\n"
        "        type filter hook prerouting priority mangle; policy accept;\n"
        f"        meta l4proto tcp socket transparent 1 meta mark set {FWMARK:#x} accept\n"
        "    }\n"
        "}\n"
    )


class Transparency:
    """Sets up and tears down the plumbing (nft and ip), through a Runner."""

    def __init__(self, runner: Runner | None = None) -> None:
        self._run = runner or subprocess_runner()

    async def ensure(self, wanted: Plumbing) -> None:
        """Make the kernel hold exactly the plumbing ``wanted`` asks for."""
        if wanted.needed:
            await self._must(["nft", "-f", "-"], ruleset())
        elif not (await self._has_rule(4) or await self._has_rule(6)):
            return  # nothing of ours is there (the usual case): not even nft is run
        else:
            await self._run(["nft", "delete", "table", "inet", TABLE], None)  # absent: fine
        for version, needed in ((4, wanted.ipv4), (6, wanted.ipv6)):
            if needed:
                await self._route(version)
            else:
                await self._unroute(version)

    async def _route(self, version: int) -> None:
        family = f"-{version}"
        anywhere = "0.0.0.0/0" if version == 4 else "::/0"
        await self._must(
            ["ip", family, "route", "replace", "local", anywhere, "dev", "lo", "table",
             str(ROUTE_TABLE)],
        )  # fmt: skip
        if not await self._has_rule(version):
            await self._must(
                ["ip", family, "rule", "add", "fwmark", f"{FWMARK:#x}", "lookup", str(ROUTE_TABLE),
                 "priority", str(RULE_PRIORITY)],
            )  # fmt: skip

    async def _unroute(self, version: int) -> None:
        family = f"-{version}"
        while await self._has_rule(version):
            await self._must(["ip", family, "rule", "del", "priority", str(RULE_PRIORITY)])
        await self._run(["ip", family, "route", "flush", "table", str(ROUTE_TABLE)], None)

    async def _has_rule(self, version: int) -> bool:
        done = await self._run(["ip", "-j", f"-{version}", "rule", "show"], None)
        if done.returncode != 0:
            return False  # the family is off (no IPv6 on this machine): no rule to remove
        rules = json.loads(done.stdout or "[]")
        return any(rule.get("priority") == RULE_PRIORITY for rule in rules)

    async def _must(self, argv: list[str], stdin: str | None = None) -> None:
        done = await self._run(argv, stdin)
        if done.returncode != 0:
            raise EngineError(f"{' '.join(argv)}: {done.stderr.strip()}")
