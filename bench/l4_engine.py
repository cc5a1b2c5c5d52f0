"""The nftables engine alone: how long a weight change and a new real server take in
``NftablesEngine``, without the daemon's API, store and change pipeline (issue 15).

One command, as root, from the repository root::

    .venv/bin/python bench/l4_engine.py                  # 20 changes of each kind
    PYTHONPATH=/tmp/base/src .venv/bin/python bench/l4_engine.py   # another checkout's code

It makes a throwaway network namespace (a veth ``eth0`` on 198.18.0.1/24, the three DSR real
servers as permanent neighbours, so their MACs are known), re-executes itself inside it (the
engine then runs as the daemon runs it: in its own namespace, no runner), applies the three
L4 services of ``bench/l4.py`` (3 NAT servers, 3 DSR servers with a 65,537-slot Maglev map, a
100-server weighted round robin NAT service) and times, alternately, a weight change of the
first of the 100 (``execute`` of a ``SetWeight``, as the operate path sends it) and a new
server (its plan, ``check`` when the plan reloads, ``execute``: what the change pipeline and
the reconcile ask of the engine; removed again, untimed). It prints p50 / p90 / max in
milliseconds and the load average. Nothing is written; the namespace is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from typing import Any

NAMESPACE_ENV = "BASCULE_BENCH_L4_ENGINE_NS"


def document(weight: int, extra: str | None = None) -> Any:
    """The bench's L4 services; the first big server weighs ``weight``; ``extra``: one more."""
    from bascule.model import Configuration

    three = [{"address": f"198.18.0.1{i}", "port": 80} for i in (1, 2, 3)]
    big: list[dict[str, Any]] = [
        {"address": f"198.18.2.{i}", "port": 80, "weight": weight if i == 1 else 1}
        for i in range(1, 101)
    ]
    if extra is not None:
        big.append({"address": extra, "port": 80})
    unchecked = {"type": "none"}
    return Configuration.model_validate(
        {
            "virtual_services": [
                {"name": "nat", "address": "198.18.0.100", "port": 80, "mode": "l4",
                 "check": unchecked, "real_servers": three},
                {"name": "dsr", "address": "198.18.0.101", "port": 80, "mode": "l4",
                 "forwarding": "dsr", "check": unchecked, "real_servers": three},
                {"name": "big", "address": "198.18.0.102", "port": 80, "mode": "l4",
                 "scheduler": "weighted_round_robin", "check": unchecked, "real_servers": big},
            ]
        }
    )  # fmt: skip


async def change(engine: Any, desired: Any, running: Any) -> None:
    """What the change pipeline and the reconcile ask of the engine for a new document: its
    plan (``plan_reload``, with the engine's ``server_changes`` where it has one), ``check``
    when the plan reloads, then ``execute``."""
    from bascule.reconcile.planner import plan_reload

    changes = getattr(engine, "server_changes", None)
    plan = plan_reload(desired, running, server_changes=changes, max_weight=engine.max_weight)
    assert plan is not None
    if plan.reloads:
        await engine.check(desired)
    await engine.execute(plan.actions, running)


async def measure(changes: int) -> dict[str, list[float]]:
    from bascule.engines.nftables.engine import NftablesEngine
    from bascule.reconcile.actions import ReplaceConfig, SetWeight

    engine = NftablesEngine()
    applied = document(2)
    await engine.check(applied)
    await engine.execute([ReplaceConfig(config=applied, reason="new")], None)
    times: dict[str, list[float]] = {"weight": [], "add_server": []}
    try:
        for run in range(changes):
            start = time.perf_counter()
            action = SetWeight(vs="big", server="198.18.2.1:80", weight=3 + run)
            await engine.execute([action], applied)
            times["weight"].append((time.perf_counter() - start) * 1000)
            applied = document(3 + run)
            grown = document(3 + run, f"198.18.4.{run % 250 + 1}")
            start = time.perf_counter()
            await change(engine, grown, applied)
            times["add_server"].append((time.perf_counter() - start) * 1000)
            await change(engine, applied, grown)
    finally:
        await engine.stop(grace=0)
    return times


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"{statistics.median(ordered):.1f} / {p90:.1f} / {ordered[-1]:.1f}"


def inside(changes: int) -> None:
    times = asyncio.run(measure(changes))
    print("nftables engine alone, ms (p50 / p90 / max)")
    print(f"  weight      {summary(times['weight'])}")
    print(f"  add_server  {summary(times['add_server'])}  (plan, check if it reloads, execute)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=20, help="changes of each kind")
    args = parser.parse_args()
    if os.environ.get(NAMESPACE_ENV):
        inside(args.changes)
        return
    namespace = f"bsc-l4e-{os.getpid()}"

    def ip(*argv: str) -> None:
        subprocess.run(["ip", "-n", namespace, *argv], check=True)

    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        ip("link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
        ip("addr", "add", "198.18.0.1/24", "dev", "eth0")
        for device in ("lo", "eth0", "eth0p"):
            ip("link", "set", device, "up")
        for i in (1, 2, 3):
            mac = f"02:00:00:00:00:1{i}"
            ip("neigh", "add", f"198.18.0.1{i}", "lladdr", mac, "dev", "eth0", "nud", "permanent")
        print(f"load average before {os.getloadavg()}")
        env = {**os.environ, NAMESPACE_ENV: namespace}
        argv = ["ip", "netns", "exec", namespace, sys.executable, __file__]
        subprocess.run([*argv, "--changes", str(args.changes)], env=env, check=True)
        print(f"load average after {os.getloadavg()}")
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)


if __name__ == "__main__":
    main()
