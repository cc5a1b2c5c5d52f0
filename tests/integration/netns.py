"""Throwaway hosts for integration tests: network namespaces wired to one bridge.

Every engine test builds its own small network (DESIGN.md, "Test topology"): a `client`, the
load balancer `lb` and real servers `rs1..rsN`, each a network namespace with one veth
`eth0` plugged into a bridge that lives in a namespace of its own, so the host's root
namespace networking is never touched. All addresses come from 198.18.0.0/15 (RFC 2544, the
benchmarking range); this module refuses any other subnet. ``Topology(ipv6=True)`` gives every
host an IPv6 address too, from 2001:2::/64 (RFC 5180, the IPv6 benchmarking range), with the
same last number: lb 2001:2::2, client 2001:2::a, rsN 2001:2::(a+N), ``vip6(n)`` 2001:2::n.

Layout of the default subnet 198.18.0.0/24::

    lb      198.18.0.2            (the daemon adds VIPs itself: `vip(n)` -> 198.18.0.n)
    client  198.18.0.10           (+ 198.18.0.20..29 with `client_extra_addresses`)
    rsN     198.18.0.(10+N)       (rs1 = .11 ... rs9 = .19)

Namespace names are `bsc` + 5 base-36 digits of the creating pid + 2 random base-36 digits +
`-role` (e.g. `bsc02n9ck7-rs1`): unique per run, at most 15 characters, and the pid lets
`cleanup_stale()` remove what a crashed run left behind.

Typical use (see tests/integration/conftest.py for the `topology` fixture)::

    with Topology(real_servers=3) as topo:
        topo.start_real_servers()                    # realserver.py on :80, waits for "ready"
        result = topo.run_client("--url", f"http://{topo.real_servers[0].address}/",
                                 "--requests", "10")
        assert result["counts"] == {"rs1": 10}
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOOLS = Path(__file__).resolve().parent.parent / "tools"
REALSERVER = TOOLS / "realserver.py"
CLIENT = TOOLS / "client.py"

# RFC 2544 benchmarking range: the only addresses test traffic may use.
ALLOWED_NETWORK = ipaddress.ip_network("198.18.0.0/15")
# ... and its IPv6 counterpart (RFC 5180): ipv6=True topologies number hosts in this /64
ALLOWED_NETWORK6 = ipaddress.ip_network("2001:2::/48")
SUBNET6 = ipaddress.ip_network("2001:2::/64")
NAME_PREFIX = "bsc"
_NAME_RE = re.compile(r"^bsc([0-9a-z]{5})([0-9a-z]{2})-[0-9a-z]+$")
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"

LB_OFFSET = 2
CLIENT_OFFSET = 10
REAL_SERVER_OFFSET = 10  # rsN -> .10+N
CLIENT_EXTRA_OFFSET = 20
MAX_REAL_SERVERS = 9
MAX_CLIENT_EXTRA = 10


class TopologyError(RuntimeError):
    """Building, using or removing a test topology failed (the message carries ip's stderr)."""


@dataclass(frozen=True)
class Host:
    """One host of the topology: a network namespace with one interface on the bridge."""

    name: str  # logical name: "client", "lb", "rs1"
    netns: str  # real namespace name: "bsc02n9ck7-rs1"
    address: str  # primary IPv4 address on `interface`
    interface: str = "eth0"
    prefixlen: int = 24
    extra_addresses: tuple[str, ...] = ()
    address6: str | None = None  # on `interface` too, in an ipv6=True topology (a /64)
    extra_addresses6: tuple[str, ...] = ()

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.address, *self.extra_addresses)

    @property
    def addresses6(self) -> tuple[str, ...]:
        return () if self.address6 is None else (self.address6, *self.extra_addresses6)


