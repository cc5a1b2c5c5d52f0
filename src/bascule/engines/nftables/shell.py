"""The nftables engine's thin shell: ``nft -c``, one-transaction apply, counters, conntrack.

Where this sits in the flow of a change: the daemon builds a ``Ruleset`` with ``view.py`` (pure)
and hands it here. ``apply`` reads our tables (``nft -j list table``), lets the view turn the
ruleset into a transaction against what runs (``view.transaction``), checks it with
``nft -c -j -f -`` and applies it with ``nft -j -f -``: nft runs a whole file as one kernel
transaction, so on any error nothing changes. Maps that nft's JSON cannot declare are created
empty beforehand by the view's text ``prelude`` (unused until the transaction refers to them).
``update`` applies a ``view.map_update`` (maps refilled, no rule touched) the same way.
Every other verb reads or cuts state: ``counters`` (named counters and conntrack),
``flush_connections`` (cut a removed server's flows), ``remove`` (delete our tables),
``route_to`` / ``mac_of`` / ``interface_mac`` (DSR's facts, asked of iproute2 through
``net.shell.Ip``, which owns the parsing of ``ip -j``).

Every command goes through net's ``Runner`` (argv, stdin) -> ``Completed``, so the parsers are
tested without root and the integration tests run the real binaries inside a network namespace
(``netns``: commands are prefixed with ``ip netns exec``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bascule.engines.nftables.nft import TABLE, Json
from bascule.engines.nftables.view import Ruleset, prelude, transaction
from bascule.errors import ApplyFailed, EngineError, EngineRejected
from bascule.model import Configuration, VirtualService
from bascule.net.iproute import Route
from bascule.net.shell import Completed, Ip, Runner, subprocess_runner

FAMILIES = ("ip", "ip6", "netdev")


# -- pure parsers ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CounterValue:
    packets: int
    bytes: int


def parse_counters(listing: Json) -> dict[tuple[str, str], CounterValue]:
    """(family, counter name) -> value, from ``nft -j list ...`` output of our tables."""
    found: dict[tuple[str, str], CounterValue] = {}
    for item in listing.get("nftables", []):
        body = item.get("counter") if isinstance(item, dict) else None
        if isinstance(body, dict) and body.get("table") == TABLE:
            found[(body["family"], body["name"])] = CounterValue(
                packets=int(body.get("packets", 0)), bytes=int(body.get("bytes", 0))
            )
    return found


@dataclass(frozen=True, kw_only=True)
class Connection:
    """One conntrack entry: the original direction (client -> VIP) and the reply's source."""

    protocol: str
    state: str | None  # TCP state; None for UDP
    source: str
    destination: str
    source_port: int
    destination_port: int
    reply_source: str
    reply_source_port: int


_TUPLE = re.compile(r"(src|dst|sport|dport)=(\S+)")
_TCP_STATES = {
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
    "SYN_SENT2",
}
ACTIVE_TCP_STATES = {"SYN_RECV", "ESTABLISHED"}


def parse_conntrack(text: str) -> list[Connection]:
    """Entries of ``/proc/net/nf_conntrack`` or ``conntrack -L`` (TCP and UDP only)."""
    found: list[Connection] = []
    for line in text.splitlines():
        words = line.split()
        protocol = next((w for w in words[:4] if w in {"tcp", "udp"}), None)
        if protocol is None:
            continue
        state = next((w for w in words if w in _TCP_STATES), None) if protocol == "tcp" else None
        pairs = _TUPLE.findall(line)
        if len(pairs) < 8:
            continue
        original, reply = dict(pairs[:4]), dict(pairs[4:8])
        try:
            found.append(
                Connection(
                    protocol=protocol,
                    state=state,
                    source=original["src"],
                    destination=original["dst"],
                    source_port=int(original["sport"]),
                    destination_port=int(original["dport"]),
                    reply_source=reply["src"],
                    reply_source_port=int(reply["sport"]),
                )
            )
        except (KeyError, ValueError):
            continue
    return found


def _same(a: str, b: str) -> bool:
    return ipaddress.ip_address(a) == ipaddress.ip_address(b)


def active_connections(
    connections: Iterable[Connection], services: Iterable[VirtualService]
) -> dict[tuple[str, str], int]:
    """(vs name, rs key) -> open connections NATed to it (TCP SYN_RECV/ESTABLISHED, any UDP).

    DSR services have no conntrack entries on the load balancer: they count 0 here.
    """
    counts: dict[tuple[str, str], int] = {}
    services = list(services)
    for vs in services:
        for rs in vs.real_servers:
            counts[(vs.name, rs.key)] = 0
    for conn in connections:
        if conn.protocol == "tcp" and conn.state not in ACTIVE_TCP_STATES:
            continue
        for vs in services:
            if conn.protocol != vs.protocol.value or not _same(conn.destination, vs.address):
                continue
            if not any(r.first <= conn.destination_port <= r.last for r in vs.port_ranges):
                continue
            for rs in vs.real_servers:
                if _same(conn.reply_source, rs.address):
                    counts[(vs.name, rs.key)] += 1
    return counts


