"""L4 benchmark: Bascule's nftables NAT and DSR against the limit of the hop, the limit of
nftables, nftlb and a TCP proxy (issues 4 and 15).

One command, as root, from the repository root::

    .venv/bin/python bench/l4.py                 # 5 rounds x 4 s, both workloads, ~12 min
    .venv/bin/python bench/l4.py --rounds 3 --duration 3 --targets hop,nat,nftlb-nat
    .venv/bin/python bench/l4.py --only updates --updates 30   # the rule update latency alone

It builds a throwaway network (tests/integration/netns.py: a client, a load balancer and
three real servers in their own namespaces, 198.18.0.0/24), starts one real ``bascule run``
daemon and Debian's ``nftlb`` in the lb namespace, hand-written one-rule tables next to them,
and measures with ``wrk``, side by side:

    direct     the client straight to rs1 (nginx ``return 200``, two workers): no hop at all
    hop        plain routing through the lb to rs1, no rule of anyone's for it: the limit of
               the hop (conntrack is active in the lb's namespace, as for NAT)
    dnat1      one hand-written rule, ``ip daddr VIP tcp dport 80 dnat to rs1``: NAT's limit
    fwd1       one hand-written netdev ingress rule, ``ether saddr/daddr set ... fwd``: DSR's
    nftlb-nat  nftlb ``mode: dnat``, round robin over the three servers (Relianoid's engine)
    nftlb-dsr  nftlb ``mode: dsr``, hash of the client's address and port
    nat        Bascule ``mode: l4, forwarding: nat`` (routed), round robin
    dsr        Bascule ``mode: l4, forwarding: dsr`` (flow Maglev), the real servers set up by
               what ``bascule dsr script dsr`` prints
    haproxy    ``mode: l7, type: generic``: Bascule's HAProxy as a TCP proxy

under two workloads: ``connections`` (``Connection: close``: a new TCP connection per
request, so requests/s is connections/s) and ``keepalive`` (wrk's default: persistent
connections). Each target's route on the client takes the next of several source addresses at
every run, so a round never reuses the 4-tuples of the one before (TIME_WAIT, conntrack
entries): the targets whose replies come back through the lb (hop, NAT) take theirs from
198.18.0.20-24 (routed via the lb on the real servers; no two of those that reach the same
server address share one: ``THROUGH_SOURCES``), the others from 198.18.0.10 and .25-29, and
the lb's conntrack table is flushed before every run (on a quiet machine one
round of the connections workload leaves more flows in TIME_WAIT than the table holds).
Runs are interleaved (all targets, then again, rotating who goes first), each figure is
the median of the rounds with the spread between them, and ratios to the hop and to nftlb are
taken within each round. Then the rule update latency: a weight change and adding a real
server to a 100-server NAT service, through Bascule's API (unix socket) and nftlb's REST API,
each timed by curl (``time_total``: the request until the answer, which both give once the
kernel has the change). Results go to ``bench/results/l4-<time>.json`` (git-ignored).

The method and what the ratios mean are in docs/performance.md, section "L4".
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shlex
import shutil
import signal
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

TARGETS = (
    "direct",
    "hop",
    "dnat1",
    "fwd1",
    "nftlb-nat",
    "nftlb-dsr",
    "nat",
    "dsr",
    "haproxy",
)
WORKLOADS = {
    "connections": ("-H", "Connection: close"),
    "keepalive": (),
}
# One VIP per service, 198.18.0.n. Bascule's daemon adds its own to the lb's eth0; the client
# reaches the others by a host route via the lb.
VIP_OCTETS = {
    "nat": 100,
    "dsr": 101,
    "haproxy": 102,
    "nftlb-nat": 104,
    "nftlb-dsr": 105,
    "dnat1": 106,
    "fwd1": 107,
    "bascule-big": 110,
    "nftlb-big": 111,
}
SERVER_WORKERS = 2  # nginx workers per real server
HOP_OCTET = 60  # rs1's second address, reached through the lb by plain routing
# Targets whose replies come back through the lb: their client sources are routed via the lb
# on the real servers; the others' are answered straight.
THROUGH_LB = {"hop", "dnat1", "nftlb-nat", "nat"}
# Which of the five routed-via-the-lb client addresses (198.18.0.20-24) each of them takes,
# in turn from one run to the next. dnat1, nftlb-nat and nat all reach rs1's own address on
# port 80, so sharing a source address they would meet the 4-tuples another target left in
# TIME_WAIT on the real server moments before (its SYN answered by the old connection's ACK,
# the client's retry a second later); the hop's destination is rs1's second address.
THROUGH_SOURCES = {"nat": (0, 1), "nftlb-nat": (2, 3), "dnat1": (4,), "hop": (4,)}
ON_SERVER_LO = ("dsr", "nftlb-dsr", "fwd1")  # DSR VIPs the real servers hold on lo
NFTLB_PORT = 5555
NFTLB_KEY = "bench"
BIG_SERVERS = 100  # the update-latency service's size


def l4_document(topology: Topology, check_interval: int) -> dict[str, Any]:
    """Bascule's services, as a user would write them: three over the same three real
    servers, and a 100-server NAT service (no check) for the update latency."""
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

    big = [{"address": address, "port": 80} for address in big_servers()]
    return {
        "virtual_services": [
            service("nat", mode="l4", forwarding="nat"),
            service("dsr", mode="l4", forwarding="dsr"),
            service("haproxy", mode="l7", type="generic"),
            service(
                "bascule-big",
                mode="l4",
                forwarding="nat",
                scheduler="weighted_round_robin",
                check={"type": "none"},
                real_servers=big,
            ),
        ]
    }


def big_servers(count: int = BIG_SERVERS, third: int = 2) -> list[str]:
    """Addresses of the update-latency services' servers (never reached: no traffic)."""
    return [f"198.18.{third}.{i}" for i in range(1, count + 1)]


