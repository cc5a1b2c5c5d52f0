"""What content rules cost: requests per second and HAProxy CPU per request, 1 rule vs 100.

One command, as root, from the repository root::

    .venv/bin/python bench/l7_rules.py              # 4 rounds x 3 s, about a minute
    .venv/bin/python bench/l7_rules.py --rounds 6

In the L7 bench's network (real servers with nginx ``return 200``), two HAProxy instances run
side by side with configurations rendered by Bascule itself (engines/haproxy/view.py): the
same service with 1 content rule and with 100 (``path_prefix`` rules sending to a
sub-service). The requests match no rule, the worst case: every rule's ACL is evaluated.
Runs are interleaved, ``wrk -t2 -c50`` with keep-alive; each figure is the median of the
rounds. Figures: docs/performance.md, content rules. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
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
from l7 import OWN_SESSION, cpu_ticks, preflight, start_real_server_nginx

FIRST_PORT = 9600
RULE_COUNTS = (1, 100)


def document(address: str, port: int, servers: Sequence[str], rules: int) -> dict[str, Any]:
    pool = [{"address": server, "port": 80} for server in servers]
    return {
        "virtual_services": [
            {
                "name": f"rules{rules}",
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
        pids: dict[int, int] = {}
        urls: dict[int, str] = {}
        for index, rules in enumerate(RULE_COUNTS):
            port = FIRST_PORT + index
            globals_ = HaproxyGlobals(
                stats_socket=str(work / f"rules{rules}.sock"), maxconn=8000, nbthread=1
            )
            config = parse_document(document(lb, port, servers, rules))
            path = work / f"rules{rules}.cfg"
            path.write_text(render(build_view(config, globals_)))
            argv_ = ["haproxy", "-db", "-f", str(path)]
            pids[rules] = topology.popen("lb", argv_, stdout=subprocess.DEVNULL, **OWN_SESSION).pid
            urls[rules] = f"http://{lb}:{port}/nothing/matches"
            topology.wait_tcp("client", lb, port)
        rates: dict[int, list[float]] = {rules: [] for rules in RULE_COUNTS}
        cpu: dict[int, list[float]] = {rules: [] for rules in RULE_COUNTS}
        for round_ in range(args.rounds):
            order = RULE_COUNTS if round_ % 2 == 0 else tuple(reversed(RULE_COUNTS))
            for rules in order:
                before = cpu_ticks(pids[rules])
                wrk = ["wrk", "-t2", "-c50", f"-d{args.duration:g}s", urls[rules]]
                output = topology.run("client", wrk, **OWN_SESSION).stdout
                ticks = cpu_ticks(pids[rules]) - before
                found = re.search(r"(\d+) requests in", output)
                rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
                if found is None or rate is None:
                    raise RuntimeError(f"cannot read wrk's output:\n{output}")
                rates[rules].append(float(rate.group(1)))
                seconds = ticks / os.sysconf("SC_CLK_TCK")
                cpu[rules].append(seconds * 1e6 / int(found.group(1)))
    print("content rules: requests/s and HAProxy CPU per request (median, then each round)")
    for rules in RULE_COUNTS:
        each = " / ".join(f"{value:.0f}" for value in rates[rules])
        print(
            f"  {rules:>3} rules  {statistics.median(rates[rules]):8.0f} req/s "
            f"{statistics.median(cpu[rules]):6.1f} us/req   ({each})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
