"""What each of Bascule's HTTP directives costs a request, in HAProxy's CPU time and requests/s.

One command, as root, from the repository root::

    .venv/bin/python bench/directives.py                     # TLS, keep-alive, 4 rounds x 3 s
    .venv/bin/python bench/directives.py --rounds 6
    .venv/bin/python bench/directives.py --http --rounds 5   # plain HTTP (the L7 bench's A/B)
    .venv/bin/python bench/directives.py --http --workload close
    .venv/bin/python bench/directives.py --groups request-log,request-log-ring --rounds 5

The L7 and TLS benches (bench/l7.py, bench/tls.py) compare Bascule's HAProxy with a hand-written
one and nginx. This finds where a difference comes from: in the L7 bench's network (real
servers with nginx ``return 200``), several HAProxy instances run side by side, each the
hand-written configuration of those benches (TLS: bench/tls.py's ``bind`` line; ``--http``:
plain HTTP) plus one group of the directives Bascule renders for a default ``type: http`` (or
``https``) service, and one with all of them. ``request-log`` is the request logs, on by
default, to a pipe read by Bascule's own receiver, as the daemon does; the other
``request-log-*`` groups are alternatives to it (not in ``all``): ``request-log-ring``, the
lines through a ``ring`` whose forwarder sends them to a unix stream socket (octet-counted
frames) read in batches by a stand-in for the daemon; ``request-log-short``, the pipe with a
shorter line than ``option httplog``'s. For each, interleaved, ``wrk -t2 -c50`` (keep-alive,
or ``Connection: close`` with ``--workload close``) while counting the instance's user +
system time per request, and, for the logging groups, the lines their reader kept against
the requests wrk counted and the reader's own CPU per request. ``--groups`` runs a few groups
(and the hand-written one). Figures: docs/performance.md, the L7 section and TLS.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

from netns import Topology

from l7 import (
    LOG_TARGET,
    OWN_SESSION,
    cpu_ticks,
    preflight,
    start_pipe_reader,
    start_reader,
    start_real_server_nginx,
    wrk_cpu,
)
from tls import CIPHERS, CURVES, SUITES, make_certificate

HAND = """global
{global_lines}    maxconn 8000
    tune.ssl.default-dh-param 2048
defaults
    mode http
{defaults_lines}listen web
    bind {bind}
    balance roundrobin
    option http-keep-alive
    option forwardfor
{proxy_lines}{servers}{sections}"""
HAND_DEFAULTS = ("timeout connect 5s", "timeout client 30s", "timeout server 30s")
TLS_BIND = (
    "{address}:{port} ssl crt {certificate} alpn http/1.1 ssl-min-ver TLSv1.2 ciphers {ciphers} "
    "ciphersuites {suites} curves {curves} prefer-client-ciphers no-tls-tickets"
)
# The alternative: a ring (configuration.txt 3.9) whose forwarder sends the lines in batches
# over a unix stream socket, octet-counted (RFC 6587 3.4.1), to RING_READER.
RING = """ring requests
    format raw
    maxlen 4096
    size 4194304
    timeout connect 5s
    timeout server 10s
    server daemon unix@{socket} log-proto octet-count
"""
RING_TARGET = "log ring@requests len 4096 format raw local0 info"
# A shorter line than httplog's (8.2.3): the fields `bascule logs` parses (client, accept
# date, frontend), the server, the status, the bytes, the request line.
SHORT_FORMAT = 'log-format "%ci:%cp [%tr] %ft %b/%s %ST %B %{+Q}r"'
# The daemon's stand-in for the ring: reads every connection's frames in batches (a pause
# after each read, like daemon/request_logs.py's pipe reader) and appends the lines to a
# file; argv: the socket, the log directory; prints "ready" once it listens.
RING_READER = """
import os, selectors, socket, sys, time
from pathlib import Path
from bascule.daemon.request_logs import RequestLogFile