def nftlb_document(topology: Topology, lb_mac: str, macs: Sequence[str]) -> dict[str, Any]:
    """nftlb's farms for the same service (its JSON format, nftlb's README): dnat (routed
    NAT, round robin) and dsr (hash of the client's address and port), plus the 100-server
    farm of the update latency."""
    servers = topology.real_servers

    def farm(name: str, mode: str, **fields: Any) -> dict[str, Any]:
        return {
            "name": name,
            "family": "ipv4",
            "virtual-addr": topology.vip(VIP_OCTETS[name]),
            "virtual-ports": "80",
            "mode": mode,
            "protocol": "tcp",
            "state": "up",
            **fields,
        }

    backends = [
        {"name": f"rs{i + 1}", "ip-addr": host.address, "port": "80", "state": "up"}
        for i, host in enumerate(servers)
    ]
    dsr_backends = [
        {**backend, "ether-addr": mac} for backend, mac in zip(backends, macs, strict=True)
    ]
    big = [
        {"name": f"b{i + 1}", "ip-addr": address, "port": "80", "weight": "1", "state": "up"}
        for i, address in enumerate(big_servers(third=3))
    ]
    return {
        "farms": [
            farm("nftlb-nat", "dnat", scheduler="rr", backends=backends),
            farm(
                "nftlb-dsr",
                "dsr",
                scheduler="hash",
                **{"sched-param": "srcip srcport"},
                iface="eth0",
                oface="eth0",
                **{"ether-addr": lb_mac},
                backends=dsr_backends,
            ),
            farm("nftlb-big", "dnat", scheduler="weight", backends=big),
        ]
    }


def hand_tables(topology: Topology, lb_mac: str, rs1_mac: str) -> str:
    """The limit of nftables: one DNAT rule and one DSR ``fwd`` rule, both to rs1."""
    rs1 = topology.real_servers[0].address
    return f"""table ip hand {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr {topology.vip(VIP_OCTETS["dnat1"])} tcp dport 80 dnat to {rs1}
    }}
}}
table netdev hand {{
    chain ingress {{
        type filter hook ingress device "eth0" priority -500; policy accept;
        ip daddr {topology.vip(VIP_OCTETS["fwd1"])} tcp dport 80 ether saddr set {lb_mac} \
            ether daddr set {rs1_mac} fwd to "eth0"
    }}
}}
"""


