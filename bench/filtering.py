"""What access lists cost: L7 and L4 NAT requests/s with a 100,000-entry block list vs none,
and how long the list takes to load and to change.

One command, as root, from the repository root::

    .venv/bin/python bench/filtering.py              # 4 rounds x 3 s x 2 paths, about 2 minutes
    .venv/bin/python bench/filtering.py --rounds 6 --entries 100000

In the L7 bench's network (real servers with nginx ``return 200``), one HAProxy runs the
configuration Bascule renders for one service, one DNAT rule written by hand forwards the
next port to a real server (the L4 path: the real servers route their replies back through
the load balancer), and Bascule's filter engine (engines/nftables/filter.py) runs in the load
balancer's namespace for both. Each round measures ``wrk -t2 -c50`` with keep-alive on both
paths, with no filter table and with a block list of ``--entries`` networks (none of them
the client's, so every packet is looked up and passes) loaded as the daemon loads it, the
order alternating. The load (the whole table in one transaction) and a change of one entry
(the list's sets refilled, ``access.set_update``) are timed every round. Each figure is the
median of the rounds. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

from netns import Topology

from bascule.engines.haproxy.render import render
from bascule.engines.haproxy.view import HaproxyGlobals, build_view
from bascule.engines.nftables.filter import FilterEngine
from bascule.model import Configuration, parse_document
from bascule.reconcile.actions import ReplaceConfig
from l7 import OWN_SESSION, preflight, start_real_server_nginx

PORT = 9700


def blocked(entries: int, shift: int = 0) -> list[str]:
    """``entries`` /30 networks of 198.19.0.0/16 and beyond (never the topology's /24)."""
    base = int(ipaddress.ip_address("198.19.0.0"))
    return [str(ipaddress.ip_network((base + 4 * (i + shift), 30))) for i in range(entries)]


def document(
    address: str, servers: Sequence[str], block: list[str] | None, *, l4: bool = True
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "virtual_services": [
            {
                "name": "site",
                "address": address,
                "port": PORT,
                "check": {"type": "none"},
                "real_servers": [{"address": server, "port": 80} for server in servers],
            }
        ]
    }
    if l4:  # what the filter sees of the L4 path: a NAT service on the next port
        data["virtual_services"].append(
            {
                "name": "fast",
                "address": address,
                "port": PORT + 1,
                "mode": "l4",
                "forwarding": "nat",
                "check": {"type": "none"},
                "real_servers": [{"address": servers[0], "port": 80}],
            }
        )
    if block is not None:
        data["access_lists"] = {"blocked": {"addresses": block}}
        data["block"] = ["blocked"]
    return data


async def timed_apply(engine: FilterEngine, config: Configuration) -> float:
    started = time.perf_counter()
    await engine.execute((ReplaceConfig(config=config, reason="bench"),), None)
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args(argv)
    preflight("bench/filtering.py", ("wrk", "nginx", "haproxy", "nft"))
    with Topology(real_servers=3) as topology:
        assert topology.workdir is not None
        work = topology.workdir
        start_real_server_nginx(topology, work)
        lb = topology.lb.address
        servers = [host.address for host in topology.real_servers]
        started = time.perf_counter()
        lists = parse_document(document(lb, servers, blocked(args.entries)))
        changed = parse_document(document(lb, servers, blocked(args.entries, shift=1)))
        validation = time.perf_counter() - started
        none = parse_document(document(lb, servers, None))
        globals_ = HaproxyGlobals(stats_socket=str(work / "site.sock"), maxconn=8000, nbthread=1)
        path = work / "site.cfg"
        l7_only = parse_document(document(lb, servers, None, l4=False))
        path.write_text(render(build_view(l7_only, globals_)))
        hand_nat(topology, work, lb, servers[0])
        topology.popen(
            "lb", ["haproxy", "-db", "-f", str(path)], stdout=subprocess.DEVNULL, **OWN_SESSION
        )
        topology.wait_tcp("client", lb, PORT)
        engine = FilterEngine(netns=topology.lb.netns)
        url = f"http://{lb}:{PORT}/"
        l4_url = f"http://{lb}:{PORT + 1}/"
        topology.wait_tcp("client", lb, PORT + 1)
        rates: dict[tuple[str, str], list[float]] = {
            (path_, which): [] for path_ in ("L7", "L4 NAT") for which in ("none", "list")
        }
        loads: list[float] = []
        updates: list[float] = []
        for round_ in range(args.rounds):
            order = ("none", "list") if round_ % 2 == 0 else ("list", "none")
            for which in order:
                if which == "list":
                    loads.append(asyncio.run(timed_apply(engine, lists)))
                    updates.append(asyncio.run(_update(engine, lists, changed)))
                else:
                    asyncio.run(timed_apply(engine, none))
                for path_, target in (("L7", url), ("L4 NAT", l4_url)):
                    wrk = ["wrk", "-t2", "-c50", f"-d{args.duration:g}s", target]
                    output = topology.run("client", wrk, **OWN_SESSION).stdout
                    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
                    if rate is None:
                        raise RuntimeError(f"cannot read wrk's output:\n{output}")
                    rates[(path_, which)].append(float(rate.group(1)))
        asyncio.run(timed_apply(engine, none))
    print(f"access lists: requests/s, {args.entries} blocked networks vs none (median)")
    for path_ in ("L7", "L4 NAT"):
        for which, label in (("none", "no filter"), ("list", f"{args.entries} entries")):
            values = rates[(path_, which)]
            each = " / ".join(f"{value:.0f}" for value in values)
            print(f"  {path_:>6} {label:>16}  {statistics.median(values):8.0f} req/s   ({each})")
    print(f"  validation of the two documents: {validation:.2f} s")
    print(f"  load of the list (whole table): {statistics.median(loads):.2f} s median")
    print(f"  change of the list (sets refilled): {statistics.median(updates):.2f} s median")
    return 0


def hand_nat(topology: Topology, work: Path, lb: str, server: str) -> None:
    """The L4 path: one DNAT rule written by hand (Bascule's L4 engine is not what is
    measured here, the filter's lists are), the real servers routing replies back."""
    topology.run("lb", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    topology.route_back_through_lb()
    rules = work / "nat.nft"
    rules.write_text(
        "table ip bench_nat {\n"
        "  chain prerouting {\n"
        "    type nat hook prerouting priority dstnat; policy accept;\n"
        f"    ip daddr {lb} tcp dport {PORT + 1} dnat to {server}:80\n"
        "  }\n"
        "}\n"
    )
    topology.run("lb", ["nft", "-f", str(rules)])


async def _update(engine: FilterEngine, lists: Configuration, changed: Configuration) -> float:
    seconds = await timed_apply(engine, changed)
    await engine.execute((ReplaceConfig(config=lists, reason="bench"),), None)
    return seconds


if __name__ == "__main__":
    sys.exit(main())
