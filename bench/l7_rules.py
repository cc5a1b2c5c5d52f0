"""What content rules and request logs cost: requests per second and HAProxy CPU per request.

One command, as root, from the repository root::

    .venv/bin/python bench/l7_rules.py              # 4 rounds x 3 s, about a minute
    .venv/bin/python bench/l7_rules.py --rounds 6

In the L7 bench's network (real servers with nginx ``return 200``), two HAProxy instances run
side by side with configurations rendered by Bascule itself (engines/haproxy/view.py): the
same service with 1 content rule and with 100 (``path_prefix`` rules sending to a
sub-service), and a third with 1 rule whose request log is on: HAProxy writes every request's
line to a pipe, as it does to the daemon's (``requests.fifo``), read here by the daemon's own
receiver in a process of its own. The first two log nothing, so rules and logs are measured apart.
The requests match no rule, the worst case: every rule's ACL is evaluated. Runs are
interleaved, ``wrk -t2 -c50`` with keep-alive; each figure is the median of the rounds.
Figures: docs/performance.md, content rules and request logs. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
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
from l7 import OWN_SESSION, preflight, start_pipe_reader, start_real_server_nginx, wrk_cpu

FIRST_PORT = 9600
# name -> (rules, request log on)
VARIANTS: dict[str, tuple[int, bool]] = {
    "1 rule": (1, False),
    "100 rules": (100, False),
    "1 rule, logged": (1, True),
}


def document(
    name: str, address: str, port: int, servers: Sequence[str], rules: int
) -> dict[str, Any]:
    pool = [{"address": server, "port": 80} for server in servers]
    return {
        "virtual_services": [
            {
                "name": name,
                "address": address,
                "port": port,
                "check": {"type": "none"},
                "real_servers": pool,
                "sub_services": [{"name": "api", "real_servers": pool}],
                "rules": [
                    {"name": f"r{n}", "match": {"path_prefix": f"/p{n}/"}, "action": {"use": "api"}}
                    for n in range(rules)
                ],
            }
        ]
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=3.0)
    args = parser.parse_args(argv)
    preflight("bench/l7_rules.py", ("wrk", "nginx", "haproxy"))
    with Topology(real_servers=3) as topology:
        assert topology.workdir is not None
        work = topology.workdir
        start_real_server_nginx(topology, work)
        lb = topology.lb.address
        servers = [host.address for host in topology.real_servers]
        pids: dict[str, int] = {}
        urls: dict[str, str] = {}
        readers: list[subprocess.Popen[str]] = []
        for index, (variant, (rules, logged)) in enumerate(VARIANTS.items()):
            port = FIRST_PORT + index
            name = f"v{index}"
            holding: dict[str, Any] = {}
            if logged:
                reader, holding = start_pipe_reader(work / f"{name}.fifo", work / f"{name}-logs")
                readers.append(reader)
            globals_ = HaproxyGlobals(
                stats_socket=str(work / f"{name}.sock"),
                maxconn=8000,
                nbthread=1,
                request_log_pipe=logged,
            )
            config = parse_document(document(name, lb, port, servers, rules))
            path = work / f"{name}.cfg"
            path.write_text(render(build_view(config, globals_)))
            argv_ = ["haproxy", "-db", "-f", str(path)]
            pids[variant] = topology.popen(
                "lb", argv_, stdout=subprocess.DEVNULL, **OWN_SESSION, **holding
            ).pid
            urls[variant] = f"http://{lb}:{port}/nothing/matches"
            topology.wait_tcp("client", lb, port)
        rates: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        cpu: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        for round_ in range(args.rounds):
            order = list(VARIANTS) if round_ % 2 == 0 else list(reversed(VARIANTS))
            for variant in order:
                spent, rate, _ = wrk_cpu(topology, pids[variant], urls[variant], args.duration)
                rates[variant].append(rate)
                cpu[variant].append(spent)
        for reader in readers:
            reader.terminate()
            reader.wait(timeout=30)
    print("requests/s and HAProxy CPU per request (median, then each round)")
    for variant in VARIANTS:
        each = " / ".join(f"{value:.0f}" for value in rates[variant])
        print(
            f"  {variant:<15} {statistics.median(rates[variant]):8.0f} req/s "
            f"{statistics.median(cpu[variant]):6.1f} us/req   ({each})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