class Bench(BasculeBench):
    workloads = WORKLOADS

    def __init__(self, topology: Topology, args: argparse.Namespace) -> None:
        self.topology = topology
        self.args = args
        if topology.workdir is None:
            raise RuntimeError("the topology is not built")
        self.workdir = topology.workdir
        self.servers = [host.address for host in topology.real_servers]
        self.hop = topology.vip(HOP_OCTET)
        self.urls = {
            "direct": f"http://{self.servers[0]}/",
            "hop": f"http://{self.hop}/",
            **{
                name: f"http://{topology.vip(octet)}/"
                for name, octet in VIP_OCTETS.items()
                if name in TARGETS
            },
        }
        extra = topology.client.extra_addresses
        self.sources = {
            True: extra[:5],  # answered through the lb
            False: (topology.client.address, *extra[5:]),  # answered straight
        }
        self.runs_of: dict[str, int] = {}
        self.configs: dict[str, str] = {}
        self.bascule_dir = Path(tempfile.mkdtemp(prefix="bsc-bench4-", dir="/tmp"))
        self.bascule: subprocess.Popen[str] | None = None
        self.nftlb: subprocess.Popen[str] | None = None
        self.nginx: subprocess.Popen[bytes] | None = None

    # -- setup ---------------------------------------------------------------------------

    def setup(self) -> None:
        topo = self.topology
        for host in topo.hosts:
            for sysctl in SYSCTLS:
                topo.run(host, ["sysctl", "-qw", sysctl])
        # the lb routes (hop, NAT) and never redirects a client to a server on its link
        topo.run(
            "lb",
            [
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv4.conf.all.send_redirects=0",
                "net.ipv4.conf.default.send_redirects=0",
                "net.ipv4.conf.eth0.send_redirects=0",
            ],
        )
        for host in topo.real_servers:
            for source in self.sources[True]:
                topo.run(host, ["ip", "route", "add", f"{source}/32", "via", topo.lb.address])
        # the hop: a second address of rs1 that the client reaches through the lb
        topo.run(topo.real_servers[0], ["ip", "address", "add", f"{self.hop}/32", "dev", "eth0"])
        topo.run("lb", ["ip", "route", "add", f"{self.hop}/32", "dev", "eth0"])
        for target in self.args.targets:
            self.route(target, 0)
        commands = []
        for host in topo.real_servers:
            prefix = self.workdir / host.name
            # on every address: its own, the hop's and the DSR VIPs on lo
            text = real_server_nginx(host.name, "0.0.0.0", prefix)
            # Two workers each: the targets that reach rs1 alone (direct, hop, dnat1, fwd1) can
            # then use both CPUs too, as those spread over three servers do.
            text = text.replace("worker_processes 1;", f"worker_processes {SERVER_WORKERS};")
            commands.append(self._nginx_command(host.netns, prefix, text))
        # All three in ONE session: with sched_autogroup (see l7.py) each session gets its
        # share of the shared machine's CPUs, so three sessions would give the targets spread
        # over three servers three shares against the other users' load, one to those on rs1.
        self.nginx = subprocess.Popen(
            ["sh", "-c", " & ".join(commands) + " & wait"],
            stdout=subprocess.DEVNULL,
            **OWN_SESSION,
        )
        for address in self.servers:
            topo.wait_tcp("client", address, 80)
        self._start_bascule()
        for host in topo.real_servers:
            for name in ON_SERVER_LO[1:]:
                vip = topo.vip(VIP_OCTETS[name])
                topo.run(host, ["ip", "address", "add", f"{vip}/32", "dev", "lo"])
        lb_mac = self.mac("lb")
        macs = [self.mac(host.name) for host in topo.real_servers]
        tables = hand_tables(topo, lb_mac, macs[0])
        topo.run("lb", ["nft", "-f", "-"], input=tables)
        self.configs["hand"] = tables
        self._start_nftlb(nftlb_document(topo, lb_mac, macs))
        for target in self.args.targets:
            topo.wait_tcp("client", self.urls[target].split("/")[2], 80)

    def mac(self, host: str) -> str:
        link = json.loads(self.topology.run(host, ["ip", "-j", "link", "show", "eth0"]).stdout)
        return str(link[0]["address"])

    def route(self, target: str, run: int) -> str:
        """Point the client's route to ``target`` at the ``run``-th source address."""
        through = target in THROUGH_LB
        pool = self.sources[through]
        if through:
            pool = tuple(pool[i] for i in THROUGH_SOURCES[target])
        source = pool[run % len(pool)]
        destination = self.urls[target].split("/")[2]
        via = ["via", self.topology.lb.address] if target not in {"direct", "haproxy"} else []
        self.topology.run(
            "client",
            ["ip", "route", "replace", f"{destination}/32", *via, "dev", "eth0", "src", source],
        )
        return str(source)

    def wrk(self, target: str, workload: str, duration: float) -> dict[str, float]:
        run = self.runs_of[target] = self.runs_of.get(target, -1) + 1
        self.route(target, run)
        # Every run starts from an empty conntrack table in the lb: the connections workload
        # leaves ~100k flows in TIME_WAIT (120 s) per run, and on a quiet machine the table
        # (262,144) fills within a round, then drops new flows of whichever target comes next.
        self.topology.run("lb", ["conntrack", "-F"], check=False)
        return super().wrk(target, workload, duration)

    @staticmethod
    def _nginx_command(netns: str, prefix: Path, text: str) -> str:
        prefix.mkdir(parents=True)
        conf = prefix / "nginx.conf"
        conf.write_text(text)
        argv = ["ip", "netns", "exec", netns, "nginx", "-p", str(prefix), "-c", str(conf)]
        return shlex.join([*argv, "-e", str(prefix / "error.log")])

    def _start_nftlb(self, document: dict[str, Any]) -> None:
        path = self.workdir / "nftlb.json"
        path.write_text(json.dumps(document, indent=2))
        log = (self.workdir / "nftlb.log").open("w")
        try:
            argv = ["nftlb", "-k", NFTLB_KEY, "-H", "127.0.0.1", "-P", str(NFTLB_PORT)]
            self.nftlb = self.topology.popen(
                "lb",
                [*argv, "-L", "2", "-c", str(path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                **OWN_SESSION,
            )
        finally:
            log.close()
        self.topology.wait_tcp("lb", "127.0.0.1", NFTLB_PORT, timeout=30)
        self.configs["nftlb-document"] = json.dumps(document, indent=2)
        self.configs["nftlb-nft"] = self.topology.run(
            "lb", ["nft", "list", "table", "ip", "nftlb"]
        ).stdout

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
            if set(states.values()) <= {"up", "unchecked"}:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the virtual services are not up: {states}")
            time.sleep(0.3)
        self.configs["bascule-document"] = json.dumps(document, indent=2)
        self.configs["nft"] = self.topology.run("lb", ["nft", "list", "ruleset"]).stdout
        self.configs["haproxy"] = (self.bascule_dir / "haproxy" / "haproxy.cfg").read_text()

    def teardown(self) -> None:
        if self.nftlb is not None:
            self.topology.stop(self.nftlb)
        if self.nginx is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.nginx.pid, signal.SIGTERM)
            self.nginx.wait(timeout=10)
        super().teardown()

    # -- rule update latency ---------------------------------------------------------------

    def curl(self, method: str, url: str, body: Any = None, *, bascule: bool) -> float:
        """Milliseconds of one request (curl's time_total); an error answer stops the bench."""
        argv = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}"]
        argv += ["-X", method]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
        if bascule:
            argv += ["--unix-socket", str(self.bascule_dir / "bascule.sock")]
        else:
            argv += ["-H", f"Key: {NFTLB_KEY}"]
        done = self.topology.run("lb", [*argv, url], check=False, timeout=600)
        code, seconds = done.stdout.split()
        if done.returncode != 0 or not code.startswith("2"):
            raise RuntimeError(f"{method} {url}: {done.stdout} {done.stderr}")
        return float(seconds) * 1000

    def updates(self, runs: int) -> dict[str, dict[str, list[float]]]:
        """Weight changes and server additions (removed again, untimed), interleaved."""
        api = "http://bascule/api/v1/virtual-services/bascule-big/real-servers"
        farms = f"http://127.0.0.1:{NFTLB_PORT}/farms"
        first = big_servers()[0]
        times: dict[str, dict[str, list[float]]] = {
            who: {"weight": [], "add_server": []} for who in ("bascule", "nftlb")
        }
        for run in range(runs):
            weight = 2 + run
            times["bascule"]["weight"].append(
                self.curl("PATCH", f"{api}/{first}:80", {"weight": weight}, bascule=True)
            )
            body = {
                "farms": [
                    {"name": "nftlb-big", "backends": [{"name": "b1", "weight": str(weight)}]}
                ]
            }
            times["nftlb"]["weight"].append(self.curl("POST", farms, body, bascule=False))
            added = f"198.18.4.{run % 250 + 1}"
            times["bascule"]["add_server"].append(
                self.curl("POST", api, {"address": added, "port": 80}, bascule=True)
            )
            self.curl("DELETE", f"{api}/{added}:80", bascule=True)
            backend = {"name": f"n{run}", "ip-addr": added, "port": "80", "state": "up"}
            body = {"farms": [{"name": "nftlb-big", "backends": [backend]}]}
            times["nftlb"]["add_server"].append(self.curl("POST", farms, body, bascule=False))
            self.curl("DELETE", f"{farms}/nftlb-big/backends/n{run}", bascule=False)
        return times


