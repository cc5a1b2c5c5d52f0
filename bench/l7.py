"""L7 benchmark: Bascule against direct access, a hand-written HAProxy and nginx (issue 2).

One command, as root, from the repository root::

    .venv/bin/python bench/l7.py                 # 3 rounds x 5 s, both workloads
    .venv/bin/python bench/l7.py --rounds 5 --duration 10 --pin none

It builds a throwaway network (tests/integration/netns.py: a client, a load balancer and
three real servers in their own namespaces, 198.18.0.0/24) and measures, with ``wrk
--latency``, requests per second and p99 latency of four targets, side by side:

    direct    the client straight to one real server (nginx ``return 200``)
    bascule   a real ``bascule run`` daemon in the lb namespace; the virtual service over the
              three real servers is made with the CLI (``vs add``, ``rs add``) as a user would.
              ``rs add`` puts a server in at runtime (HAProxy's ``add server``) and a deferred
              reload makes it an ordinary one seconds later (HAProxy 2.6 reuses no idle
              connection to a runtime-added server): the bench waits, through the status,
              until no reload is pending before it measures
    haproxy   the same haproxy binary with a short hand-written config (``balance
              roundrobin``, ``option http-keep-alive``, ``option forwardfor``, ``check``)
    nginx     nginx as a reverse proxy: ``upstream`` with ``keepalive``, HTTP/1.1 upstream,
              X-Forwarded-For, ``worker_processes auto``
    haproxy-log, nginx-log
              the same two, logging every request as Bascule does by default (the fairness
              check): the hand-written config plus ``option httplog`` to a pipe read by
              Bascule's own receiver (Bascule's transport, ``log fd@3``), and nginx with its
              default ``access_log`` (the combined format, to a file) buffered
              (``buffer=64k flush=1s``). ``haproxy`` and ``nginx`` log nothing, as before

under two workloads: ``keepalive`` (wrk's default: persistent connections) and ``close``
(``Connection: close``: one new TCP connection per request). Runs are interleaved
(direct, bascule, haproxy, nginx, then again, rotating who goes first) and each figure is the
median of the rounds, because the machine is small and shared; each proxy's CPU time per
request (its process tree's user + system time) is counted too. Results go to
``bench/results/l7-<time>.json`` (git-ignored) and a table is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from netns import Topology, cleanup_stale, netns_available  # noqa: E402

from bascule.engines.haproxy.logs import REQUEST_LOG_FD, log_view  # noqa: E402
from bascule.model import parse_document  # noqa: E402

BASCULE = str(Path(sys.executable).with_name("bascule"))
RESULTS_DIR = ROOT / "bench" / "results"
TARGETS = ("direct", "bascule", "haproxy", "nginx", "haproxy-log", "nginx-log")
WORKLOADS = {
    "keepalive": (),
    "close": ("-H", "Connection: close"),
}
VIP_OCTET = 100
HAPROXY_PORT = 8081
NGINX_PORT = 8082
HAPROXY_LOG_PORT = 8083
NGINX_LOG_PORT = 8084
# nginx's default access log (the combined format, to a file), buffered in each worker
NGINX_ACCESS_LOG = "access_log {prefix}/access.log combined buffer=64k flush=1s"
# Every process of the bench runs in a session of its own, as separate services or hosts
# would. With kernel.sched_autogroup_enabled=1 (Debian's default) the scheduler shares CPU
# between sessions first, then between the tasks of a session: Bascule starts HAProxy in its
# own session (it must outlive the daemon), so a proxy left in the bench's session would
# share one autogroup with wrk and the real servers and get a different share of the CPUs.
OWN_SESSION: dict[str, Any] = {"start_new_session": True}
# The daemon's log target as engines/haproxy/logs.py renders it (``log fd@3 ...``).
LOG_TARGET = log_view(parse_document({}), True).global_lines[0]
# Per-namespace sysctls: many short connections per second (the "close" workload) would
# otherwise run the client and the lb out of ephemeral ports (TIME_WAIT) within seconds.
SYSCTLS = (
    "net.ipv4.ip_local_port_range=1024 65000",
    "net.ipv4.tcp_tw_reuse=1",
    "net.core.somaxconn=4096",
    "net.ipv4.tcp_max_syn_backlog=4096",
)


# --------------------------------------------------------------------------- configs


# Bascule's request log receiver (daemon/request_logs.py) in a process of its own, as the daemon
# runs it: argv the FIFO and the log directory; prints "ready" once it reads the FIFO.
PIPE_READER = """
import asyncio, sys
from pathlib import Path
from bascule.daemon.request_logs import LogPipe, RequestLogFile, listen