file = RequestLogFile(Path(sys.argv[2]) / "requests.log", max_bytes=1 << 40, keep=1)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
os.umask(0o077)
server.bind(sys.argv[1])
server.listen(64)
server.setblocking(False)
selector = selectors.DefaultSelector()
selector.register(server, selectors.EVENT_READ)
rest = {}
print("ready", flush=True)
while True:
    for key, _ in selector.select():
        if key.fileobj is server:
            connection, _ = server.accept()
            connection.setblocking(False)
            selector.register(connection, selectors.EVENT_READ)
            rest[connection] = b""
            continue
        connection = key.fileobj
        chunks = [rest[connection]]
        try:
            while data := connection.recv(1 << 20):
                chunks.append(data)
            else:
                selector.unregister(connection)
                connection.close()
        except BlockingIOError:
            pass
        data = b"".join(chunks)
        lines, start = [], 0
        while (space := data.find(b" ", start)) > 0:
            end = space + 1 + int(data[start:space])
            if end > len(data):
                break
            lines.append(data[space + 1 : end])
            start = end
        rest[connection] = data[start:]
        if lines:
            file.write_lines(lines)
    time.sleep(0.05)
"""


@dataclass(frozen=True)
class Group:
    """Lines added to the hand-written configuration: in ``global``, in place of its
    ``defaults`` timeouts, in the ``listen`` section, after each ``server``."""

    global_lines: tuple[str, ...] = ()
    defaults_lines: tuple[str, ...] = ()
    proxy_lines: tuple[str, ...] = ()
    server_suffix: str = ""
    sections: str = ""  # whole sections after the proxy (a ring)

    def __or__(self, other: Group) -> Group:
        return Group(
            self.global_lines + other.global_lines,
            self.defaults_lines + other.defaults_lines,
            self.proxy_lines + other.proxy_lines,
            self.server_suffix + other.server_suffix,
            self.sections + other.sections,
        )


def _cpu_map() -> tuple[str, ...]:
    """Bascule's thread binding (engines/haproxy/view.py ``_cpu_map``) for this process's CPUs."""
    cpus = sorted(os.sched_getaffinity(0))
    return (f"nbthread {len(cpus)}", f"cpu-map auto:1/1-{len(cpus)} {' '.join(map(str, cpus))}")


# What engines/haproxy/view.py (and tls.py, for TLS) render for a default service, in groups.
def groups(tls: bool, vip: str, ring_socket: Path) -> dict[str, Group]:
    found = {
        "hand-written": Group(),
        "retry-on": Group(proxy_lines=("retry-on conn-failure empty-response response-timeout",)),
        "disable-l7-retry": Group(
            proxy_lines=(
                "http-request disable-l7-retry unless METH_GET || METH_OPTIONS || METH_PUT || "
                "METH_DELETE || METH_TRACE",
            )
        ),
        "reuse": Group(proxy_lines=("http-reuse safe", "option idle-close-on-response")),
        "cpu-map": Group(global_lines=_cpu_map()),
        "timeouts": Group(
            defaults_lines=(
                "timeout connect 5s",
                "timeout client 60s",
                "timeout server 60s",
                "timeout http-request 10s",
                "timeout http-keep-alive 10s",
                "timeout queue 30s",
                "timeout tunnel 1h",
                "timeout client-fin 30s",
                "timeout server-fin 30s",
                "retries 3",
                "option redispatch 1",
            )
        ),
        "check": Group(
            proxy_lines=(
                "timeout check 1s",
                "option httpchk",
                f"http-check send meth GET uri '/' ver HTTP/1.1 hdr Host '{vip}'",
                "http-check expect status 200-299,301,302,401",
            ),
            server_suffix=" check inter 2s rise 2 fall 3",
        ),
        # request logs, on by default (engines/haproxy/logs.py), to the daemon's pipe
        "request-log": Group(
            global_lines=(LOG_TARGET,), proxy_lines=("log global", "option httplog")
        ),
        "request-log-ring": Group(
            global_lines=(RING_TARGET,),
            proxy_lines=("log global", "option httplog"),
            sections=RING.format(socket=ring_socket),
        ),
        "request-log-short": Group(
            global_lines=(LOG_TARGET,), proxy_lines=("log global", SHORT_FORMAT)
        ),
    }
    if tls:
        found["headers"] = Group(
            proxy_lines=(
                "http-request del-header X-SSL-Client -m beg",
                "http-request set-header X-Forwarded-Port %[dst_port]",
            )
        )
    every = Group()
    for name, group in found.items():
        if name != "hand-written" and not name.startswith("request-log-"):
            every = every | group
    return {**found, "all": every}


def _lines(lines: tuple[str, ...]) -> str:
    return "".join(f"    {line}\n" for line in lines)


def configurations(
    address: str,
    certificate: Path | None,
    servers: Sequence[str],
    first_port: int,
    ring_socket: Path,
) -> dict[str, str]:
    """Each group's configuration; TLS when ``certificate`` is given."""
    texts = {}
    found = groups(certificate is not None, address, ring_socket)
    for index, (name, group) in enumerate(found.items()):
        port = first_port + index
        bind = f"{address}:{port}"
        proxy = group.proxy_lines
        if certificate is not None:
            bind = TLS_BIND.format(
                address=address,
                port=port,
                certificate=certificate,
                ciphers=CIPHERS,
                suites=SUITES,
                curves=CURVES,
            )
            proxy = ("http-request set-header X-Forwarded-Proto https", *proxy)
        texts[name] = HAND.format(
            global_lines=_lines(group.global_lines),
            defaults_lines=_lines(group.defaults_lines or HAND_DEFAULTS),
            bind=bind,
            proxy_lines=_lines(proxy),
            servers="".join(
                f"    server rs{i} {server}:80{group.server_suffix}\n"
                for i, server in enumerate(servers, 1)
            ),
            sections=group.sections,
        )
    return texts