# --------------------------------------------------------------------------- reporting

BASES = ("hop", "nftlb-nat", "nftlb-dsr")  # the per-round ratios every target gets


def summarize(runs: Sequence[Run]) -> dict[str, dict[str, dict[str, Any]]]:
    """l7's summary (medians and spreads of req/s and p99), with each target's ratios to the
    hop and to nftlb, taken within each round (the runs of a round are seconds apart, so the
    machine's load drifts less between them than over the whole bench), then the median."""
    summary = summarize_runs(runs, keys=("rps", "p99_ms"))
    for base in BASES:
        of = {(r.workload, r.round): r.rps for r in runs if r.target == base and r.rps}
        for run in runs:
            value = of.get((run.workload, run.round))
            if value:
                entry = summary[run.workload][run.target]
                entry.setdefault(f"to_{base}_rounds", []).append(run.rps / value)
        for targets in summary.values():
            for entry in targets.values():
                ratios = entry.get(f"to_{base}_rounds")
                if ratios:
                    entry[f"to_{base}"] = statistics.median(ratios)
    return summary


def summarize_updates(times: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for who, kinds in times.items():
        for kind, values in kinds.items():
            if values:
                ordered = sorted(values)
                found.setdefault(kind, {})[who] = {
                    "p50_ms": statistics.median(values),
                    "p90_ms": ordered[int(0.9 * (len(ordered) - 1))],
                    "max_ms": ordered[-1],
                }
    return found


# The targets: Bascule's NAT and DSR against the hop and their nftlb twin.
GOALS = {"nat": ("nftlb-nat", 0.95), "dsr": ("nftlb-dsr", 0.95)}


def _ratio(entry: dict[str, Any], base: str) -> str:
    rounds = entry.get(f"to_{base}_rounds", [])
    if not rounds:
        return "-"
    return f"{entry[f'to_{base}']:.2f} ({min(rounds):.2f}-{max(rounds):.2f})"


def table(summary: dict[str, dict[str, dict[str, Any]]], updates: dict[str, dict[str, Any]]) -> str:
    lines = []
    for workload, targets in summary.items():
        unit = "conn/s" if workload == "connections" else "req/s"
        lines.append(
            f"\n{workload}: medians of rounds, spread (max-min)/median; ratios: median of"
            " per-round ratios (min-max)"
        )
        lines.append(
            f"  {'target':<10}{unit:>9}{'spread':>8}  {'/hop':<18}{'/nftlb-nat':<18}"
            f"{'/nftlb-dsr':<18}{'p99 ms':>8}{'errors':>8}"
        )
        for target, entry in targets.items():
            lines.append(
                f"  {target:<10}{entry['rps']:>9.0f}{entry['rps_spread']:>8.0%}  "
                f"{_ratio(entry, 'hop'):<18}{_ratio(entry, 'nftlb-nat'):<18}"
                f"{_ratio(entry, 'nftlb-dsr'):<18}{entry['p99_ms']:>8.2f}"
                f"{entry['errors'] + entry['non_2xx']:>8}"
            )
    lines.append("\ntargets: >= 0.95 x hop and >= 1.0 x nftlb")
    for workload, targets in summary.items():
        for target, (peer, goal) in GOALS.items():
            found = targets.get(target)
            if found is None or "to_hop" not in found or f"to_{peer}" not in found:
                continue
            hop, versus = found["to_hop"], found[f"to_{peer}"]
            verdict = "met" if hop >= goal and versus >= 1.0 else "MISSED"
            lines.append(
                f"  {workload:<12}{target:<4} {hop:.2f} x hop, {versus:.2f} x {peer}: {verdict}"
            )
    if updates:
        lines.append("\nrule update latency, ms (p50 / p90 / max)")
        for kind, whos in updates.items():
            figures = "   ".join(
                f"{who} {v['p50_ms']:.1f} / {v['p90_ms']:.1f} / {v['max_ms']:.1f}"
                for who, v in whos.items()
            )
            lines.append(f"  {kind:<11} {figures}")
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
    parser.add_argument(
        "--updates", type=int, default=20, help="timed rule updates of each kind (0: none)"
    )
    parser.add_argument(
        "--only",
        choices=("updates",),
        help="updates: the rule update latency alone (no wrk run; the setup is the same)",
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
    with Topology(real_servers=3, client_extra_addresses=10) as topology:
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
    for tool in ("wrk", "nginx", "haproxy", "nft", "nftlb", "curl"):
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
        runs = [] if args.only == "updates" else bench.measure()
        updates = summarize_updates(bench.updates(args.updates))
        configs = bench.configs
    summary = summarize(runs)
    report = {
        "started": started.isoformat(timespec="seconds"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "environment": env_before,
        "loadavg_after": os.getloadavg(),
        "summary": summary,
        "updates": updates,
        "runs": [asdict(run) for run in runs],
        "configs": configs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"l4-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(table(summary, updates))
    print(f"\nload average before {env_before['loadavg']}, after {report['loadavg_after']}")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