async def main() -> None:
    # the daemon's default cap (settings.py request_log_max_mb, request_log_keep)
    file = RequestLogFile(Path(sys.argv[2]) / "requests.log", max_bytes=50 << 20, keep=5)
    await listen(LogPipe(Path(sys.argv[1])), file)
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def start_reader(script: str, *argv: str) -> subprocess.Popen[str]:
    """A request log reader: ``script`` run by Python in a session of its own, with ``argv``,
    once it printed "ready"."""
    reader = subprocess.Popen(
        [sys.executable, "-c", script, *argv], stdout=subprocess.PIPE, text=True, **OWN_SESSION
    )
    if reader.stdout is None or reader.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the request log reader {argv} did not start")
    return reader


def start_pipe_reader(fifo: Path, logs: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Bascule's request log receiver reading ``fifo`` into ``logs``, and the ``Popen``
    keywords that start an HAProxy holding the FIFO's write end as Bascule's does
    (``log fd@3``, engines/haproxy/logs.py)."""
    reader = start_reader(PIPE_READER, str(fifo), str(logs))
    write_fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)

    def hold() -> None:  # in the child, before its exec
        os.dup2(write_fd, REQUEST_LOG_FD)

    return reader, {"pass_fds": (REQUEST_LOG_FD,), "preexec_fn": hold}


def real_server_nginx(name: str, address: str, prefix: Path) -> str:
    """A real server that is as cheap as it gets: one nginx worker, a fixed small answer."""
    return f"""\
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen {address}:80 backlog=4096;
        location / {{
            default_type text/plain;
            return 200 "{name}\\n";
        }}
    }}
}}
"""


def start_real_server_nginx(topology: Topology, work: Path) -> None:
    """The bench network's tuning on every host and nginx ``return 200`` on every real server,
    unpinned (for the benches that compare HAProxy configurations with one another)."""
    for host in topology.hosts:
        for sysctl in SYSCTLS:
            topology.run(host, ["sysctl", "-qw", sysctl])
    for host in topology.real_servers:
        prefix = work / host.name
        prefix.mkdir()
        (prefix / "nginx.conf").write_text(real_server_nginx(host.name, host.address, prefix))
        argv = ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf")]
        topology.popen(host, argv, stdout=subprocess.DEVNULL, **OWN_SESSION)
    for host in topology.real_servers:
        topology.wait_tcp("client", host.address, 80)


def hand_haproxy(address: str, servers: Sequence[str], *, logs: bool = False) -> str:
    """What a person writes for "round robin over these three, keep-alive, X-F-F"; with
    ``logs``, every request logged (``option httplog``) to the pipe Bascule's HAProxy writes
    to (its target line, engines/haproxy/logs.py)."""
    lines = [
        "global",
        *([f"    {LOG_TARGET}"] if logs else []),
        "    maxconn 8000",
        "",
        "defaults",
        "    mode http",
        "    timeout connect 5s",
        "    timeout client 30s",
        "    timeout server 30s",
        "    option http-keep-alive",
        "    option forwardfor",
        *(["    log global", "    option httplog"] if logs else []),
        "",
        "listen web",
        f"    bind {address}:{HAPROXY_LOG_PORT if logs else HAPROXY_PORT}",
        "    balance roundrobin",
    ]
    lines += [f"    server rs{i} {server}:80 check" for i, server in enumerate(servers, 1)]
    return "\n".join(lines) + "\n"


def proxy_nginx_head(prefix: Path, access_log: str = "access_log off") -> str:
    """The start of a proxying nginx's configuration, up to inside ``http {`` (the L7 and
    TLS benches' nginx), with its ``access_log`` directive."""
    return f"""\
worker_processes auto;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    {access_log};
    keepalive_requests 100000;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
"""


def proxy_nginx(address: str, servers: Sequence[str], prefix: Path, *, logs: bool = False) -> str:
    """nginx as a competent admin sets it up as a reverse proxy; with ``logs``, its default
    access log, buffered (``NGINX_ACCESS_LOG``)."""
    upstream = "\n".join(f"        server {server}:80;" for server in servers)
    access_log = NGINX_ACCESS_LOG.format(prefix=prefix) if logs else "access_log off"
    return (
        proxy_nginx_head(prefix, access_log)
        + f"""\
    upstream web {{
{upstream}
        keepalive 64;
        keepalive_requests 100000;
    }}
    server {{
        listen {address}:{NGINX_LOG_PORT if logs else NGINX_PORT} backlog=4096;
        location / {{
            proxy_pass http://web;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"""
    )