# -- the shell ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Counters:
    """What ``counters`` read: named counters and conntrack's open connections."""

    values: Mapping[tuple[str, str], CounterValue]  # (table family, counter name)
    active: Mapping[tuple[str, str], int]  # (vs name, rs key)

    def service(self, ruleset: Ruleset, name: str) -> dict[tuple[str, str], CounterValue]:
        """(rs key or "" for the service, kind) -> value for one service of ``ruleset``."""
        view = ruleset.services[name]
        return {
            ref: self.values[(view.table, counter)]
            for counter, ref in view.counters.items()
            if (view.table, counter) in self.values
        }


class NftablesShell:
    """Runs nft, conntrack and ip for the L4 engine; see the module docstring."""

    def __init__(self, *, runner: Runner | None = None, netns: str | None = None) -> None:
        self._run = runner or subprocess_runner(netns)
        self.ip = Ip(self._run)

    async def _nft(self, *args: str, stdin: str | None = None) -> Completed:
        return await self._run(["nft", *args], stdin)

    async def listing(self) -> Json:
        """Our tables as ``nft -j list table`` shows them (those that exist)."""
        items: list[Any] = []
        for family in FAMILIES:
            done = await self._nft("-j", "list", "table", family, TABLE)
            if done.returncode == 0 and done.stdout.strip():
                items += json.loads(done.stdout).get("nftables", [])
        return {"nftables": items}

    async def check(self, document: Json) -> None:
        """``nft -c``: raise EngineRejected with nft's message when it refuses ``document``."""
        done = await self._nft("-c", "-j", "-f", "-", stdin=json.dumps(document))
        if done.returncode != 0:
            raise EngineRejected("nft", done.stderr.strip())

    async def check_ruleset(self, ruleset: Ruleset) -> None:
        """``nft -c`` of the transaction ``apply`` would send. When the ruleset needs maps that
        only the prelude can declare, the prelude is checked, run (empty maps, no rule uses
        them) and, should nft refuse the transaction, undone."""
        listing = await self.listing()
        text = prelude(ruleset, listing)
        if text is None:
            await self.check(transaction(ruleset, listing))
            return
        present = {
            item["table"]["family"]
            for item in listing.get("nftables", [])
            if isinstance(item, dict) and isinstance(item.get("table"), dict)
        }
        await self._prelude(text)
        try:
            await self.check(transaction(ruleset, await self.listing()))
        except EngineRejected:
            await self._undo_prelude(ruleset, listing, present)
            raise

    async def _prelude(self, text: str) -> None:
        done = await self._nft("-c", "-f", "-", stdin=text)
        if done.returncode != 0:
            raise EngineRejected("nft", done.stderr.strip())
        done = await self._nft("-f", "-", stdin=text)
        if done.returncode != 0:
            raise ApplyFailed(f"nft could not declare the maps: {done.stderr.strip()}")

    async def _undo_prelude(self, ruleset: Ruleset, listing: Json, present: set[str]) -> None:
        """Delete what ``_prelude`` created: its maps, and its tables if there were none."""
        existing = {
            (body["family"], body["name"])
            for item in listing.get("nftables", [])
            if isinstance(item, dict)
            for kind, body in item.items()
            if kind == "map"
        }
        created = {family for family, _ in ruleset.prelude} - present
        commands: list[Json] = []
        for family in sorted(created):
            ref = {"family": family, "name": TABLE}
            commands += [{"add": {"table": ref}}, {"delete": {"table": ref}}]
        for family, name in ruleset.prelude:
            if family not in created and (family, name) not in existing:
                body = {"family": family, "table": TABLE, "name": name}
                commands.append({"delete": {"map": body}})
        if commands:
            await self._nft("-j", "-f", "-", stdin=json.dumps({"nftables": commands}))

    async def apply(self, ruleset: Ruleset) -> Json:
        """Bring our tables to ``ruleset`` in one transaction; return what was sent.

        Raise EngineRejected when ``nft -c`` refuses it, ApplyFailed when the apply itself
        fails (nft's transaction is all or nothing, so the previous state still runs).
        """
        listing = await self.listing()
        text = prelude(ruleset, listing)
        if text is not None:
            await self._prelude(text)
            listing = await self.listing()
        document = transaction(ruleset, listing)
        await self.check(document)
        await self._send(document)
        return document

    async def update(self, document: Json) -> None:
        """Apply a ``view.map_update`` transaction: checked, then sent as one transaction."""
        if not document.get("nftables"):
            return
        await self.check(document)
        await self._send(document)

    async def _send(self, document: Json) -> None:
        done = await self._nft("-j", "-f", "-", stdin=json.dumps(document))
        if done.returncode != 0:
            raise ApplyFailed(f"nft could not apply the ruleset: {done.stderr.strip()}")

    async def version(self) -> str:
        done = await self._nft("--version")
        return done.stdout.strip() if done.returncode == 0 else "unknown"

    async def tables(self) -> tuple[str, ...]:
        """The families of our tables that exist (``nft -j list tables``)."""
        done = await self._nft("-j", "list", "tables")
        if done.returncode != 0:
            raise EngineError(f"nft list tables failed: {done.stderr.strip()}")
        found = {
            item["table"]["family"]
            for item in json.loads(done.stdout or "{}").get("nftables", [])
            if isinstance(item, dict)
            and isinstance(item.get("table"), dict)
            and item["table"].get("name") == TABLE
        }
        return tuple(family for family in FAMILIES if family in found)

    async def counter_values(self) -> dict[tuple[str, str], CounterValue]:
        """Our named counters only (``nft -j list counters``): unlike ``listing`` it does not
        dump the maps, which hold 65537 Maglev slots per DSR service."""
        done = await self._nft("-j", "list", "counters")
        if done.returncode != 0:
            raise EngineError(f"nft list counters failed: {done.stderr.strip()}")
        return parse_counters(json.loads(done.stdout or "{}"))

    async def set_sysctls(self, values: Mapping[str, str]) -> None:
        """``sysctl -w`` in the namespace the engine runs in (/proc/sys is per netns)."""
        argv = ["sysctl", "-q", "-w", *(f"{key}={value}" for key, value in values.items())]
        done = await self._run(argv, None)
        if done.returncode != 0:
            raise EngineError(f"sysctl failed: {done.stderr.strip()}")

    async def route_to(self, address: str) -> Route | None:
        """``ip -j route get``: the device and gateway (if any) towards ``address``."""
        return await self.ip.route(address)

    async def remove(self) -> None:
        """Delete our tables (add + delete: never fails for a table that is not there)."""
        commands: list[Json] = []
        for family in FAMILIES:
            ref = {"family": family, "name": TABLE}
            commands += [{"add": {"table": ref}}, {"delete": {"table": ref}}]
        done = await self._nft("-j", "-f", "-", stdin=json.dumps({"nftables": commands}))
        if done.returncode != 0:
            raise ApplyFailed(f"nft could not remove Bascule's tables: {done.stderr.strip()}")

    async def counters(self, config: Configuration | None = None) -> Counters:
        """Named counters of our tables and, for ``config``'s services, open connections."""
        values = parse_counters(await self.listing())
        active: dict[tuple[str, str], int] = {}
        if config is not None:
            active = active_connections(await self.connections(), config.virtual_services)
        return Counters(values=values, active=active)

    async def connections(self) -> list[Connection]:
        """conntrack's table: /proc/net/nf_conntrack, else ``conntrack -L``."""
        done = await self._run(["cat", "/proc/net/nf_conntrack"], None)
        if done.returncode != 0:
            done = await self._run(["conntrack", "-L"], None)
        if done.returncode != 0:
            raise EngineError(f"cannot read conntrack: {done.stderr.strip()}")
        return parse_conntrack(done.stdout)

    async def flush_connections(
        self, vip: str, port: int | None, real_server: str, protocol: str = "tcp"
    ) -> None:
        """Cut the conntrack entries of ``vip:port`` (any port: None) NATed to ``real_server``."""
        argv = ["conntrack", "-D", "-p", protocol, "--orig-dst", vip]
        if port is not None:
            argv += ["--dport", str(port)]
        argv += ["--reply-src", real_server]
        done = await self._run(argv, None)
        # conntrack exits 1 when nothing matched ("0 flow entries have been deleted")
        if done.returncode != 0 and "0 flow entries" not in done.stderr:
            raise EngineError(f"conntrack -D failed: {done.stderr.strip()}")

    async def mac_of(self, address: str, interface: str) -> str | None:
        """The MAC of a neighbour on ``interface`` (one ping first fills the neighbour table)."""
        mac = await self._neighbour_mac(address, interface)
        if mac is None:
            await self._run(["ping", "-c", "1", "-W", "1", "-I", interface, address], None)
            mac = await self._neighbour_mac(address, interface)
        return mac

    async def _neighbour_mac(self, address: str, interface: str) -> str | None:
        try:
            found = await self.ip.neighbours(interface, address=address)
        except EngineError:
            return None
        return next((n.mac for n in found if n.address == address), None)

    async def interface_mac(self, interface: str) -> str:
        try:
            links = await self.ip.links(interface)
        except EngineError as exc:
            raise EngineError(f"no MAC address for {interface}: {exc}") from exc
        if not links or links[0].mac is None:
            raise EngineError(f"no MAC address for {interface}")
        return links[0].mac
