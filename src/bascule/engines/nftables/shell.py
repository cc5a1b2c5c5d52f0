"""The nftables engine's thin shell: it runs ``nft``, ``conntrack``, ``sysctl``, ``ip``, ``ping``.

Where this sits in the flow of a change: the engine builds a ``Ruleset`` (``rules.py``, pure)
and hands it here. ``apply`` lists our tables (``nft -j list table``, read by
``transaction.Listing``), sends the text ``prelude`` first when the ruleset needs maps that
nft's JSON cannot declare (created empty, unused until the transaction refers to them), then
the ``transaction`` against what runs: checked with ``nft -c -j -f -`` and applied with
``nft -j -f -``; nft runs a whole file as one kernel transaction, so on any error nothing
changes. ``update`` sends a ``transaction.in_place`` (what differs from what runs) as it is:
nft runs it as one transaction too, and the engine falls back to ``apply`` should it fail.
Every other verb reads or cuts state: ``counter_values`` (our named counters),
``connections`` (conntrack's table, read by ``conntrack.py``), ``flush_connections`` (cut a
failed server's flows), ``remove`` (delete our tables), ``set_sysctls``, and ``route_to`` /
``mac_of`` / ``interface_mac`` (the machine's facts, asked of iproute2 through
``net.shell.Ip``, which owns the parsing of ``ip -j``; the daemon's own engine asks the
kernel for a route over rtnetlink in its process, ``kernel_route``).

Every command goes through net's ``Runner`` (argv, stdin) -> ``Completed``, so the commands are
tested without root and the integration tests run the real binaries inside a network namespace
(``netns``: commands are prefixed with ``ip netns exec``). The daemon's own engine (no runner,
its own namespace) runs its small nft transactions and ``list chains`` through libnftables
in its process instead (``Libnftables``): the same library and answers as the ``nft``
process, without starting one for every change.
"""

from __future__ import annotations

import asyncio
import ctypes
import ipaddress
import json
import logging
import socket
import struct
from collections.abc import Mapping, Sequence

from bascule.engines.nftables.conntrack import Connection, parse_conntrack
from bascule.engines.nftables.nft import FAMILIES, TABLE, Json
from bascule.engines.nftables.rules import Ruleset
from bascule.engines.nftables.transaction import (
    CounterValue,
    Listing,
    prelude,
    removal,
    transaction,
    undo_prelude,
)
from bascule.errors import ApplyFailed, EngineError, EngineRejected
from bascule.net.iproute import Route
from bascule.net.shell import Completed, Ip, Runner, subprocess_runner

log = logging.getLogger("bascule.nftables")


# The largest ``nft -f`` input run in-process (``Libnftables``): an in-place transaction or a
# check of one is kilobytes; the whole ruleset, with a DSR service's 65537 Maglev slots, is
# megabytes that nft parses into memory the daemon would keep: those go to an nft process.
IN_PROCESS_INPUT = 256 * 1024

# libnftables(3): nft_ctx_output_set_flags' NFT_CTX_OUTPUT_JSON (``nft -j``)
_OUTPUT_JSON = 1 << 4