# --------------------------------------------------------------------------- wrk


@dataclass(frozen=True, kw_only=True)
class Run:
    """One wrk run: a target under a workload in one round."""

    target: str
    workload: str
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    non_2xx: int
    # CPU time the proxy's processes spent per request (user + system, microseconds): on a
    # shared machine a steadier figure than requests/s; 0 where the bench does not measure it
    cpu_us: float = 0.0
    # CPU time of the whole machine per request (every process, interrupt and softirq, from
    # /proc/stat), and its softirq part alone, in microseconds; 0 where not measured (l4.py)
    machine_us: float = 0.0
    softirq_us: float = 0.0
    # CPU time per request (microseconds) under each kernel function named, inclusive of what
    # it calls, from ``perf record -a -g``; empty where not recorded (l4.py --perf)
    kernel_us: dict[str, float] = field(default_factory=dict)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unknown wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, float]:
    """Requests/sec, p50 and p99 (ms), requests, socket errors and non-2xx from wrk's text."""

    def find(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, output, re.MULTILINE)

    rps = find(r"^Requests/sec:\s+([\d.]+)")
    p50 = find(r"^\s+50%\s+(\S+)")
    p99 = find(r"^\s+99%\s+(\S+)")
    total = find(r"^\s+(\d+) requests in")
    if not (rps and p50 and p99 and total):
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    errors = find(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
    non_2xx = find(r"Non-2xx or 3xx responses: (\d+)")
    return {
        "rps": float(rps.group(1)),
        "p50_ms": _ms(p50.group(1)),
        "p99_ms": _ms(p99.group(1)),
        "requests": int(total.group(1)),
        "errors": sum(int(n) for n in errors.groups()) if errors else 0,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


# --------------------------------------------------------------------------- the bench


@dataclass(frozen=True, kw_only=True)
class Pinning:
    """CPU lists (taskset -c) for the load generator, the proxies and the real servers."""

    wrk: str | None
    proxy: str | None
    servers: str | None

    @classmethod
    def named(cls, name: str) -> Pinning:
        if name == "none":
            return cls(wrk=None, proxy=None, servers=None)
        if name == "split":
            # wrk and the (cheap) real servers share CPU 0, the proxy under test has CPU 1.
            return cls(wrk="0", proxy="1", servers="0")
        raise ValueError(f"unknown pinning {name!r}")


def cpu_ticks(root: int) -> int:
    """User + system clock ticks of ``root`` and every process under it (HAProxy's master and
    workers, nginx's master and workers), threads included; a process gone counts nothing."""
    total = 0
    pending = [root]
    while pending:
        pid = pending.pop()
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (proc(5))
            for task in Path(f"/proc/{pid}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
    return total


class WrkCpu(NamedTuple):
    """One ``wrk_cpu`` run: the proxy's CPU per request (µs), requests/s, requests served."""

    cpu: float
    rate: float
    requests: int


def wrk_cpu(
    topology: Topology, pid: int, url: str, duration: float, extra: Sequence[str] = ()
) -> WrkCpu:
    """``wrk -t2 -c50`` from the client to ``url`` for ``duration`` seconds: the proxy
    ``pid``'s CPU per request (µs, its process tree's user + system time) and requests/s."""
    before = cpu_ticks(pid)
    wrk = ["wrk", "-t2", "-c50", f"-d{duration:g}s", *extra, url]
    output = topology.run("client", wrk, **OWN_SESSION).stdout
    ticks = cpu_ticks(pid) - before
    found = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if found is None or rate is None:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    seconds = ticks / os.sysconf("SC_CLK_TCK")
    requests = int(found.group(1))
    return WrkCpu(seconds * 1e6 / requests, float(rate.group(1)), requests)


def _pinned(cpus: str | None, argv: Sequence[str]) -> list[str]:
    return ["taskset", "-c", cpus, *argv] if cpus else list(argv)


class BasculeBench:
    """What the L7 and L4 benches share: the Bascule daemon's CLI and teardown, and wrk.

    A subclass sets ``workloads`` (name -> extra wrk arguments) and, in its ``__init__``,
    ``topology``, ``args``, ``workdir``, ``urls``, ``bascule_dir`` and ``bascule``.
    """

    workloads: dict[str, tuple[str, ...]]
    topology: Topology
    args: argparse.Namespace
    workdir: Path
    urls: dict[str, str]
    bascule_dir: Path
    bascule: subprocess.Popen[str] | None

    def pinned(self, argv: list[str]) -> list[str]:
        """wrk's command line, bound to CPUs where the bench pins them."""
        return argv

    def _bascule_answers(self) -> bool:
        path = self.bascule_dir / "bascule.sock"
        if not path.exists():
            return False
        with socket.socket(socket.AF_UNIX) as sock:
            try:
                sock.connect(str(path))
            except OSError:
                return False
        return True

    def _bascule_log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.workdir / "bascule.log").read_text()[-4000:]
        return ""

    def _cli(self, *args: str) -> str:
        proc = subprocess.run(
            [BASCULE, "--data-dir", str(self.bascule_dir), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"bascule {' '.join(args)}: {proc.stdout}{proc.stderr}\n{self._bascule_log()}"
            )
        return proc.stdout

    def start_daemon(self, cpus: str | None = None) -> None:
        """``bascule run`` in the lb namespace, in a session of its own; wait for its API."""
        log = (self.workdir / "bascule.log").open("w")
        try:
            argv = [BASCULE, "--data-dir", str(self.bascule_dir), "run"]
            self.bascule = self.topology.popen(
                "lb", _pinned(cpus, argv), stdout=log, stderr=subprocess.STDOUT, **OWN_SESSION
            )
        finally:
            log.close()
        deadline = time.monotonic() + 30
        while not self._bascule_answers():
            if self.bascule.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bascule run did not start: {self._bascule_log()}")
            time.sleep(0.1)

    def teardown(self) -> None:
        if self.bascule is not None and self.bascule.poll() is None:
            self.bascule.terminate()
            try:
                self.bascule.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.bascule.kill()
                self.bascule.wait(timeout=5)
        # Whatever HAProxy the daemon left behind dies with the lb namespace (Topology.close).
        shutil.rmtree(self.bascule_dir, ignore_errors=True)

    # -- measuring -----------------------------------------------------------------------

    def proxy_pid(self, target: str) -> int | None:
        """The root process of ``target``'s proxy, to count its CPU time (None: not counted)."""
        return None

    def url(self, target: str, workload: str) -> str:
        """What wrk asks of ``target`` under ``workload`` (the TLS bench: a port per key)."""
        return self.urls[target]

    def wrk(self, target: str, workload: str, duration: float) -> dict[str, float]:
        argv = [
            "wrk",
            "--latency",
            "-t",
            str(self.args.threads),
            "-c",
            str(self.args.connections),
            "-d",
            f"{duration:g}s",
            "--timeout",
            "5s",
            *self.workloads[workload],
            self.url(target, workload),
        ]
        pid = self.proxy_pid(target)
        before = cpu_ticks(pid) if pid else 0
        proc = self.topology.run(
            "client", self.pinned(argv), timeout=duration + 60, check=False, **OWN_SESSION
        )
        if proc.returncode != 0:
            raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
        figures = parse_wrk(proc.stdout)
        if pid and figures["requests"]:
            spent = cpu_ticks(pid) - before
            figures["cpu_us"] = spent * 1e6 / os.sysconf("SC_CLK_TCK") / figures["requests"]
        return figures

    def measure(self) -> list[Run]:
        """Every target under every workload, ``rounds`` times, the order rotating."""
        targets, workloads = self.args.targets, self.args.workloads
        width = max(len(w) for w in workloads)
        for target in targets:  # warm up: pools, caches, neighbours, page faults
            for workload in workloads:
                self.wrk(target, workload, 1)
        runs = []
        for round_ in range(self.args.rounds):
            for workload in workloads:
                # Rotate who goes first so no target always follows the same neighbour.
                shift = round_ % len(targets)
                for target in (*targets[shift:], *targets[:shift]):
                    figures = self.wrk(target, workload, self.args.duration)
                    run = Run(target=target, workload=workload, round=round_ + 1, **figures)
                    print(
                        f"  round {run.round} {workload:{width}} {target:8} {run.rps:10.0f} req/s"
                        f"  p99 {run.p99_ms:7.2f} ms  errors {run.errors} non-2xx {run.non_2xx}",
                        file=sys.stderr,
                    )
                    runs.append(run)
        return runs


class Bench(BasculeBench):
    workloads = WORKLOADS

    def pinned(self, argv: list[str]) -> list[str]:
        return _pinned(self.pin.wrk, argv)

    def __init__(self, topology: Topology, args: argparse.Namespace) -> None:
        self.topology = topology
        self.args = args
        self.pin = Pinning.named(args.pin)
        if topology.workdir is None:
            raise RuntimeError("the topology is not built")
        self.workdir = topology.workdir
        self.servers = [host.address for host in topology.real_servers]
        self.vip = topology.vip(VIP_OCTET)
        self.urls = {
            "direct": f"http://{self.servers[0]}/",
            "bascule": f"http://{self.vip}/",
            "haproxy": f"http://{topology.lb.address}:{HAPROXY_PORT}/",
            "nginx": f"http://{topology.lb.address}:{NGINX_PORT}/",
            "haproxy-log": f"http://{topology.lb.address}:{HAPROXY_LOG_PORT}/",
            "nginx-log": f"http://{topology.lb.address}:{NGINX_LOG_PORT}/",
        }
        self.configs: dict[str, str] = {}
        self.pids: dict[str, int] = {}  # the hand-written proxies (ip netns exec execs them)
        self.pipe_reader: subprocess.Popen[str] | None = None  # haproxy-log's log reader
        self.bascule_dir = Path(tempfile.mkdtemp(prefix="bsc-bench-", dir="/tmp"))
        self.bascule: subprocess.Popen[str] | None = None

    # -- setup ---------------------------------------------------------------------------

    def setup(self) -> None:
        for host in self.topology.hosts:
            for sysctl in SYSCTLS:
                self.topology.run(host, ["sysctl", "-qw", sysctl])
        for host in self.topology.real_servers:
            prefix = self.workdir / host.name
            text = real_server_nginx(host.name, host.address, prefix)
            self._start_nginx(host.name, prefix, text, self.pin.servers)
        for address in self.servers:
            self.topology.wait_tcp("client", address, 80)
        targets = self.args.targets
        for target, logs in (("haproxy", False), ("haproxy-log", True)):
            if target in targets:
                self._start_hand_haproxy(target, logs=logs)
        for target, logs, port in (
            ("nginx", False, NGINX_PORT),
            ("nginx-log", True, NGINX_LOG_PORT),
        ):
            if target in targets:
                prefix = self.workdir / f"{target}-proxy"
                text = proxy_nginx(self.topology.lb.address, self.servers, prefix, logs=logs)
                self.configs[target] = text
                self._start_nginx("lb", prefix, text, self.pin.proxy)
                self.topology.wait_tcp("client", self.topology.lb.address, port)
                self.pids[target] = int((prefix / "nginx.pid").read_text().split()[0])
        if "bascule" in targets:
            self._start_bascule()

    def _start_nginx(self, host: str, prefix: Path, text: str, cpus: str | None) -> None:
        prefix.mkdir(parents=True)
        conf = prefix / "nginx.conf"
        conf.write_text(text)
        argv = ["nginx", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
        self.topology.popen(host, _pinned(cpus, argv), stdout=subprocess.DEVNULL, **OWN_SESSION)

    def _start_hand_haproxy(self, target: str, *, logs: bool) -> None:
        """The hand-written HAProxy; with ``logs``, holding the write end of a pipe read by
        Bascule's request log receiver, as Bascule's HAProxy does."""
        text = hand_haproxy(self.topology.lb.address, self.servers, logs=logs)
        self.configs[target] = text
        conf = self.workdir / f"hand-{target}.cfg"
        conf.write_text(text)
        holding: dict[str, Any] = {}
        if logs:
            fifo, directory = self.workdir / "requests.fifo", self.workdir / "hand-logs"
            self.pipe_reader, holding = start_pipe_reader(fifo, directory)
        self.topology.run("lb", ["haproxy", "-c", "-q", "-f", str(conf)], **holding)
        argv = ["haproxy", "-db", "-f", str(conf)]
        proxy = self.topology.popen(
            "lb",
            _pinned(self.pin.proxy, argv),
            stdout=subprocess.DEVNULL,
            **OWN_SESSION,
            **holding,
        )
        self.pids[target] = proxy.pid
        port = HAPROXY_LOG_PORT if logs else HAPROXY_PORT
        self.topology.wait_tcp("client", self.topology.lb.address, port)

    def proxy_pid(self, target: str) -> int | None:
        if target == "bascule":  # HAProxy's master (its workers are its children)
            with contextlib.suppress(OSError, ValueError, IndexError):
                return int((self.bascule_dir / "haproxy" / "haproxy.pid").read_text().split()[0])
            return None
        return self.pids.get(target)

    def teardown(self) -> None:
        super().teardown()
        if self.pipe_reader is not None:
            self.pipe_reader.terminate()
            self.pipe_reader.wait(timeout=30)

    def _start_bascule(self) -> None:
        self.start_daemon(self.pin.proxy)
        # Configured as a user would, through the CLI.
        self._cli(
            "vs",
            "add",
            "web",
            "--address",
            self.vip,
            "--port",
            "80",
            "--type",
            "http",
            "--scheduler",
            "round_robin",
            "--check",
            "http",
        )
        for address in self.servers:
            self._cli("rs", "add", "web", f"{address}:80")
        deadline = time.monotonic() + 60
        while True:
            status = json.loads(self._cli("--json", "status"))
            services = status["virtual_services"]
            # the servers added at runtime made ordinary ones by the deferred reload
            pending = (status.get("engine") or {}).get("haproxy", {}).get("reload_pending")
            if services and services[0]["status"] == "up" and pending is None:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the virtual service is not up and settled: {status}")
            time.sleep(0.2)
        self.configs["bascule"] = (self.bascule_dir / "haproxy" / "haproxy.cfg").read_text()


# --------------------------------------------------------------------------- reporting


def summarize(
    runs: Sequence[Run], keys: Sequence[str] = ("rps", "p50_ms", "p99_ms")
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per workload and target: medians of ``keys``, and the spread between rounds
    ((max-min)/median)."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for run in runs:
        summary.setdefault(run.workload, {}).setdefault(run.target, {"runs": []})
        summary[run.workload][run.target]["runs"].append(run)
    for targets in summary.values():
        for entry in targets.values():
            rounds: list[Run] = entry.pop("runs")
            for key in keys:
                values = [getattr(run, key) for run in rounds]
                median = statistics.median(values)
                entry[key] = median
                entry[f"{key}_rounds"] = values
                entry[f"{key}_spread"] = (max(values) - min(values)) / median if median else 0.0
            entry["errors"] = sum(run.errors for run in rounds)
            entry["non_2xx"] = sum(run.non_2xx for run in rounds)
    return summary


RATIOS = (
    ("bascule", "direct"),
    ("haproxy", "direct"),
    ("nginx", "direct"),
    ("bascule", "haproxy"),
    ("bascule", "nginx"),
    # the fairness check: the two peers logging every request, as Bascule does by default
    ("bascule", "haproxy-log"),
    ("bascule", "nginx-log"),
)


def table(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = []
    for workload, targets in summary.items():
        lines.append(f"\n{workload} (median of rounds; spread = (max-min)/median)")
        lines.append(
            f"  {'target':<12}{'req/s':>10}{'spread':>8}{'p99 ms':>9}{'spread':>8}{'errors':>8}"
        )
        for target, entry in targets.items():
            lines.append(
                f"  {target:<12}{entry['rps']:>10.0f}{entry['rps_spread']:>8.0%}"
                f"{entry['p99_ms']:>9.2f}{entry['p99_ms_spread']:>8.0%}"
                f"{entry['errors'] + entry['non_2xx']:>8}"
            )
        for a, b in RATIOS:
            if a in targets and b in targets:
                rps = targets[a]["rps"] / targets[b]["rps"]
                p99 = targets[a]["p99_ms"] / targets[b]["p99_ms"]
                lines.append(f"  {a + ' / ' + b:<22} req/s x{rps:5.2f}   p99 x{p99:5.2f}")
    return "\n".join(lines)


def cpu_table(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    """CPU time of each proxy per request (median of rounds): steadier than requests/s when
    other work shares the machine, since it counts what the proxy itself spent."""
    lines = ["\nproxy CPU per request, microseconds (user + system, median of rounds)"]
    for workload, targets in summary.items():
        measured = {t: e for t, e in targets.items() if e.get("cpu_us")}
        cells = "  ".join(
            f"{t} {e['cpu_us']:.1f} ({e['cpu_us_spread']:.0%})" for t, e in measured.items()
        )
        lines.append(f"  {workload:<16}{cells}")
        if "bascule" in measured:
            for other, entry in measured.items():
                if other != "bascule":
                    ratio = entry["cpu_us"] / measured["bascule"]["cpu_us"]
                    lines.append(
                        f"    {other} / bascule x{ratio:5.2f} (above 1: Bascule spends less)"
                    )
    return "\n".join(lines)


def _first_line(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return lines[0] if lines else ""


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def environment() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "loadavg": os.getloadavg(),
        "haproxy": _first_line("haproxy", "-v"),
        "nginx": _first_line("nginx", "-v"),
        "wrk": _first_line("wrk", "--version"),
        "git": _first_line("git", "-C", str(ROOT), "describe", "--always", "--dirty"),
    }


# --------------------------------------------------------------------------- main


def bench_arguments(
    description: str, targets: Sequence[str], workloads: Sequence[str]
) -> argparse.ArgumentParser:
    """The options every wrk bench takes (rounds, duration, wrk's, the subsets, --out)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=50, help="wrk -c")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t")
    parser.add_argument(
        "--targets",
        type=lambda s: tuple(s.split(",")),
        default=tuple(targets),
        help=f"comma-separated subset of {','.join(targets)}",
    )
    parser.add_argument(
        "--workloads",
        type=lambda s: tuple(s.split(",")),
        default=tuple(workloads),
        help=f"comma-separated subset of {','.join(workloads)}",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    return parser


def parse_selection(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    targets: Sequence[str],
    workloads: Sequence[str],
) -> argparse.Namespace:
    args = parser.parse_args(argv)
    for name in args.targets:
        if name not in targets:
            parser.error(f"unknown target {name!r}")
    for name in args.workloads:
        if name not in workloads:
            parser.error(f"unknown workload {name!r}")
    return args


def preflight(script: str, tools: Sequence[str]) -> None:
    """Exit with the reason unless root, namespaces and ``tools`` are there; then remove the
    namespaces a crashed run left."""
    if os.geteuid() != 0:
        sys.exit(f"{script} needs root: it builds network namespaces")
    reason = netns_available()
    if reason is not None:
        sys.exit(reason)
    for tool in tools:
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed")
    cleanup_stale()


def write_report(
    args: argparse.Namespace,
    *,
    kind: str,
    started: datetime.datetime,
    environment: dict[str, Any],
    summary: dict[str, dict[str, dict[str, Any]]],
    runs: Sequence[Run],
    configs: dict[str, str],
) -> Path:
    """Everything about one bench run as ``<out>/<kind>-<time>.json``; its path."""
    report = {
        "started": started.isoformat(timespec="seconds"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "environment": environment,
        "loadavg_after": os.getloadavg(),
        "summary": summary,
        "runs": [asdict(run) for run in runs],
        "configs": configs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{kind}-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = bench_arguments(__doc__.split("\n\n")[0], TARGETS, tuple(WORKLOADS))
    parser.add_argument(
        "--pin",
        choices=("none", "split"),
        default="none",
        help="none: let the scheduler place everything (default); split: wrk and the real "
        "servers on CPU 0, the proxy under test on CPU 1",
    )
    return parse_selection(parser, argv, TARGETS, tuple(WORKLOADS))


@contextlib.contextmanager
def _bench(args: argparse.Namespace) -> Iterator[Bench]:
    with Topology(real_servers=3) as topology:
        bench = Bench(topology, args)
        try:
            bench.setup()
            yield bench
        finally:
            bench.teardown()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    preflight("bench/l7.py", ("wrk", "nginx", "haproxy", "taskset"))
    started = datetime.datetime.now(datetime.UTC)
    env_before = environment()
    print(
        f"{args.rounds} rounds x {args.duration:g} s, wrk -t{args.threads} "
        f"-c{args.connections}, pinning {args.pin}, load {env_before['loadavg']}",
        file=sys.stderr,
    )
    with _bench(args) as bench:
        runs = bench.measure()
        configs = bench.configs
    summary = summarize(runs, keys=("rps", "p50_ms", "p99_ms", "cpu_us"))
    path = write_report(
        args,
        kind="l7",
        started=started,
        environment=env_before,
        summary=summary,
        runs=runs,
        configs=configs,
    )
    print(table(summary))
    print(cpu_table(summary))
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
