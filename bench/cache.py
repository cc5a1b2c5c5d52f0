"""What the proxy-cache gains and what compression costs: requests/s and bytes/s side by side.

One command, as root, from the repository root::

    .venv/bin/python bench/cache.py                  # 5 rounds x 3 s, about a minute
    .venv/bin/python bench/cache.py --rounds 7 --size-kb 64

In the L7 bench's network, every real server runs one nginx worker serving one HTML page of
``--size-kb`` KB from a file (``Cache-Control: max-age=60``, as a site's static files are).
Three HAProxy processes run the configuration Bascule renders for the same service, one
variant each:

    origin     no cache, no compression: every request goes to a real server
    cache      ``cache: {size_mb: 64, max_age: 60}``: after the first request, HAProxy answers
    compress   ``compression: {types: [text/html]}``: every response gzipped on the way

``wrk -t2 -c50`` with keep-alive and ``Accept-Encoding: gzip`` (so the three get the same
requests) measures each in turn, the order rotating every round. Each figure is the median
of the rounds, with every round's value beside it; requests/s and the bytes/s wrk read (the
compressed size for ``compress``). The real servers' access logs count the requests that
reached them, so "the cache answered" is shown, not assumed. Nothing here is asserted; the
figures and what they mean are in docs/performance.md, "Cache and compression".
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

from netns import Topology

from bascule.engines.haproxy.render import render
from bascule.engines.haproxy.view import HaproxyGlobals, build_view
from bascule.model import parse_document
from l7 import OWN_SESSION, SYSCTLS, preflight

VARIANTS: dict[str, tuple[int, dict[str, Any]]] = {
    "origin": (9711, {}),
    "cache": (9712, {"cache": {"size_mb": 64, "max_age": 60}}),
    "compress": (9713, {"compression": {"types": ["text/html"]}}),
}


def page(size_kb: int) -> str:
    """An HTML page of about ``size_kb`` KB, text that compresses like a real page does."""
    words = ["load", "balancer", "virtual", "service", "real", "server", "health", "check"]
    lines, size, n = ["<!doctype html><html><body>"], 0, 0
    while size < size_kb * 1024:
        line = f"<p id='p{n}'>{' '.join(words[(n + i) % len(words)] for i in range(12))} {n}</p>"
        lines.append(line)
        size += len(line) + 1
        n += 1
    return "\n".join([*lines, "</body></html>"]) + "\n"


def origin_nginx(address: str, prefix: Path) -> str:
    # the worker reads the page from the topology's private (0700) directory
    return f"""\
user root;
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log {prefix}/access.log;
    keepalive_requests 1000000;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen {address}:80 backlog=4096;
        root {prefix}/www;
        default_type text/html;
        add_header Cache-Control "max-age=60";
    }}
}}
"""


def document(port: int, servers: Sequence[str], address: str, extra: dict[str, Any]) -> Any:
    return parse_document(
        {
            "virtual_services": [
                {
                    "name": "site",
                    "address": address,
                    "port": port,
                    "check": {"type": "none"},
                    "real_servers": [{"address": server, "port": 80} for server in servers],
                    **extra,
                }
            ]
        }
    )


def requests_reaching(work: Path, names: Sequence[str]) -> int:
    return sum(
        len((work / name / "access.log").read_text().splitlines())
        for name in names
        if (work / name / "access.log").exists()
    )


_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def _rate(output: str) -> tuple[float, float]:
    requests = re.search(r"Requests/sec:\s+([\d.]+)", output)
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)([KMG]?B)", output)
    if requests is None or transfer is None:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    return float(requests[1]), float(transfer[1]) * _UNITS[transfer[2]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--size-kb", type=int, default=16)
    args = parser.parse_args(argv)
    preflight("bench/cache.py", ("wrk", "nginx", "haproxy"))
    with Topology(real_servers=3) as topology:
        assert topology.workdir is not None
        work = topology.workdir
        for host in topology.hosts:
            for sysctl in SYSCTLS:
                topology.run(host, ["sysctl", "-qw", sysctl])
        names = [host.name for host in topology.real_servers]
        for host in topology.real_servers:
            prefix = work / host.name
            (prefix / "www").mkdir(parents=True)
            (prefix / "www" / "index.html").write_text(page(args.size_kb))
            (prefix / "nginx.conf").write_text(origin_nginx(host.address, prefix))
            argv = ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf")]
            topology.popen(host, argv, stdout=subprocess.DEVNULL, **OWN_SESSION)
        for host in topology.real_servers:
            topology.wait_tcp("client", host.address, 80)
        lb = topology.lb.address
        servers = [host.address for host in topology.real_servers]
        for name, (port, extra) in VARIANTS.items():
            globals_ = HaproxyGlobals(
                stats_socket=str(work / f"{name}.sock"), maxconn=8000, nbthread=1
            )
            path = work / f"{name}.cfg"
            path.write_text(render(build_view(document(port, servers, lb, extra), globals_)))
            topology.popen(
                "lb", ["haproxy", "-db", "-f", str(path)], stdout=subprocess.DEVNULL, **OWN_SESSION
            )
            topology.wait_tcp("client", lb, port)
        rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
        transfer: dict[str, list[float]] = {name: [] for name in VARIANTS}
        reached: dict[str, list[int]] = {name: [] for name in VARIANTS}
        order = list(VARIANTS)
        for round_ in range(args.rounds):
            for name in order[round_ % len(order) :] + order[: round_ % len(order)]:
                port = VARIANTS[name][0]
                before = requests_reaching(work, names)
                wrk = ["wrk", "-t2", "-c50", f"-d{args.duration:g}s"]
                wrk += ["-H", "Accept-Encoding: gzip", f"http://{lb}:{port}/"]
                output = topology.run("client", wrk, **OWN_SESSION).stdout
                requests, bytes_ = _rate(output)
                rates[name].append(requests)
                transfer[name].append(bytes_)
                reached[name].append(requests_reaching(work, names) - before)
    print(f"cache and compression: a {args.size_kb} KB page, wrk -t2 -c50, keep-alive (median)")
    origin = statistics.median(rates["origin"])
    for name in VARIANTS:
        each = " / ".join(f"{value:.0f}" for value in rates[name])
        median = statistics.median(rates[name])
        print(
            f"  {name:>9} {median:8.0f} req/s ({median / origin:.2f}x origin; {each})"
            f"   {statistics.median(transfer[name]) / 1024**2:6.1f} MB/s read"
            f"   requests reaching the real servers per round: {reached[name]}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