FIRST_PORT = 9500


class LinesKept:
    """The lines a request log reader appended to ``requests.log`` in ``directory`` (and the
    files it rotated it to: each counted from where it was last read, by inode)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.read_to: dict[int, int] = {}

    def new(self) -> int:
        added = 0
        for path in self.directory.glob("requests.log*"):
            with contextlib.suppress(FileNotFoundError), path.open("rb") as file:
                inode = os.fstat(file.fileno()).st_ino
                file.seek(self.read_to.get(inode, 0))
                added += file.read().count(b"\n")
                self.read_to[inode] = file.tell()
        return added

    def settled(self, quiet: float = 0.3, timeout: float = 10.0) -> int:
        """New lines, once none came for ``quiet`` seconds (the readers pause 50 ms)."""
        total = self.new()
        deadline = time.monotonic() + timeout
        calm_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - calm_since < quiet:
            time.sleep(0.05)
            added = self.new()
            if added:
                total += added
                calm_since = time.monotonic()
        return total


def start_ring_reader(socket: Path, logs: Path) -> subprocess.Popen[str]:
    """RING_READER listening on ``socket``, writing into ``logs``."""
    logs.mkdir(parents=True, exist_ok=True)
    return start_reader(RING_READER, str(socket), str(logs))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--http", action="store_true", help="plain HTTP instead of TLS")
    parser.add_argument("--workload", choices=("keepalive", "close"), default="keepalive")
    parser.add_argument("--groups", help="comma-separated groups (default: every one)")
    args = parser.parse_args(argv)
    preflight("bench/directives.py", ("wrk", "nginx", "haproxy"))
    scheme = "http" if args.http else "https"
    close = ("-H", "Connection: close") if args.workload == "close" else ()
    with Topology(real_servers=3) as topology:
        assert topology.workdir is not None
        work = topology.workdir
        start_real_server_nginx(topology, work)
        lb = topology.lb.address
        certificate = None if args.http else make_certificate(work, "ecdsa", lb)
        servers = [host.address for host in topology.real_servers]
        texts = configurations(lb, certificate, servers, FIRST_PORT, work / "requests.sock")
        ports = {name: FIRST_PORT + index for index, name in enumerate(texts)}
        if args.groups:
            chosen = ["hand-written", *args.groups.split(",")]
            unknown = [name for name in chosen if name not in texts]
            if unknown:
                parser.error(f"unknown groups {unknown}; known: {', '.join(texts)}")
            texts = {name: texts[name] for name in dict.fromkeys(chosen)}
        pipe_reader, holding = start_pipe_reader(work / "requests.fifo", work / "logs")
        readers = {"pipe": (pipe_reader, LinesKept(work / "logs"))}
        if any("ring@" in text for text in texts.values()):
            ring_reader = start_ring_reader(work / "requests.sock", work / "ring-logs")
            readers["ring"] = (ring_reader, LinesKept(work / "ring-logs"))
        pids: dict[str, int] = {}
        urls: dict[str, str] = {}
        logged_by: dict[str, str] = {}
        for name, text in texts.items():
            path = work / f"{name}.cfg"
            path.write_text(text)
            argv_ = ["haproxy", "-db", "-f", str(path)]
            if "ring@" in text:
                logged_by[name] = "ring"
            elif "fd@" in text:
                logged_by[name] = "pipe"
            logs = holding if logged_by.get(name) == "pipe" else {}
            pids[name] = topology.popen(
                "lb", argv_, stdout=subprocess.DEVNULL, **OWN_SESSION, **logs
            ).pid
            urls[name] = f"{scheme}://{lb}:{ports[name]}/"
            topology.wait_tcp("client", lb, ports[name])
        spent: dict[str, list[float]] = {name: [] for name in pids}
        rates: dict[str, list[float]] = {name: [] for name in pids}
        served: dict[str, int] = dict.fromkeys(pids, 0)
        kept: dict[str, int] = dict.fromkeys(pids, 0)
        reader_ticks: dict[str, int] = dict.fromkeys(pids, 0)
        for _, counter in readers.values():
            counter.settled()
        names = list(pids)
        for round_ in range(args.rounds):
            shift = round_ % len(names)
            for name in (*names[shift:], *names[:shift]):
                reader = readers.get(logged_by.get(name, ""))
                before = cpu_ticks(reader[0].pid) if reader else 0
                cpu, rate, requests = wrk_cpu(
                    topology, pids[name], urls[name], args.duration, close
                )
                spent[name].append(cpu)
                rates[name].append(rate)
                served[name] += requests
                if reader:
                    kept[name] += reader[1].settled()
                    reader_ticks[name] += cpu_ticks(reader[0].pid) - before
        for process, _ in readers.values():
            process.terminate()
            process.wait(timeout=30)
    what = f"{'plain HTTP' if args.http else 'TLS'}, {args.workload}"
    print(f"HAProxy CPU per request ({what}), microseconds, and requests/s (medians, rounds)")
    base = statistics.median(spent["hand-written"])
    for name in names:
        cpu = statistics.median(spent[name])
        each = " / ".join(f"{value:.1f}" for value in spent[name])
        print(
            f"  {name:<18}{cpu:6.1f} us ({cpu - base:+5.1f}) {statistics.median(rates[name]):9.0f}"
            f" req/s   {each}"
        )
    if logged_by:
        print("Request log lines kept (wrk's requests; a few more lines: the requests in flight")
        print("when wrk stops are logged too) and the reader's CPU per request, microseconds")
        tick = 1e6 / os.sysconf("SC_CLK_TCK")
        for name, transport in logged_by.items():
            print(
                f"  {name:<18} {transport:<5} {kept[name]:9d} lines / {served[name]:9d} requests"
                f" = {kept[name] / max(served[name], 1):.4f}, reader"
                f" {reader_ticks[name] * tick / max(served[name], 1):5.2f} us"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
