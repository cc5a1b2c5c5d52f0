"""What each of Bascule's HTTP directives costs a request, in HAProxy's CPU time and requests/s.

One command, as root, from the repository root::

    .venv/bin/python bench/directives.py                     # TLS, keep-alive, 4 rounds x 3 s
    .venv/bin/python bench/directives.py --rounds 6
    .venv/bin/python bench/directives.py --http --rounds 5   # plain HTTP (the L7 bench's A/B)
    .venv/bin/python bench/directives.py --http --workload close

The L7 and TLS benches (bench/l7.py, bench/tls.py) compare Bascule's HAProxy with a hand-written
one and nginx. This finds where a difference comes from: in the L7 bench's network (real
servers with nginx ``return 200``), several HAProxy instances run side by side, each the
hand-written configuration of those benches (TLS: bench/tls.py's ``bind`` line; ``--http``:
plain HTTP) plus one group of the directives Bascule renders for a default ``type: http`` (or
``https``) service, and one with all of them. ``request-log`` is the request logs, on by
default, to a pipe read by Bascule's own receiver, as the daemon does. For each, interleaved,
``wrk -t2 -c50`` (keep-alive, or ``Connection: close`` with ``--workload close``) while
counting the instance's user + system time per request. Figures: docs/performance.md, the L7
section and TLS.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

from netns import Topology

from bascule.engines.haproxy.logs import log_view
from bascule.model import parse_document
from l7 import OWN_SESSION, preflight, start_pipe_reader, start_real_server_nginx, wrk_cpu
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
{proxy_lines}{servers}"""
HAND_DEFAULTS = ("timeout connect 5s", "timeout client 30s", "timeout server 30s")
TLS_BIND = (
    "{address}:{port} ssl crt {certificate} alpn http/1.1 ssl-min-ver TLSv1.2 ciphers {ciphers} "
    "ciphersuites {suites} curves {curves} prefer-client-ciphers no-tls-tickets"
)
# The daemon's log target as engines/haproxy/logs.py renders it.
LOG_TARGET = log_view(parse_document({}), True).global_lines[0]


@dataclass(frozen=True)
class Group:
    """Lines added to the hand-written configuration: in ``global``, in place of its
    ``defaults`` timeouts, in the ``listen`` section, after each ``server``."""

    global_lines: tuple[str, ...] = ()
    defaults_lines: tuple[str, ...] = ()
    proxy_lines: tuple[str, ...] = ()
    server_suffix: str = ""

    def __or__(self, other: Group) -> Group:
        return Group(
            self.global_lines + other.global_lines,
            self.defaults_lines + other.defaults_lines,
            self.proxy_lines + other.proxy_lines,
            self.server_suffix + other.server_suffix,
        )


def _cpu_map() -> tuple[str, ...]:
    """Bascule's thread binding (engines/haproxy/view.py ``_cpu_map``) for this process's CPUs."""
    cpus = sorted(os.sched_getaffinity(0))
    return (f"nbthread {len(cpus)}", f"cpu-map auto:1/1-{len(cpus)} {' '.join(map(str, cpus))}")


# What engines/haproxy/view.py (and tls.py, for TLS) render for a default service, in groups.
def groups(tls: bool, vip: str) -> dict[str, Group]:
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
        if name != "hand-written":
            every = every | group
    return {**found, "all": every}


def _lines(lines: tuple[str, ...]) -> str:
    return "".join(f"    {line}\n" for line in lines)


def configurations(
    address: str, certificate: Path | None, servers: Sequence[str], first_port: int
) -> dict[str, str]:
    """Each group's configuration; TLS when ``certificate`` is given."""
    texts = {}
    for index, (name, group) in enumerate(groups(certificate is not None, address).items()):
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
        )
    return texts


FIRST_PORT = 9500


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--http", action="store_true", help="plain HTTP instead of TLS")
    parser.add_argument("--workload", choices=("keepalive", "close"), default="keepalive")
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
        reader, holding = start_pipe_reader(work / "requests.fifo", work / "logs")
        servers = [host.address for host in topology.real_servers]
        pids: dict[str, int] = {}
        urls: dict[str, str] = {}
        texts = configurations(lb, certificate, servers, FIRST_PORT)
        for index, (name, text) in enumerate(texts.items()):
            path = work / f"{name}.cfg"
            path.write_text(text)
            argv_ = ["haproxy", "-db", "-f", str(path)]
            logs = holding if "option httplog" in text else {}
            pids[name] = topology.popen(
                "lb", argv_, stdout=subprocess.DEVNULL, **OWN_SESSION, **logs
            ).pid
            urls[name] = f"{scheme}://{lb}:{FIRST_PORT + index}/"
            topology.wait_tcp("client", lb, FIRST_PORT + index)
        spent: dict[str, list[float]] = {name: [] for name in pids}
        rates: dict[str, list[float]] = {name: [] for name in pids}
        names = list(pids)
        for round_ in range(args.rounds):
            shift = round_ % len(names)
            for name in (*names[shift:], *names[:shift]):
                cpu, rate = wrk_cpu(topology, pids[name], urls[name], args.duration, close)
                spent[name].append(cpu)
                rates[name].append(rate)
        reader.terminate()
        reader.wait(timeout=30)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
