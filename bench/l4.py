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
    nat1       Bascule's NAT, rs1 its only real server   } the hop's like for like: the same
    dsr1       Bascule's DSR, rs1 its only real server   } one nginx behind, only the ruleset
    nftlb-nat1 nftlb's dnat, rs1 its only backend        } differs from ``hop``
    nftlb-dsr1 nftlb's dsr, rs1 its only backend         }
    hop3       plain routing through the lb to the three real servers (one multipath route,
               a flow hashed on its addresses and ports): the limit of the hop for the
               services spread over three servers
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
198.18.0.20-26 (routed via the lb on the real servers; no two of those that reach the same
server address share one: ``THROUGH_SOURCES``), the others from 198.18.0.10 and .27-29, and
the lb's conntrack table is flushed before every run (on a quiet machine one
round of the connections workload leaves more flows in TIME_WAIT than the table holds).
Runs are interleaved (all targets, then again, rotating who goes first), each figure is
the median of the rounds with the spread between them, and ratios to the hop and to nftlb are
taken within each round. Besides requests/s every run gives the whole machine's CPU time per
request (/proc/stat: every process, interrupt and softirq) and, with ``--perf``, the CPU time
per request under netfilter's kernel functions (``perf record -a -g``). Then the rule update
latency: a weight change and adding a real server to a 100-server NAT service, through
Bascule's API (unix socket) and nftlb's REST API, each timed by curl (``time_total``: the
request until the answer, which both give once the kernel has the change). Results go to
``bench/results/l4-<time>.json`` (git-ignored).

The method and what the ratios mean are in docs/performance.md, section "L4".
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
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
from typing import Any, NamedTuple

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
    "nat1",
    "dsr1",
    "nftlb-nat1",
    "nftlb-dsr1",
    "hop3",
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
    "nat1": 108,
    "dsr1": 109,
    "bascule-big": 110,
    "nftlb-big": 111,
    "nftlb-nat1": 112,
    "nftlb-dsr1": 113,
}
SERVER_WORKERS = 2  # nginx workers per real server
HOP_OCTET = 60  # rs1's second address, reached through the lb by plain routing
HOP3_OCTET = 61  # an address on every real server's lo, reached through the lb by multipath
# Targets whose replies come back through the lb: their client sources are routed via the lb
# on the real servers; the others' are answered straight.
THROUGH_LB = {"hop", "hop3", "dnat1", "nftlb-nat", "nat", "nat1", "nftlb-nat1"}
THROUGH_COUNT = 7  # of the client's ten extra addresses, 198.18.0.20-26; the rest answered straight
# Which of the routed-via-the-lb client addresses each of them takes, in turn from one run to
# the next. dnat1, nftlb-nat, nat, nat1 and nftlb-nat1 all reach rs1's own address on port 80,
# so sharing a source address they would meet the 4-tuples another target left in TIME_WAIT on
# the real server moments before (its SYN answered by the old connection's ACK, the client's
# retry a second later); the hops' destinations are addresses of their own.
THROUGH_SOURCES = {
    "nat": (0, 1),
    "nftlb-nat": (2, 3),
    "dnat1": (4,),
    "nat1": (5,),
    "nftlb-nat1": (6,),
    "hop": (4,),
    "hop3": (4,),
}
ON_SERVER_LO = ("dsr", "nftlb-dsr", "fwd1", "nftlb-dsr1")  # DSR VIPs the real servers hold on lo
NFTLB_PORT = 5555
NFTLB_KEY = "bench"
BIG_SERVERS = 100  # the update-latency service's size