def _base36(number: int, width: int) -> str:
    digits = ""
    while number:
        number, rest = divmod(number, 36)
        digits = _B36[rest] + digits
    return digits.rjust(width, "0")[-width:]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ip(*args: str, stdin: str | None = None) -> str:
    """Run `ip` with `args`; raise TopologyError with ip's own message on failure."""
    proc = subprocess.run(
        ["ip", *args], input=stdin, capture_output=True, text=True, check=False, timeout=30
    )
    if proc.returncode != 0:
        shown = " ".join(args) if stdin is None else f"{' '.join(args)} <<{stdin!r}"
        raise TopologyError(f"ip {shown}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def list_netns() -> list[str]:
    """Names of all named network namespaces (`ip netns list`)."""
    out = _ip("-j", "netns", "list").strip()
    return [entry["name"] for entry in json.loads(out)] if out else []


def netns_pids(netns: str) -> list[int]:
    """Pids of every process running inside `netns` (`ip netns pids`)."""
    proc = subprocess.run(
        ["ip", "netns", "pids", netns], capture_output=True, text=True, check=False, timeout=10
    )
    return [int(word) for word in proc.stdout.split() if word.isdigit()]


def _kill_namespace_processes(names: Iterable[str], timeout: float = 2.0) -> None:
    """SIGKILL everything inside `names` and wait until the processes are gone."""
    names = list(names)
    deadline = time.monotonic() + timeout
    while True:
        pids = {pid for name in names for pid in netns_pids(name)} - {os.getpid()}
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # Our own children would stay as zombies (and stay listed) until reaped.
        for pid in pids:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.02)


def _delete_netns(names: Iterable[str]) -> list[str]:
    """Kill the processes in `names`, delete the namespaces; return the errors met."""
    names = [name for name in names if name]
    _kill_namespace_processes(names)
    errors = []
    existing = set(list_netns())
    for name in names:
        if name in existing:
            try:
                _ip("netns", "del", name)
            except TopologyError as exc:
                errors.append(str(exc))
    return errors


def cleanup_stale() -> list[str]:
    """Remove `bsc*` namespaces whose creating process is dead; return their names.

    Namespaces of live processes (another concurrent run, or this one) are left alone.
    """
    stale = []
    for name in list_netns():
        match = _NAME_RE.match(name)
        if match is None:
            continue
        if not _pid_alive(int(match.group(1), 36)):
            stale.append(name)
    if stale:
        _delete_netns(stale)
    return stale


def netns_available() -> str | None:
    """None when `ip netns` works here, else the reason why it does not."""
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    try:
        proc = subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, check=False, timeout=10
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`ip netns list` failed: {exc}"
    if proc.returncode != 0:
        return f"`ip netns` unavailable: {proc.stderr.strip()}"
    return None


def require_root() -> None:
    """Skip the calling pytest test, with the reason, unless it can build namespaces here."""
    import pytest  # only tests call this; the module itself works without pytest

    if os.geteuid() != 0:
        pytest.skip("needs root: builds network namespaces, veth pairs and a bridge")
    reason = netns_available()
    if reason is not None:
        pytest.skip(reason)


def wait_ready(proc: subprocess.Popen[str], timeout: float = 5.0, marker: str = "ready") -> None:
    """Block until `proc` prints a line equal to `marker` on its (piped, text) stdout.

    Raises TopologyError if the process exits or stays silent past `timeout`.
    """
    if proc.stdout is None:
        raise TopologyError("wait_ready needs a process started with stdout=PIPE")
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TopologyError(f"{proc.args!r}: no {marker!r} within {timeout}s: {seen!r}")
            if not selector.select(remaining):
                continue
            line = proc.stdout.readline()
            if not line:
                proc.wait(timeout=1)
                raise TopologyError(
                    f"{proc.args!r} exited ({proc.returncode}) before {marker!r}: {seen!r}"
                )
            if line.strip() == marker:
                return
            seen.append(line.rstrip("\n"))


@dataclass
class _Tracked:
    proc: subprocess.Popen[Any]
    files: list[Any] = field(default_factory=list)