class Libnftables:
    """nft's own library (libnftables(3), of which the ``nft`` binary is a thin front), run in
    the daemon's process: a change's small transaction without starting a process, which on
    a loaded machine costs more than the kernel's work (tens of ms for each ``nft``).

    ``command`` takes the arguments as ``nft`` would and answers as its process would
    (return code, output, error text), or None for what stays with the ``nft`` process:
    anything but ``-j``/``-c`` flags and ``-f -`` (input) or ``list chains``, and input
    larger than ``IN_PROCESS_INPUT``. One context serves every call, one at a time: a fresh
    context's first transaction took 16 ms here where the same one in a kept context takes
    1.5 ms (a weight change's 50 map elements in place; measured in a namespace with this
    bench's 100-server ruleset), and nft itself keeps its cache only as long as the kernel's
    ruleset generation is the one it read.
    """

    def __init__(self, library: ctypes.CDLL) -> None:
        self._lib = library
        for name, restype, argtypes in (
            ("nft_ctx_new", ctypes.c_void_p, [ctypes.c_uint32]),
            ("nft_ctx_free", None, [ctypes.c_void_p]),
            ("nft_ctx_buffer_output", ctypes.c_int, [ctypes.c_void_p]),
            ("nft_ctx_buffer_error", ctypes.c_int, [ctypes.c_void_p]),
            ("nft_ctx_get_output_buffer", ctypes.c_char_p, [ctypes.c_void_p]),
            ("nft_ctx_get_error_buffer", ctypes.c_char_p, [ctypes.c_void_p]),
            ("nft_ctx_output_set_flags", None, [ctypes.c_void_p, ctypes.c_uint]),
            ("nft_ctx_set_dry_run", None, [ctypes.c_void_p, ctypes.c_bool]),
            ("nft_run_cmd_from_buffer", ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p]),
        ):
            function = getattr(library, name)
            function.restype, function.argtypes = restype, argtypes
        self._lock = asyncio.Lock()
        self._context: int | None = None  # nft_ctx_new's, made on the first call

    @classmethod
    def load(cls) -> Libnftables | None:
        """The library nft itself uses; None where it cannot be loaded."""
        try:
            return cls(ctypes.CDLL("libnftables.so.1"))
        except (OSError, AttributeError) as exc:
            log.debug("libnftables not loaded, running nft", extra={"error": str(exc)})
            return None

    async def command(self, args: Sequence[str], stdin: str | None) -> Completed | None:
        parsed = in_process(args, stdin)
        if parsed is None:
            return None
        async with self._lock:
            return await asyncio.to_thread(self._run, *parsed)

    def _run(self, text: str, json_output: bool, dry_run: bool) -> Completed:
        lib = self._lib
        if self._context is None:
            context = lib.nft_ctx_new(0)
            if not context:
                return Completed(returncode=1, stdout="", stderr="libnftables: no context")
            lib.nft_ctx_buffer_output(context)
            lib.nft_ctx_buffer_error(context)
            self._context = context
        context = self._context
        lib.nft_ctx_output_set_flags(context, _OUTPUT_JSON if json_output else 0)
        lib.nft_ctx_set_dry_run(context, dry_run)
        code = lib.nft_run_cmd_from_buffer(context, text.encode())
        # reading a buffer empties it for the next call
        out = lib.nft_ctx_get_output_buffer(context) or b""
        err = lib.nft_ctx_get_error_buffer(context) or b""
        return Completed(
            returncode=0 if code == 0 else 1,
            stdout=out.decode(errors="replace"),
            stderr=err.decode(errors="replace"),
        )


def in_process(args: Sequence[str], stdin: str | None) -> tuple[str, bool, bool] | None:
    """nft's arguments as what ``Libnftables`` runs: (the input, JSON output, dry run), or
    None for the ``nft`` process (see ``Libnftables``)."""
    flags = [arg for arg in args if arg in {"-j", "-c"}]
    rest = [arg for arg in args if arg not in {"-j", "-c"}]
    if rest == ["-f", "-"] and stdin is not None and len(stdin) <= IN_PROCESS_INPUT:
        text = stdin
    elif rest == ["list", "chains"]:
        text = "list chains"
    else:
        return None
    return text, "-j" in flags, "-c" in flags


# rtnetlink(7): the request and the answer of ``ip route get``
_RTM_NEWROUTE, _RTM_GETROUTE, _NLMSG_ERROR, _NLM_F_REQUEST = 24, 26, 2, 1
_RTA_DST, _RTA_OIF, _RTA_GATEWAY, _RTA_PREFSRC = 1, 4, 5, 7
_RTN_LOCAL = 2