def l4_document(topology: Topology, check_interval: int) -> dict[str, Any]:
    """Bascule's services, as a user would write them: three over the same three real
    servers, NAT and DSR with rs1 alone (the hop's like for like), and a 100-server NAT
    service (no check) for the update latency."""
    servers = [{"address": host.address, "port": 80} for host in topology.real_servers]
    rs1 = servers[:1]
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
            service("nat1", mode="l4", forwarding="nat", real_servers=rs1),
            service("dsr1", mode="l4", forwarding="dsr", real_servers=rs1),
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
    NAT, round robin) and dsr (hash of the client's address and port), each over the three
    servers and over rs1 alone, plus the 100-server farm of the update latency."""
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

    def dsr_farm(name: str, backends: list[dict[str, str]]) -> dict[str, Any]:
        return farm(
            name,
            "dsr",
            scheduler="hash",
            **{"sched-param": "srcip srcport"},
            iface="eth0",
            oface="eth0",
            **{"ether-addr": lb_mac},
            backends=backends,
        )

    return {
        "farms": [
            farm("nftlb-nat", "dnat", scheduler="rr", backends=backends),
            dsr_farm("nftlb-dsr", dsr_backends),
            farm("nftlb-nat1", "dnat", scheduler="rr", backends=backends[:1]),
            dsr_farm("nftlb-dsr1", dsr_backends[:1]),
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


class CpuTicks(NamedTuple):
    """The whole machine's CPU time so far, in clock ticks (/proc/stat's first line)."""

    busy: int  # user, nice, system, irq and softirq: every process and interrupt
    softirq: int  # the network's receive and transmit work among it (and timers, RCU...)


def machine_ticks() -> CpuTicks:
    # proc(5): cpu user nice system idle iowait irq softirq steal guest guest_nice; guest
    # time is already counted in user, steal is the hypervisor's
    user, nice, system, _idle, _iowait, irq, softirq = (
        int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]
    )
    return CpuTicks(busy=user + nice + system + irq + softirq, softirq=softirq)


# The kernel functions whose CPU time per request ``--perf`` reports, each inclusive of what
# it calls. Only the lb's namespace has netfilter hooks (tables or conntrack), so their time
# is the lb's netfilter work.
KERNEL_SYMBOLS = (
    "nf_hook_slow",  # every netfilter hook: conntrack, NAT, every nft chain, netdev ingress
    "nf_conntrack_in",  # conntrack's lookup of a packet, and a new flow's entry
    "nf_nat_inet_fn",  # NAT: a new flow's nat chains and binding, every packet's rewrite
    "nft_do_chain",  # nftables' rules, every chain of every hook and family
    "nft_do_chain_netdev",  # the netdev ingress hook: DSR's path, its dispatch, fwd's transmit
    "__nf_conntrack_confirm",  # a new flow's entry put in the table
)


NETFILTER = KERNEL_SYMBOLS[0]  # all of it: the like-for-like table's difference between paths


def kernel_time(data: Path) -> dict[str, float]:
    """Nanoseconds of CPU under each of ``KERNEL_SYMBOLS`` (perf report --children) and in
    all (``total``) in a ``perf record -a -g -e cpu-clock`` file."""
    argv = ["perf", "report", "-i", str(data), "--children", "--sort", "sym", "--stdio"]
    argv += ["-g", "none", "--percent-limit", "0.01"]
    out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    count = re.search(r"# Event count \(approx\.\): (\d+)", out)
    total = int(count.group(1)) if count else 0  # cpu-clock counts nanoseconds
    found = dict.fromkeys(KERNEL_SYMBOLS, 0.0)
    for line in out.splitlines():
        match = re.match(r"\s+([\d.]+)%\s+[\d.]+%\s+\[k\] (\S+)\s*$", line)
        if match and match.group(2) in found:
            found[match.group(2)] = float(match.group(1)) / 100 * total
    return {**found, "total": float(total)}


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
        self.hop3 = topology.vip(HOP3_OCTET)
        self.urls = {
            "direct": f"http://{self.servers[0]}/",
            "hop": f"http://{self.hop}/",
            "hop3": f"http://{self.hop3}/",
            **{
                name: f"http://{topology.vip(octet)}/"
                for name, octet in VIP_OCTETS.items()
                if name in TARGETS
            },
        }
        extra = topology.client.extra_addresses
        self.sources = {
            True: extra[:THROUGH_COUNT],  # answered through the lb
            False: (topology.client.address, *extra[THROUGH_COUNT:]),  # answered straight
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
        # hop3: an address on every real server's lo and one multipath route to the three in
        # the lb, each flow hashed on its addresses and ports (fib_multipath_hash_policy=1,
        # ip-sysctl.rst), so connections spread over the servers as nat's and dsr's do
        for host in topo.real_servers:
            topo.run(host, ["ip", "address", "add", f"{self.hop3}/32", "dev", "lo"])
        topo.run("lb", ["sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1"])
        nexthops = [
            word
            for host in topo.real_servers
            for word in ("nexthop", "via", host.address, "dev", "eth0")
        ]
        topo.run("lb", ["ip", "route", "add", f"{self.hop3}/32", *nexthops])
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

    def wrk(self, target: str, workload: str, duration: float) -> dict[str, Any]:
        run = self.runs_of[target] = self.runs_of.get(target, -1) + 1
        self.route(target, run)
        # Every run starts from an empty conntrack table in the lb: the connections workload
        # leaves ~100k flows in TIME_WAIT (120 s) per run, and on a quiet machine the table
        # (262,144) fills within a round, then drops new flows of whichever target comes next.
        self.topology.run("lb", ["conntrack", "-F"], check=False)
        timed = duration >= self.args.duration  # not a warm-up run
        recording = self._perf_start(target, workload, run) if self.args.perf and timed else None
        before = machine_ticks()
        figures: dict[str, Any] = dict(super().wrk(target, workload, duration))
        after = machine_ticks()
        requests = figures["requests"] or 1
        tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
        figures["machine_us"] = (after.busy - before.busy) * tick_us / requests
        figures["softirq_us"] = (after.softirq - before.softirq) * tick_us / requests
        if recording is not None:
            figures["kernel_us"] = self._perf_stop(recording, requests)
        return figures

    # -- perf ------------------------------------------------------------------------------

    def _perf_start(
        self, target: str, workload: str, run: int
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """``perf record -a -g`` of the whole machine, until ``_perf_stop``."""
        data = self.workdir / f"perf-{target}-{workload}-{run}.data"
        argv = ["perf", "record", "-q", "-a", "-g", "-e", "cpu-clock"]
        argv += ["-F", str(self.args.perf_freq), "-o", str(data)]
        perf = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not data.exists() or data.stat().st_size == 0:  # perf writes its header once ready
            if perf.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("perf record did not start")
            time.sleep(0.05)
        return perf, data

    @staticmethod
    def _perf_stop(
        recording: tuple[subprocess.Popen[bytes], Path], requests: int
    ) -> dict[str, float]:
        perf, data = recording
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
        try:
            return {symbol: ns / 1000 / requests for symbol, ns in kernel_time(data).items()}
        finally:
            data.unlink(missing_ok=True)

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
        script = self._cli("dsr", "script", "dsr1")
        self.configs["dsr1-script"] = script
        self.topology.run(self.topology.real_servers[0], ["sh", "-c", script])
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

# The per-round ratios every target gets, of requests/s and of the machine's CPU per request.
BASES = ("hop", "hop3", "nftlb-nat", "nftlb-dsr", "nftlb-nat1", "nftlb-dsr1")
# The targets, like for like: each of Bascule's L4 services against the hop and the
# nftlb farm with the same real servers behind (rs1 alone, or the three); the one-rule tables
# (nftables' own limit, to rs1) shown beside them against the hop.
LIKE_FOR_LIKE = {
    "dnat1": ("hop", None),
    "nat1": ("hop", "nftlb-nat1"),
    "nat": ("hop3", "nftlb-nat"),
    "fwd1": ("hop", None),
    "dsr1": ("hop", "nftlb-dsr1"),
    "dsr": ("hop3", "nftlb-dsr"),
}
GOAL_HOP, GOAL_NFTLB = 0.95, 1.0


def summarize(runs: Sequence[Run]) -> dict[str, dict[str, dict[str, Any]]]:
    """l7's summary (medians and spreads of req/s, p99 and CPU per request), with each
    target's ratios to the hops and to nftlb, of requests/s (``to_<base>``) and of the machine's
    CPU per request (``cpu_to_<base>``), taken within each round (the runs of a round are
    seconds apart, so the machine's load drifts less between them than over the whole bench),
    then the median; and with ``--perf`` the median CPU per request under each kernel
    function (``kernel_us``)."""
    summary = summarize_runs(runs, keys=("rps", "p99_ms", "machine_us", "softirq_us"))
    for prefix, key in (("to", "rps"), ("cpu_to", "machine_us")):
        for base in BASES:
            of = {(r.workload, r.round): getattr(r, key) for r in runs if r.target == base}
            for run in runs:
                value = of.get((run.workload, run.round))
                if value:
                    entry = summary[run.workload][run.target]
                    entry.setdefault(f"{prefix}_{base}_rounds", []).append(
                        getattr(run, key) / value
                    )
    for targets in summary.values():
        for entry in targets.values():
            for name in [k for k in entry if k.endswith("_rounds") and "to_" in k]:
                entry[name.removesuffix("_rounds")] = statistics.median(entry[name])
    for run in runs:
        entry = summary[run.workload][run.target]
        for symbol, value in run.kernel_us.items():
            entry.setdefault("kernel_us_rounds", {}).setdefault(symbol, []).append(value)
    # What a path's netfilter work costs over a base's, per request: the difference within
    # each round of the time under nf_hook_slow (steadier than either figure alone)
    for base in BASES:
        of = {(r.workload, r.round): r.kernel_us for r in runs if r.target == base}
        for run in runs:
            found = of.get((run.workload, run.round), {})
            if NETFILTER in found and NETFILTER in run.kernel_us:
                entry = summary[run.workload][run.target]
                over = run.kernel_us[NETFILTER] - found[NETFILTER]
                entry.setdefault(f"netfilter_over_{base}_rounds", []).append(over)
    for targets in summary.values():
        for entry in targets.values():
            found = entry.get("kernel_us_rounds", {})
            entry["kernel_us"] = {symbol: statistics.median(v) for symbol, v in found.items()}
            for name in [k for k in entry if k.startswith("netfilter_over_")]:
                entry[name.removesuffix("_rounds")] = statistics.median(entry[name])
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


def _ratio(entry: dict[str, Any], base: str | None, prefix: str = "to") -> str:
    rounds = entry.get(f"{prefix}_{base}_rounds", [])
    if not rounds:
        return "-"
    if prefix == "netfilter_over":
        return f"{entry[f'{prefix}_{base}']:+.2f} ({min(rounds):+.2f}..{max(rounds):+.2f})"
    return f"{entry[f'{prefix}_{base}']:.2f} ({min(rounds):.2f}-{max(rounds):.2f})"


def like_for_like(summary: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """The issue's targets, each service against the hop and the nftlb farm with the same
    real servers behind, on requests/s, on the machine's CPU per request and (``--perf``) on
    the lb's netfilter time per request."""
    lines = [
        "\nlike for like: >= 0.95 x the hop and >= 1.0 x nftlb with the same real servers"
        " (req/s; CPU/req is the machine's, lower is cheaper; with --perf, netfilter us over:"
        " the lb's netfilter time per request (nf_hook_slow) minus the hop's or nftlb's, in"
        " each round)",
        f"  {'workload':<12}{'target':<7}{'hop':<6}{'req/s / hop':<19}{'nftlb':<11}"
        f"{'req/s / nftlb':<19}{'CPU/req / hop':<19}{'CPU/req / nftlb':<19}{'verdict':<8}"
        f"{'netfilter us over hop':<24}netfilter us over nftlb",
    ]
    for workload, targets in summary.items():
        for target, (hop, peer) in LIKE_FOR_LIKE.items():
            entry = targets.get(target)
            if entry is None or f"to_{hop}" not in entry:
                continue
            verdict = ""
            if peer is not None and f"to_{peer}" in entry:
                met = entry[f"to_{hop}"] >= GOAL_HOP and entry[f"to_{peer}"] >= GOAL_NFTLB
                verdict = "met" if met else "MISSED"
            lines.append(
                f"  {workload:<12}{target:<7}{hop:<6}{_ratio(entry, hop):<19}{peer or '-':<11}"
                f"{_ratio(entry, peer):<19}{_ratio(entry, hop, 'cpu_to'):<19}"
                f"{_ratio(entry, peer, 'cpu_to'):<19}{verdict:<8}"
                f"{_ratio(entry, hop, 'netfilter_over'):<24}"
                f"{_ratio(entry, peer, 'netfilter_over')}"
            )
    return lines


def kernel_table(summary: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """With ``--perf``: CPU per request under netfilter's kernel functions, medians."""
    lines = []
    for workload, targets in summary.items():
        if not any(entry["kernel_us"] for entry in targets.values()):
            continue
        lines.append(f"\n{workload}: kernel CPU per request, us (perf, inclusive; medians)")
        lines.append(f"  {'target':<11}" + "".join(f"{s:>24}" for s in KERNEL_SYMBOLS))
        for target, entry in targets.items():
            found = entry["kernel_us"]
            lines.append(
                f"  {target:<11}" + "".join(f"{found.get(s, 0.0):>24.2f}" for s in KERNEL_SYMBOLS)
            )
    return lines


def table(summary: dict[str, dict[str, dict[str, Any]]], updates: dict[str, dict[str, Any]]) -> str:
    lines = []
    for workload, targets in summary.items():
        unit = "conn/s" if workload == "connections" else "req/s"
        lines.append(
            f"\n{workload}: medians of rounds, spread (max-min)/median; CPU us per request of"
            " the whole machine and its softirq; ratios: median of per-round ratios (min-max)"
        )
        lines.append(
            f"  {'target':<11}{unit:>9}{'spread':>8}{'CPU us':>8}{'softirq':>8}{'busy':>6}  "
            f"{'/hop':<18}{'/hop3':<18}{'/nftlb-nat':<18}{'/nftlb-dsr':<18}{'p99 ms':>8}"
            f"{'errors':>8}"
        )
        for target, entry in targets.items():
            # the share of all CPUs busy during the run: at 100 % the machine's CPU per request
            # is the CPUs over the throughput
            busy = entry["machine_us"] * entry["rps"] / 1e6 / (os.cpu_count() or 1)
            lines.append(
                f"  {target:<11}{entry['rps']:>9.0f}{entry['rps_spread']:>8.0%}"
                f"{entry['machine_us']:>8.1f}{entry['softirq_us']:>8.1f}{busy:>6.0%}  "
                f"{_ratio(entry, 'hop'):<18}{_ratio(entry, 'hop3'):<18}"
                f"{_ratio(entry, 'nftlb-nat'):<18}{_ratio(entry, 'nftlb-dsr'):<18}"
                f"{entry['p99_ms']:>8.2f}{entry['errors'] + entry['non_2xx']:>8}"
            )
    lines += like_for_like(summary)
    lines += kernel_table(summary)
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
    parser.add_argument(
        "--perf",
        action="store_true",
        help="perf record -a -g every run: CPU per request under netfilter's kernel functions",
    )
    parser.add_argument("--perf-freq", type=int, default=999, help="perf's samples/s per CPU")
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
    for tool in (
        "wrk",
        "nginx",
        "haproxy",
        "nft",
        "nftlb",
        "curl",
        *(("perf",) if args.perf else ()),
    ):
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
