"""The daemon's memory at 10,000 real servers that exist, after minutes of traffic (issue 15).

One command, as root, from the repository root::

    .venv/bin/python bench/memory_traffic.py                  # 1,000 x 10, 10 minutes
    .venv/bin/python bench/memory_traffic.py --services 100 --minutes 2 --sample 5

bench/management.py measures a daemon whose real servers are addresses nobody answers on
(checks off, no traffic), and bench/series_memory.py the statistics series alone. This one
runs the whole daemon against real servers that answer: one back-end process in the first
real server's namespace (tests/integration/netns.py) listens on ``--services`` x
``--servers`` ports of its address (20000 and up, one port per real server) and answers
every HTTP request with ``200 ok``; the document is that of bench/management.py (L7 HTTP
services, one VIP, ports 10000 and up) with those real servers and an HTTP health check every
``--check-interval`` seconds on each (10,000 servers checked every 10 s: 1,000 checks a
second). While it runs, wrk from the client namespace drives every ``--sample``-th service in
turn (``wrk -t1 -c2`` for ``--burst`` seconds each, then a pause as long, round after round),
so that the statistics series of those services' real servers carry traffic.

The daemon's VmRSS is read before the apply (no service), right after it, then every minute
for ``--minutes``; the figure is the last reading and the bytes per real server,
(RSS - RSS with no service) / real servers. Results go to
``bench/results/memory-traffic-<time>.json`` (git-ignored) and a table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from netns import Topology, wait_ready  # noqa: E402

from management import API, FIRST_PORT, Bench, prepare, service_name  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
FIRST_BACKEND_PORT = 20000
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


# --------------------------------------------------------------------------- the back end
# Runs inside the real server's namespace (``--backend``): one process, one port per server.


async def _serve(address: str, ports: range) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:  # keep-alive: one answer per request head
                await reader.readuntil(b"\r\n\r\n")
                writer.write(ANSWER)
                await writer.drain()
        writer.close()

    servers = [await asyncio.start_server(answer, address, port, backlog=64) for port in ports]
    print("ready", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


def backend_main(args: argparse.Namespace) -> int:
    wanted = args.services * args.servers + 100
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(wanted, hard), max(wanted, hard)))
    ports = range(FIRST_BACKEND_PORT, FIRST_BACKEND_PORT + args.services * args.servers)
    asyncio.run(_serve(args.address, ports))
    return 0


# --------------------------------------------------------------------------- the root side


def document(vip: str, backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """bench/management.py's services, their real servers the back end's ports, checked."""
    return {
        "virtual_services": [
            {
                "name": service_name(i),
                "address": vip,
                "port": FIRST_PORT + i,
                "type": "http",
                "scheduler": "weighted_round_robin",
                "check": {
                    "type": "http",
                    "interval": args.check_interval,
                    "timeout": min(2.0, args.check_interval),
                },
                "real_servers": [
                    {"address": backend, "port": FIRST_BACKEND_PORT + i * args.servers + j}
                    for j in range(args.servers)
                ],
            }
            for i in range(args.services)
        ]
    }


class TrafficBench(Bench):
    def apply(self) -> None:
        self.daemon.start(timeout=60)
        self.topology.wait_tcp("lb", "127.0.0.1", 8443, timeout=60)
        backend = self.topology.real_servers[0]
        argv = [sys.executable, str(Path(__file__).resolve()), "--backend"]
        argv += ["--address", backend.address]
        argv += ["--services", str(self.args.services), "--servers", str(self.args.servers)]
        wait_ready(self.topology.popen(backend, argv, stdout=subprocess.PIPE, text=True), 120)
        self.daemon_rss("started")
        wanted = document(self.topology.vip(), backend.address, self.args)
        with self.local() as api:
            start = time.monotonic()
            response = api.put(f"{API}/config", json=wanted, params={"message": "bench"})
            self.setup_times["apply_whole_document"] = time.monotonic() - start
            if response.status_code != 200 or not response.json().get("applied"):
                raise RuntimeError(f"the document was not applied: {response.text[-2000:]}")
        self.daemon_rss("applied")

    def traffic(self) -> dict[str, Any]:
        """wrk through every ``--sample``-th service in turn for ``--minutes``; the RSS
        every minute (``minute_<n>``)."""
        vip = self.topology.vip()
        sample = list(range(0, self.args.services, self.args.sample))
        start = time.monotonic()
        end = start + self.args.minutes * 60
        next_reading = 1
        requests = errors = bursts = 0
        position = 0
        while time.monotonic() < end:
            index = sample[position % len(sample)]
            position += 1
            url = f"http://{vip}:{FIRST_PORT + index}/"
            wrk = ["wrk", "-t1", "-c2", f"-d{self.args.burst:g}s", url]
            output = self.topology.run("client", wrk, check=False, timeout=120).stdout
            bursts += 1
            for line in output.splitlines():
                words = line.split()
                if "requests in" in line:
                    requests += int(words[0])
                elif line.strip().startswith(("Socket errors", "Non-2xx")):
                    errors += sum(int(w.strip(",")) for w in words if w.strip(",").isdigit())
            time.sleep(self.args.burst)  # the pause: half of the CPU time left to the rest
            while time.monotonic() - start >= next_reading * 60 and next_reading <= int(
                self.args.minutes
            ):
                self.daemon_rss(f"minute_{next_reading}")
                next_reading += 1
        self.daemon_rss("end")
        with self.local() as api:
            status = api.get(f"{API}/status").json()
        up = sum(
            1
            for vs in status.get("virtual_services", [])
            for rs in vs.get("real_servers", [])
            if rs.get("status") == "up"
        )
        return {
            "sampled_services": len(sample),
            "bursts": bursts,
            "requests": requests,
            "errors": errors,
            "real_servers_up": up,
        }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--servers", type=int, default=10, help="real servers per service")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--check-interval", type=float, default=10, help="seconds")
    parser.add_argument("--sample", type=int, default=10, help="traffic to every n-th service")
    parser.add_argument("--burst", type=float, default=2, help="seconds of wrk per service")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--backend", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.services * args.servers <= 40_000:
        parser.error("at most 40,000 real servers (ports 20000 and up)")
    # bench/management.py's Bench reads these
    args.settle = 0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.backend:
        return backend_main(args)
    started, env_before = prepare("memory_traffic.py")
    print(
        f"{args.services} x {args.servers} real servers, {args.minutes:g} minutes, "
        f"load {env_before['loadavg']}",
        file=sys.stderr,
    )
    with Topology(real_servers=1) as topology:
        bench = TrafficBench(topology, args)
        try:
            bench.apply()
            print(f"applied: {bench.setup_times}, rss {bench.rss}", file=sys.stderr)
            traffic = bench.traffic()
        finally:
            bench.teardown()
    rss = bench.rss
    servers = args.services * args.servers
    report = {
        "started": started.isoformat(timespec="seconds"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "environment": env_before,
        "loadavg_after": os.getloadavg(),
        "setup_s": bench.setup_times,
        "traffic": traffic,
        "rss_mib": rss,
        "bytes_per_real_server": round((rss["end"] - rss["started"]) * 2**20 / servers),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"memory-traffic-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    for when, value in rss.items():
        print(f"{when:>12}: {value:7.1f} MiB")
    print(f"traffic: {traffic}")
    print(f"bytes per real server (end - started): {report['bytes_per_real_server']:,}")
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
