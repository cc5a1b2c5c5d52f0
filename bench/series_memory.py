"""Statistics series memory: bytes per real server at scale (issue 15).

One command, no root needed::

    .venv/bin/python bench/series_memory.py                    # 1,000 x 10, 10 minutes
    .venv/bin/python bench/series_memory.py --services 200 --minutes 60 --traffic all

Feeds ``stats.Tracks`` (what the daemon's sampler records, daemon/statistics.py) with one
sample every 10 s (the default ``stats_interval``) for ``--minutes`` of ``--services`` L7 HTTP
services of ``--servers`` real servers, and reports what ``tracemalloc`` sees allocated by the
tracks: total and per real server (its share of its service's series included). ``--traffic``:
``none`` (every counter stays 0, checks off: the bench/management.py document), ``all``
(every server's counters move and its checks report a time) or ``tenth`` (one service in ten).
A sample's time is the tick's plus what the daemon's status read takes (a pseudo-random 20 to
400 ms, the same for every run), so rates are not whole numbers and, now and then, two samples
fall in one bucket, as in the daemon. ``--cpu``: the same samples without ``tracemalloc``, and
the CPU time ``Tracks.record`` takes per sample instead (the sampler's share that is the
series', the readings built outside it).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Sequence

from bascule.stats import Reading, ServiceReading, Tracks

INTERVAL = 10.0


def readings(services: int, servers: int, tick: int, traffic: str) -> dict[str, ServiceReading]:
    def one(busy: bool, n: int) -> Reading:
        moved = tick * (n + 1) if busy else 0
        return Reading(
            current_connections=(tick + n) % 7 if busy else 0,
            total_connections=moved,
            bytes_in=moved * 300,
            bytes_out=moved * 4000,
            total_requests=moved * 3,
            check_duration_ms=float(1 + (tick + n) % 5) if busy else None,
        )

    result = {}
    for index in range(services):
        busy = traffic == "all" or (traffic == "tenth" and index % 10 == 0)
        result[f"vs-{index:04d}"] = ServiceReading(
            own=one(busy, index),
            real_servers={f"198.19.{index // 250}.{j}:80": one(busy, j) for j in range(servers)},
        )
    return result


def times(minutes: float) -> list[float]:
    """When each sample is recorded: every ``INTERVAL`` plus the status read's time."""
    read = random.Random(15)
    start = 1_800_000_000.0
    return [
        start + tick * INTERVAL + read.uniform(0.02, 0.4)
        for tick in range(int(minutes * 60 / INTERVAL))
    ]


def measure(args: argparse.Namespace) -> dict[str, float]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracks = Tracks()
    for tick, when in enumerate(times(args.minutes)):
        # readings are built outside the tracks' memory but traced: freed before the next
        sample = readings(args.services, args.servers, tick, args.traffic)
        tracks.record(when, sample)
    del sample  # the last sample's readings are the sampler's, dropped after it
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    servers = args.services * args.servers
    return {
        "services": args.services,
        "real_servers": servers,
        "minutes": args.minutes,
        "traffic": args.traffic,
        "bytes": held,
        "bytes_per_real_server": round(held / servers),
        "mib_at_10000_servers": round(held / servers * 10_000 / 2**20, 1),
    }


def cpu(args: argparse.Namespace) -> dict[str, float]:
    tracks = Tracks()
    spent = []
    for tick, when in enumerate(times(args.minutes)):
        sample = readings(args.services, args.servers, tick, args.traffic)
        began = time.process_time()
        tracks.record(when, sample)
        spent.append(time.process_time() - began)
    later = spent[1:]  # the first sample creates the tracks
    return {
        "services": args.services,
        "real_servers": args.services * args.servers,
        "samples": len(spent),
        "traffic": args.traffic,
        "first_sample_ms": round(spent[0] * 1000, 1),
        "sample_ms_median": round(statistics.median(later) * 1000, 1),
        "sample_ms_min": round(min(later) * 1000, 1),
        "sample_ms_max": round(max(later) * 1000, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--servers", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--traffic", choices=("none", "tenth", "all"), default="none")
    parser.add_argument("--cpu", action="store_true", help="CPU per sample, not memory")
    args = parser.parse_args(argv)
    print(json.dumps(cpu(args) if args.cpu else measure(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