def kernel_route(address: str) -> Route | None:
    """``ip route get ADDRESS`` asked of the kernel over rtnetlink, in the process and the
    network namespace it runs in: the route's device, gateway and source, None when there
    is no route (the kernel's error, as ``ip`` exits 2). Raise OSError when the answer is
    not one."""
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    packed = ip.packed
    # struct rtmsg (family, dst_len, src_len, tos, table, protocol, scope, type, flags), RTA_DST
    body = struct.pack("=BBBBBBBBI", family, len(packed) * 8, 0, 0, 0, 0, 0, 0, 0)
    body += struct.pack("=HH", 4 + len(packed), _RTA_DST) + packed
    header = struct.pack("=IHHII", 16 + len(body), _RTM_GETROUTE, _NLM_F_REQUEST, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(2.0)
        sock.send(header + body)
        data = sock.recv(65536)
    length, kind = struct.unpack_from("=IH", data)
    if kind == _NLMSG_ERROR:
        return None
    if kind != _RTM_NEWROUTE or length > len(data) or length < 28:
        raise OSError(f"rtnetlink answered message type {kind} to a route request")
    attributes: dict[int, bytes] = {}
    offset = 28  # nlmsghdr, rtmsg
    while offset + 4 <= length:
        size, attribute = struct.unpack_from("=HH", data, offset)
        if size < 4:
            break
        attributes[attribute & 0x3FFF] = data[offset + 4 : offset + size]
        offset += (size + 3) & ~3
    device = attributes.get(_RTA_OIF)
    if device is None:
        return None

    def text(raw: bytes | None) -> str | None:
        return str(ipaddress.ip_address(raw)) if raw else None

    return Route(
        interface=socket.if_indextoname(struct.unpack("=I", device)[0]),
        gateway=text(attributes.get(_RTA_GATEWAY)),
        source=text(attributes.get(_RTA_PREFSRC)),
        local=data[16 + 7] == _RTN_LOCAL,
    )


class NftablesShell:
    """Runs the L4 engine's commands; see the module docstring."""

    def __init__(
        self,
        *,
        runner: Runner | None = None,
        netns: str | None = None,
        library: Libnftables | None = None,
    ) -> None:
        self._run = runner or subprocess_runner(netns)
        self.ip = Ip(self._run)
        # nft in-process where it runs in our own network namespace with the real commands
        # (a runner given, or another namespace: every command goes to the runner)
        # the routes too, over rtnetlink, where the engine runs in our own namespace
        self._own_namespace = runner is None and netns is None
        if library is None and self._own_namespace:
            library = Libnftables.load()
        self._library = library

    async def _nft(self, *args: str, stdin: str | None = None) -> Completed:
        if self._library is not None:
            done = await self._library.command(args, stdin)
            if done is not None:
                return done
        return await self._run(["nft", *args], stdin)

    async def listing(self) -> Listing:
        """Our tables as ``nft -j list table`` shows them (those that exist)."""
        listing = Listing()
        for family in FAMILIES:
            done = await self._nft("-j", "list", "table", family, TABLE)
            if done.returncode == 0:
                listing += Listing.parse(done.stdout)
        return listing

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
        await self._prelude(text)
        try:
            await self.check(transaction(ruleset, await self.listing()))
        except EngineRejected:
            undo = undo_prelude(ruleset, listing)
            if undo is not None:
                await self._nft("-j", "-f", "-", stdin=json.dumps(undo))
            raise

    async def _prelude(self, text: str) -> None:
        done = await self._nft("-c", "-f", "-", stdin=text)
        if done.returncode != 0:
            raise EngineRejected("nft", done.stderr.strip())
        done = await self._nft("-f", "-", stdin=text)
        if done.returncode != 0:
            raise ApplyFailed(f"nft could not declare the maps: {done.stderr.strip()}")

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
        """Send a ``transaction.in_place`` as one transaction (no ``nft -c`` first: a refusal
        changes nothing either, and the engine then applies the whole ruleset)."""
        if not document.get("nftables"):
            return
        await self._send(document, "update the ruleset in place")

    async def _send(self, document: Json, what: str = "apply the ruleset") -> None:
        done = await self._nft("-j", "-f", "-", stdin=json.dumps(document))
        if done.returncode != 0:
            raise ApplyFailed(f"nft could not {what}: {done.stderr.strip()}")

    async def version(self) -> str:
        done = await self._nft("--version")
        return done.stdout.strip() if done.returncode == 0 else "unknown"

    async def tables(self) -> tuple[str, ...]:
        """The families of our tables that exist, as their chains show them.

        ``nft -j list chains``, not ``list tables``: nft 1.0.6 fetches every set's elements
        for ``list tables`` (and ``list counters``), a second for a DSR service's 65537 Maglev
        slots, where the chains come in milliseconds. A table of ours without a chain is one
        only the prelude made (its transaction never went in): counted as missing, so the
        next apply puts the whole ruleset in.
        """
        done = await self._nft("-j", "list", "chains")
        if done.returncode != 0:
            raise EngineError(f"nft list chains failed: {done.stderr.strip()}")
        found = {family for family, _, _ in Listing.parse(done.stdout).objects("chain")}
        return tuple(family for family in FAMILIES if family in found)

    async def counter_values(self) -> dict[tuple[str, str], CounterValue]:
        """Our named counters only (``nft -j list counters``): unlike ``listing`` it does not
        dump the maps, which hold 65537 Maglev slots per DSR service."""
        done = await self._nft("-j", "list", "counters")
        if done.returncode != 0:
            raise EngineError(f"nft list counters failed: {done.stderr.strip()}")
        return Listing.parse(done.stdout).counters()

    async def set_sysctls(self, values: Mapping[str, str]) -> None:
        """``sysctl -w`` in the namespace the engine runs in (/proc/sys is per netns)."""
        argv = ["sysctl", "-q", "-w", *(f"{key}={value}" for key, value in values.items())]
        done = await self._run(argv, None)
        if done.returncode != 0:
            raise EngineError(f"sysctl failed: {done.stderr.strip()}")

    async def route_to(self, address: str) -> Route | None:
        """``ip -j route get``: the device and gateway (if any) towards ``address``; in our
        own namespace asked of the kernel in the process (``kernel_route``), not of an
        ``ip`` process (a new NAT real server's route was 10 ms of its change under load)."""
        if self._own_namespace:
            try:
                return kernel_route(address)
            except OSError as exc:
                log.debug("rtnetlink failed, asking ip", extra={"error": str(exc)})
        return await self.ip.route(address)

    async def remove(self) -> None:
        """Delete our tables (never fails for a table that is not there)."""
        await self._send(removal(), "remove Bascule's tables")

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