class Topology:
    """A client, a load balancer and `real_servers` real servers on one bridge.

    A context manager: `__enter__` builds it (removing what it built if that fails) and
    `__exit__` removes everything, killing every process still running inside its
    namespaces.
    """

    def __init__(
        self,
        real_servers: int = 3,
        *,
        client_extra_addresses: int = 0,
        subnet: str = "198.18.0.0/24",
        ipv6: bool = False,
    ) -> None:
        network = ipaddress.ip_network(subnet)
        if not (isinstance(network, ipaddress.IPv4Network) and network.subnet_of(ALLOWED_NETWORK)):
            raise ValueError(f"subnet {subnet} is outside {ALLOWED_NETWORK} (RFC 2544)")
        if network.prefixlen > 24:
            raise ValueError(f"subnet {subnet} is too small, it needs at least a /24")
        if not 0 <= real_servers <= MAX_REAL_SERVERS:
            raise ValueError(f"real_servers must be 0..{MAX_REAL_SERVERS}, not {real_servers}")
        if not 0 <= client_extra_addresses <= MAX_CLIENT_EXTRA:
            raise ValueError(f"client_extra_addresses must be 0..{MAX_CLIENT_EXTRA}")
        self.network = network
        self.ipv6 = ipv6
        self.prefix = self._unique_prefix()
        self.bridge_netns = f"{self.prefix}-br"
        prefixlen = network.prefixlen
        self.client = Host(
            "client",
            f"{self.prefix}-cl",
            self._address(CLIENT_OFFSET),
            prefixlen=prefixlen,
            extra_addresses=tuple(
                self._address(CLIENT_EXTRA_OFFSET + i) for i in range(client_extra_addresses)
            ),
            address6=self._address6(CLIENT_OFFSET),
            extra_addresses6=tuple(
                a
                for i in range(client_extra_addresses)
                if (a := self._address6(CLIENT_EXTRA_OFFSET + i)) is not None
            ),
        )
        self.lb = Host(
            "lb",
            f"{self.prefix}-lb",
            self._address(LB_OFFSET),
            prefixlen=prefixlen,
            address6=self._address6(LB_OFFSET),
        )
        self.real_servers = [
            Host(
                f"rs{i}",
                f"{self.prefix}-rs{i}",
                self._address(REAL_SERVER_OFFSET + i),
                prefixlen=prefixlen,
                address6=self._address6(REAL_SERVER_OFFSET + i),
            )
            for i in range(1, real_servers + 1)
        ]
        self.workdir: Path | None = None
        self._created: list[str] = []
        self._tracked: list[_Tracked] = []

    # -- naming and addressing -------------------------------------------------------------

    @staticmethod
    def _unique_prefix() -> str:
        existing = {name.split("-", 1)[0] for name in list_netns()}
        for _ in range(100):
            prefix = NAME_PREFIX + _base36(os.getpid(), 5) + _base36(secrets.randbelow(36**2), 2)
            if prefix not in existing:
                return prefix
        raise TopologyError("no free namespace name prefix")

    def _address(self, offset: int) -> str:
        return str(self.network.network_address + offset)

    def _address6(self, offset: int) -> str | None:
        return str(SUBNET6.network_address + offset) if self.ipv6 else None

    def vip(self, n: int = 100) -> str:
        """Address number `n` of the subnet (198.18.0.n): free for the daemon to add as a VIP."""
        if not 30 <= n <= 254:
            raise ValueError("VIPs are .30-.254; lower addresses belong to the topology's hosts")
        return self._address(n)

    def vip6(self, n: int = 100) -> str:
        """IPv6 address number `n` of 2001:2::/64 (ipv6=True topologies): a VIP to add."""
        if not self.ipv6:
            raise ValueError("an IPv6 VIP needs Topology(ipv6=True)")
        if not 30 <= n <= 254:
            raise ValueError("VIPs are ::30-::254 (decimal); lower ones belong to the hosts")
        return str(SUBNET6.network_address + n)

    @property
    def hosts(self) -> list[Host]:
        return [self.client, self.lb, *self.real_servers]

    def route_back_through_lb(self) -> None:
        """Routed NAT: the real servers reach the clients through the lb. Host routes: every
        host shares one subnet, so a default route would never be used for the client."""
        for server in self.real_servers:
            for client in self.client.addresses:
                self.run(server, ["ip", "route", "add", f"{client}/32", "via", self.lb.address])
            for client in self.client.addresses6:
                via = self.lb.address6 or ""
                self.run(server, ["ip", "-6", "route", "add", f"{client}/128", "via", via])

    def host(self, host: Host | str) -> Host:
        """The Host for a Host or a logical name ("client", "lb", "rs2")."""
        if isinstance(host, Host):
            return host
        for candidate in self.hosts:
            if candidate.name == host:
                return candidate
        raise KeyError(f"no host {host!r} in this topology")

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Topology:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _build(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        names = [self.bridge_netns, *(host.netns for host in self.hosts)]
        for name in names:
            _ip("netns", "add", name)
            self._created.append(name)
        # No IPv6 (and so no router solicitations or DAD noise in tcpdump captures), and no
        # forwarding on the bridge host: it only switches frames. An ipv6=True topology keeps
        # IPv6 on its hosts, without router solicitations and without duplicate address
        # detection (an address is usable at once: no test waits for DAD).
        off = ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]
        on = [
            f"net.ipv6.conf.{which}.{key}={value}"
            for which in ("all", "default")
            for key, value in (
                ("disable_ipv6", 0),
                ("accept_dad", 0),
                ("router_solicitations", 0),
                ("accept_ra", 0),
            )
        ]

        def sysctls(name: str) -> str:
            return " ".join(on if self.ipv6 and name != self.bridge_netns else off)

        script = "; ".join(f"ip netns exec {name} sysctl -qw {sysctls(name)}" for name in names)
        subprocess.run(["sh", "-c", script], check=True, capture_output=True, timeout=30)

        batch = [
            "link set lo up",
            "link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
            "link set br0 up",
        ]
        for host in self.hosts:
            port = f"v-{host.name}"
            batch += [
                f"link add {port} type veth peer name {host.interface} netns {host.netns}",
                f"link set {port} master br0 up",
            ]
        _ip("-n", self.bridge_netns, "-batch", "-", stdin="\n".join(batch) + "\n")
        for host in self.hosts:
            lines = ["link set lo up"]
            lines += [
                f"address add {address}/{host.prefixlen} dev {host.interface}"
                for address in host.addresses
            ]
            lines += [
                f"address add {address}/{SUBNET6.prefixlen} dev {host.interface} nodad"
                for address in host.addresses6
            ]
            lines.append(f"link set {host.interface} up")
            _ip("-n", host.netns, "-batch", "-", stdin="\n".join(lines) + "\n")

    def close(self) -> None:
        """Remove everything: tracked processes, all processes in the namespaces, namespaces."""
        for tracked in self._tracked:
            self._stop(tracked)
        self._tracked.clear()
        errors = _delete_netns(self._created) if self._created else []
        self._created.clear()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        if errors:
            raise TopologyError("; ".join(errors))

    @staticmethod
    def _stop(tracked: _Tracked, timeout: float = 1.0) -> None:
        proc = tracked.proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        for stream in (proc.stdin, proc.stdout, proc.stderr, *tracked.files):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    # -- running things inside hosts -------------------------------------------------------

    def _argv(self, host: Host | str, argv: Sequence[str | os.PathLike[str]]) -> list[str]:
        return ["ip", "netns", "exec", self.host(host).netns, *map(os.fspath, argv)]

    def run(
        self,
        host: Host | str,
        argv: Sequence[str | os.PathLike[str]],
        **kw: Any,
    ) -> subprocess.CompletedProcess[Any]:
        """Run `argv` inside `host` to completion (`ip netns exec`).

        Defaults: capture_output=True, text=True, check=True, timeout=60; override any.
        """
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("check", True)
        kw.setdefault("timeout", 60)
        return subprocess.run(self._argv(host, argv), **kw)

    def popen(
        self,
        host: Host | str,
        argv: Sequence[str | os.PathLike[str]],
        **kw: Any,
    ) -> subprocess.Popen[Any]:
        """Start `argv` inside `host` in the background; it is killed on exit at the latest."""
        proc: subprocess.Popen[Any] = subprocess.Popen(self._argv(host, argv), **kw)
        self._tracked.append(_Tracked(proc))
        return proc

    def stop(self, proc: subprocess.Popen[Any], timeout: float = 1.0) -> None:
        """Stop a process started with `popen` now (SIGTERM, then SIGKILL) and close its pipes."""
        for tracked in self._tracked:
            if tracked.proc is proc:
                self._stop(tracked, timeout)
                self._tracked.remove(tracked)
                return
        raise KeyError(f"{proc.args!r} was not started by this topology")

    # -- the test tools --------------------------------------------------------------------

    def start_real_server(
        self,
        host: Host | str,
        *args: str,
        port: int = 80,
        bind: str | None = None,
        ready_timeout: float = 5.0,
    ) -> subprocess.Popen[str]:
        """Start tests/tools/realserver.py inside `host` and wait until it listens.

        `args` go to realserver.py as they are (e.g. "--mode", "banner", "--banner", "220 x").
        Its stderr goes to `workdir/<name>-<port>.log`.
        """
        started = self._spawn_real_server(self.host(host), args, port, bind)
        try:
            wait_ready(started, ready_timeout)
        except TopologyError as exc:
            raise TopologyError(f"{exc}; log: {self._log_text(started)}") from exc
        return started

    def start_real_servers(
        self, *args: str, port: int = 80, ready_timeout: float = 5.0
    ) -> list[subprocess.Popen[str]]:
        """Start realserver.py on every real server (in parallel) and wait until all listen."""
        procs = [self._spawn_real_server(host, args, port, None) for host in self.real_servers]
        for proc in procs:
            try:
                wait_ready(proc, ready_timeout)
            except TopologyError as exc:
                raise TopologyError(f"{exc}; log: {self._log_text(proc)}") from exc
        return procs

    def _spawn_real_server(
        self, host: Host, args: Sequence[str], port: int, bind: str | None
    ) -> subprocess.Popen[str]:
        if self.workdir is None:
            raise TopologyError("the topology is not built: use it as a context manager")
        log_path = self.workdir / f"{host.name}-{port}-{len(self._tracked)}.log"
        log = log_path.open("w")
        argv = [
            sys.executable,
            str(REALSERVER),
            "--bind",
            bind or ",".join((host.address, *host.addresses6[:1])),  # both in an ipv6 one
            "--port",
            str(port),
            "--name",
            host.name,
            *args,
        ]
        proc = self.popen(host, argv, stdout=subprocess.PIPE, stderr=log, text=True)
        self._tracked[-1].files.append(log)
        proc.log_path = log_path  # type: ignore[attr-defined]
        return proc

    @staticmethod
    def _log_text(proc: subprocess.Popen[str]) -> str:
        path = getattr(proc, "log_path", None)
        try:
            return path.read_text()[-2000:] if path else ""
        except OSError:
            return ""

    def run_client(
        self, *args: str, host: Host | str | None = None, timeout: float = 120
    ) -> dict[str, Any]:
        """Run tests/tools/client.py inside `host` (default: client) and return its JSON."""
        proc = self.run(
            host or self.client, [sys.executable, str(CLIENT), *args], check=False, timeout=timeout
        )
        return _parse_client_output(proc.args, proc.returncode, proc.stdout, proc.stderr)

    def start_client(self, *args: str, host: Host | str | None = None) -> subprocess.Popen[str]:
        """Start client.py in the background (e.g. `--duration 30 --stop-file F`)."""
        return self.popen(
            host or self.client,
            [sys.executable, str(CLIENT), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish_client(self, proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
        """Wait for a client from `start_client` to end and return its JSON."""
        stdout, stderr = proc.communicate(timeout=timeout)
        return _parse_client_output(proc.args, proc.returncode, stdout, stderr)

    def wait_tcp(self, host: Host | str, address: str, port: int, timeout: float = 10.0) -> None:
        """Wait until `address:port` accepts TCP connections as seen from inside `host`."""
        code = (
            "import socket,sys,time\n"
            "d=time.monotonic()+float(sys.argv[3])\n"
            "while True:\n"
            "  try:\n"
            "    socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=0.5).close()\n"
            "    break\n"
            "  except OSError as e:\n"
            "    if time.monotonic()>d: sys.exit(f'{sys.argv[1]}:{sys.argv[2]}: {e}')\n"
            "    time.sleep(0.02)\n"
        )
        proc = self.run(
            host,
            [sys.executable, "-c", code, address, str(port), str(timeout)],
            check=False,
            timeout=timeout + 10,
        )
        if proc.returncode != 0:
            raise TopologyError(f"not reachable from {self.host(host).name}: {proc.stderr}")


def _parse_client_output(args: Any, returncode: int, stdout: str, stderr: str) -> dict[str, Any]:
    try:
        result: dict[str, Any] = json.loads(stdout)
    except json.JSONDecodeError as exc:
        raise TopologyError(
            f"client.py printed no JSON (exit {returncode}): {stdout[-500:]!r} {stderr[-2000:]}"
        ) from exc
    return result
