"""L4 benchmark: Bascule's nftables NAT and DSR against direct access and a TCP proxy (issue 4).

One command, as root, from the repository root::

    .venv/bin/python bench/l4.py                 # 5 rounds x 4 s, both workloads (~3.5 min)
    .venv/bin/python bench/l4.py --rounds 5 --duration 10 --targets direct,dsr

It builds a throwaway network (tests/integration/netns.py: a client, a load balancer and
three real servers in their own namespaces, 198.18.0.0/24), starts one real ``bascule run``
daemon in the lb namespace with three virtual services over the same three real servers, and
measures with ``wrk`` four targets side by side:

    direct    the client straight to one real server (nginx ``return 200``, one worker)
    nat       ``mode: l4, forwarding: nat`` (routed: the real servers send their replies to
              the client back through the load balancer, so they see the client's address)
    dsr       ``mode: l4, forwarding: dsr``: the real servers set up with the commands
              ``bascule dsr script dsr`` prints; replies go straight to the client
    haproxy   ``mode: l7, type: generic``: Bascule's HAProxy as a plain TCP proxy

under two workloads: ``connections`` (``Connection: close``: a new TCP connection per
request, so requests/s is connections/s) and ``keepalive`` (wrk's default: persistent
connections). Runs are interleaved (all targets, then again, rotating who goes first), each
figure is the median of the rounds, and the spread between rounds is printed with it, because
the machine is small and shared. Results go to ``bench/results/l4-<time>.json`` (git-ignored).

The method and what the ratios mean are in docs/performance.md, section "L4".
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

# The topology helpers; l7 (the L7 bench, shared pieces) is found because bench/ is sys.path[0]
# when this file runs as a script.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

from netns import Topology, cleanup_stale, netns_available

from l7 import (
    BASCULE,
    OWN_SESSION,
    RESULTS_DIR,
    SYSCTLS,
    BasculeBench,
    Run,
    environment,
    real_server_nginx,
)
from l7 import summarize as summarize_runs

TARGETS = ("direct", "nat", "dsr", "haproxy")
WORKLOADS = {
    "connections": ("-H", "Connection: close"),
    "keepalive": (),
}
# One VIP per Bascule service, all on the lb's eth0 (the daemon adds them).
VIP_OCTETS = {"nat": 100, "dsr": 101, "haproxy": 102}
# Routed NAT needs the real servers to send replies for the client back through the lb. All
# hosts share one /24, so a default route via the lb would never be used for the (on-link)
# client; a host route is what does it. But the same servers answer the direct and DSR targets
# straight to the client. So the client talks to the NAT VIP from an address of its own
# (198.18.0.20, by a route with `src` in the client namespace), and only that address is routed
# back through the lb on the real servers.
NAT_CLIENT_EXTRA = 0  # index into topology.client.extra_addresses


def l4_document(topology: Topology, check_interval: int) -> dict[str, Any]:
    """The three services, over the same three real servers, as a user would write them."""
    servers = [{"address": host.address, "port": 80} for host in topology.real_servers]
    check = {"type": "tcp", "interval": check_interval}

    def service(name: str, **fields: Any) -> dict[str, Any]:
        return {
            "name": name,
            "address": topology.vip(VIP_OCTETS[name]),
            "port": 80,
            "protocol": "tcp",
            "scheduler": "round_robin",
            "check": check,
            "real_servers": servers,
            **fields,
        }

    return {
        "virtual_services": [
            service("nat", mode="l4", forwarding="nat"),
            service("dsr", mode="l4", forwarding="dsr"),
            service("haproxy", mode="l7", type="generic"),
        ]
    }


class Bench(BasculeBench):
    workloads = WORKLOADS

    def __init__(self, topology: Topology, args: argparse.Namespace) -> None:
        self.topology = topology
        self.args = args
        if topology.workdir is None:
            raise RuntimeError("the topology is not built")
        self.workdir = topology.workdir
        self.servers = [host.address for host in topology.real_servers]
        self.urls = {
            "direct": f"http://{self.servers[0]}/",
            **{name: f"http://{topology.vip(octet)}/" for name, octet in VIP_OCTETS.items()},
        }
        self.configs: dict[str, str] = {}
        self.bascule_dir = Path(tempfile.mkdtemp(prefix="bsc-bench4-", dir="/tmp"))
        self.bascule: subprocess.Popen[str] | None = None

    # -- setup ---------------------------------------------------------------------------

    def setup(self) -> None:
        topo = self.topology
        for host in topo.hosts:
            for sysctl in SYSCTLS:
                topo.run(host, ["sysctl", "-qw", sysctl])
        nat_source = topo.client.extra_addresses[NAT_CLIENT_EXTRA]
        topo.run(
            "client",
            [
                "ip",
                "route",
                "add",
                f"{topo.vip(VIP_OCTETS['nat'])}/32",
                "dev",
                "eth0",
                "src",
                nat_source,
            ],
        )
        for host in topo.real_servers:
            topo.run(host, ["ip", "route", "add", f"{nat_source}/32", "via", topo.lb.address])
        for host in topo.real_servers:
            prefix = self.workdir / host.name
            # on every address: its own, and the DSR VIP that `dsr script` puts on lo
            self._start_nginx(host.name, prefix, real_server_nginx(host.name, "0.0.0.0", prefix))
        for address in self.servers:
            topo.wait_tcp("client", address, 80)
        self._start_bascule()
        for target in self.args.targets:
            topo.wait_tcp("client", self.urls[target].split("/")[2], 80)

    def _start_nginx(self, host: str, prefix: Path, text: str) -> None:
        prefix.mkdir(parents=True)
        conf = prefix / "nginx.conf"
        conf.write_text(text)
        argv = ["nginx", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
        self.topology.popen(host, argv, stdout=subprocess.DEVNULL, **OWN_SESSION)

    def _start_bascule(self) -> None:
        log = (self.workdir / "bascule.log").open("w")
        try:
            argv = [BASCULE, "--data-dir", str(self.bascule_dir), "run"]
            self.bascule = self.topology.popen(
                "lb", argv, stdout=log, stderr=subprocess.STDOUT, **OWN_SESSION
            )
        finally:
            log.close()
        deadline = time.monotonic() + 30
        while not self._bascule_answers():
            if self.bascule.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bascule run did not start: {self._bascule_log()}")
            time.sleep(0.1)
        document = l4_document(self.topology, self.args.check_interval)
        path = self.workdir / "bascule.json"
        path.write_text(json.dumps(document, indent=2))
        self._cli("apply", "-f", str(path))
        # The DSR real servers, set up exactly as the product tells an admin to.
        script = self._cli("dsr", "script", "dsr")
        self.configs["dsr-script"] = script
        for host in self.topology.real_servers:
            self.topology.run(host, ["sh", "-c", script])
        deadline = time.monotonic() + 60
        while True:
            status = json.loads(self._cli("--json", "status"))
            states = {vs["name"]: vs["status"] for vs in status["virtual_services"]}
            if set(states.values()) == {"up"}:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the virtual services are not up: {states}")
            time.sleep(0.3)
        self.configs["bascule-document"] = json.dumps(document, indent=2)
        self.configs["nft"] = self.nft_ruleset()
        self.configs["haproxy"] = (self.bascule_dir / "haproxy" / "haproxy.cfg").read_text()

    def nft_ruleset(self) -> str:
        return self.topology.run("lb", ["nft", "list", "ruleset"]).stdout


# --------------------------------------------------------------------------- reporting


def summarize(runs: Sequence[Run]) -> dict[str, dict[str, dict[str, Any]]]:
    """l7's summary (medians and spreads of req/s and p99), with each target's ratio to direct."""
    summary = summarize_runs(runs, keys=("rps", "p99_ms"))
    # Ratios to direct are taken within each round (the runs are seconds apart, so the
    # machine's load drifts less between them than over the whole bench), then the median.
    direct_of = {(r.workload, r.round): r.rps for r in runs if r.target == "direct" and r.rps}
    for run in runs:
        base = direct_of.get((run.workload, run.round))
        if base:
            entry = summary[run.workload][run.target]
            entry.setdefault("to_direct_rounds", []).append(run.rps / base)
    for targets in summary.values():
        for entry in targets.values():
            ratios = entry.get("to_direct_rounds")
            if ratios:
                entry["to_direct"] = statistics.median(ratios)
    return summary


# The targets, on connections per second: (target, minimum ratio to direct).
GOALS = {"dsr": 0.9, "nat": 0.7}


def table(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = []
    for workload, targets in summary.items():
        unit = "conn/s" if workload == "connections" else "req/s"
        lines.append(
            f"\n{workload}: medians of rounds, spread (max-min)/median; /direct: median of"
            " per-round ratios (range: min-max); /haproxy: ratio of medians"
        )
        lines.append(
            f"  {'target':<9}{unit:>10}{'spread':>8}{'/direct':>9}{'range':>11}{'/haproxy':>10}"
            f"{'p99 ms':>9}{'errors':>8}"
        )
        proxy = targets.get("haproxy", {}).get("rps")
        for target, entry in targets.items():
            ratio = f"{entry['to_direct']:.2f}" if "to_direct" in entry else "-"
            rounds = entry.get("to_direct_rounds", [])
            ratio_range = f"{min(rounds):.2f}-{max(rounds):.2f}" if rounds else "-"
            versus = f"{entry['rps'] / proxy:.2f}" if proxy else "-"
            lines.append(
                f"  {target:<9}{entry['rps']:>10.0f}{entry['rps_spread']:>8.0%}{ratio:>9}"
                f"{ratio_range:>11}{versus:>10}{entry['p99_ms']:>9.2f}"
                f"{entry['errors'] + entry['non_2xx']:>8}"
            )
    connections = summary.get("connections", {})
    if "direct" in connections:
        proxy = connections.get("haproxy", {}).get("rps")
        lines.append("\ntargets (connections per second)")
        for target, goal in GOALS.items():
            if target not in connections:
                continue
            ratio = connections[target]["to_direct"]
            ahead = (
                ""
                if proxy is None
                else (
                    "  ahead of haproxy"
                    if connections[target]["rps"] > proxy
                    else "  NOT ahead of haproxy"
                )
            )
            verdict = "met" if ratio >= goal else "MISSED"
            lines.append(f"  {target} >= {goal} x direct: {ratio:.2f} {verdict}{ahead}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=50, help="wrk -c")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t")
    parser.add_argument(
        "--check-interval", type=int, default=2, help="seconds between Bascule's health checks"
    )
    parser.add_argument(
        "--targets",
        type=lambda s: tuple(s.split(",")),
        default=TARGETS,
        help=f"comma-separated subset of {','.join(TARGETS)}",
    )
    parser.add_argument(
        "--workloads",
        type=lambda s: tuple(s.split(",")),
        default=tuple(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)}",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    for name in args.targets:
        if name not in TARGETS:
            parser.error(f"unknown target {name!r}")
    for name in args.workloads:
        if name not in WORKLOADS:
            parser.error(f"unknown workload {name!r}")
    return args


@contextlib.contextmanager
def _bench(args: argparse.Namespace) -> Iterator[Bench]:
    with Topology(real_servers=3, client_extra_addresses=1) as topology:
        bench = Bench(topology, args)
        try:
            bench.setup()
            yield bench
        finally:
            bench.teardown()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bench/l4.py needs root: it builds network namespaces")
    reason = netns_available()
    if reason is not None:
        sys.exit(reason)
    for tool in ("wrk", "nginx", "haproxy", "nft"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed")
    cleanup_stale()
    started = datetime.datetime.now(datetime.UTC)
    env_before = environment()
    env_before["nft"] = subprocess.run(
        ["nft", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(
        f"{args.rounds} rounds x {args.duration:g} s, wrk -t{args.threads} "
        f"-c{args.connections}, load {env_before['loadavg']}",
        file=sys.stderr,
    )
    with _bench(args) as bench:
        runs = bench.measure()
        configs = bench.configs
    summary = summarize(runs)
    report = {
        "started": started.isoformat(timespec="seconds"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "environment": env_before,
        "loadavg_after": os.getloadavg(),
        "summary": summary,
        "runs": [asdict(run) for run in runs],
        "configs": configs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"l4-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(table(summary))
    print(f"\nload average before {env_before['loadavg']}, after {report['loadavg_after']}")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
