"""Chaos and soak: changes under load with the daemon killed outright, and a long run's slopes.

As root, from the repository root (needs iproute2, nft, haproxy)::

    .venv/bin/python bench/chaos.py                          # 1000 changes, SIGKILL ~ every 50
    .venv/bin/python bench/chaos.py --changes 200 --kill-every 20
    .venv/bin/python bench/chaos.py --changes 0 --soak-minutes 30   # the soak alone

It builds a throwaway network (tests/integration/netns.py: a client, the load balancer and six
real servers, 198.18.0.0/24) and runs a real ``bascule run`` in the lb namespace serving an L7
service (HAProxy, persistence by source address) and an L4 NAT service (nftables), both on
real servers rs1-rs3. Two clients load them the whole time: kept-alive connections on L7 and a
new connection per request on L4 (tests/tools/client.py).

**Chaos**: ``--changes`` random changes through the CLI, as an operator makes them: a weight,
a drain and its undo, a real server added (rs4-rs6) or deleted, a service added or deleted, a
rollback to an earlier revision. About every ``--kill-every`` changes (uniformly 1 to 2x) the
daemon gets SIGKILL at a random moment of a change in flight, and is started again. After
each restart: every revision acknowledged to the CLI is in the history (with its document),
and once the daemon has re-applied, the engines run the last revision (``status``:
``applied_revision`` is the head, the apply succeeded, and HAProxy's servers and the nftables
maps hold the document's real servers). At the end the clients must have seen 0 failures.

**Soak**: ``--soak-minutes`` at load with a change every ``--soak-interval`` seconds (a weight
flip); every 10 s the daemon's RSS and open descriptors, the SQLite files' size and HAProxy's
memory (its processes' RSS) are sampled, and their least-squares slopes printed (per hour).

Results go to ``bench/results/chaos-<time>.json`` (git-ignored); figures in
docs/performance.md, "Chaos and soak". ``tests/integration/test_chaos.py`` runs a short
version (a few dozen changes, two kills) in the suite.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

from daemon import BASCULE, BasculeDaemon
from netns import Topology, cleanup_stale, netns_available

RESULTS_DIR = Path(__file__).resolve().parent / "results"
L7_PORT, L4_PORT = 80, 8080
STEADY = ("rs1", "rs2", "rs3")  # always in both services
SPARE = ("rs4", "rs5", "rs6")  # added and deleted by the changes


@dataclass
class ChaosFigures:
    changes: int = 0
    acknowledged: int = 0  # changes the CLI reported committed
    kills: int = 0
    kills_in_flight: int = 0  # kills that hit a change before its answer
    restarts_s: list[float] = field(default_factory=list)  # start to the engines on the head
    missing_revisions: list[int] = field(default_factory=list)
    engine_mismatches: list[str] = field(default_factory=list)
    by_kind: dict[str, int] = field(default_factory=dict)
    # (seconds since the load started, change number, kind, "killed" or ""): to place each
    # failed request (its "t" in the clients' errors) among the changes
    timeline: list[tuple[float, int, str, str]] = field(default_factory=list)
    l7: dict[str, Any] = field(default_factory=dict)  # the clients' reports
    l4: dict[str, Any] = field(default_factory=dict)
    # HAProxy's request-log lines with a 5xx status (its termination state says who failed)
    server_errors: list[str] = field(default_factory=list)

    @property
    def failed_requests(self) -> int:
        return int(self.l7.get("failures", 0)) + int(self.l4.get("failures", 0))


@dataclass
class SoakFigures:
    minutes: float = 0.0
    changes: int = 0
    samples: list[dict[str, float]] = field(default_factory=list)
    slopes_per_hour: dict[str, float] = field(default_factory=dict)
    l7: dict[str, Any] = field(default_factory=dict)
    l4: dict[str, Any] = field(default_factory=dict)


class Lab:
    """The topology, the daemon and the document the changes evolve."""

    def __init__(self, topo: Topology, rng: random.Random) -> None:
        self.topo = topo
        self.rng = rng
        self.daemon = BasculeDaemon(topo)
        self.extra_services = 0
        self.document = self._base()

    def _server(self, name: str, port: int) -> dict[str, Any]:
        return {"address": self.topo.host(name).address, "port": port}

    def _base(self) -> dict[str, Any]:
        topo = self.topo
        check = {"type": "tcp", "interval": 1, "rise": 1, "fall": 3}
        return {
            "virtual_services": [
                {
                    "name": "web",
                    "address": topo.vip(),
                    "port": L7_PORT,
                    "type": "http",
                    "scheduler": "weighted_round_robin",
                    "persistence": {"method": "source_ip", "timeout": 600},
                    "check": check,
                    "real_servers": [self._server(n, 80) for n in STEADY],
                },
                {
                    "name": "fast",
                    "address": topo.vip(),
                    "port": L4_PORT,
                    "mode": "l4",
                    "forwarding": "nat",
                    "scheduler": "weighted_round_robin",
                    "check": check,
                    "real_servers": [self._server(n, 80) for n in STEADY],
                },
            ]
        }

    # -- the daemon ----------------------------------------------------------------------------

    def apply_in_flight(self, document: dict[str, Any]) -> subprocess.Popen[str]:
        path = self.daemon.data_dir.with_name(self.daemon.data_dir.name + "-chaos.yaml")
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        argv = [BASCULE, "--data-dir", str(self.daemon.data_dir), "--json", "apply"]
        return self.topo.popen(
            "lb",
            [*argv, "-f", str(path), "--force"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def rollback_in_flight(self, number: int) -> subprocess.Popen[str]:
        argv = [BASCULE, "--data-dir", str(self.daemon.data_dir), "--json", "rollback"]
        return self.topo.popen(
            "lb", [*argv, str(number)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def current(self) -> tuple[int, dict[str, Any]]:
        answer = json.loads(self.daemon.cli("--json", "export").stdout)
        return int(answer["revision"]), answer["document"]

    def wait_converged(self, timeout: float = 60.0) -> dict[str, Any]:
        """Until the engines run the head revision; the status then."""
        deadline = time.monotonic() + timeout
        while True:
            status: dict[str, Any] = self.daemon.status()
            if status["applied_revision"] == status["revision"] and status["apply_ok"]:
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"not converged in {timeout}s: {status['apply_message']}")
            time.sleep(0.2)

    def engine_mismatch(self, document: dict[str, Any]) -> str | None:
        """What the engines hold that the document does not say (None: they match)."""
        servers = self.daemon.haproxy("show servers state web")
        wanted = _service(document, "web")
        if wanted is not None:
            for rs in wanted["real_servers"]:
                if f" {rs['address']} " not in servers:
                    return f"HAProxy's web lacks {rs['address']}"
        listing = self.topo.run("lb", ["nft", "list", "table", "ip", "bascule"]).stdout
        fast = _service(document, "fast")
        for name in (*STEADY, *SPARE):
            address = self.topo.host(name).address
            listed = fast is not None and any(
                rs["address"] == address for rs in fast["real_servers"]
            )
            if listed != (f"{address}:80" in listing):  # its chain's dnat
                return f"nftables' fast {'lacks' if listed else 'still has'} {address}"
        return None


def _service(document: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((vs for vs in document["virtual_services"] if vs["name"] == name), None)


# -- the changes -------------------------------------------------------------------------------


def mutate(lab: Lab) -> tuple[str, dict[str, Any]]:
    """A random change of ``lab.document``: (its kind, the new document)."""
    rng = lab.rng
    document = json.loads(json.dumps(lab.document))
    services = document["virtual_services"]
    target = rng.choice([vs for vs in services if vs["name"] in ("web", "fast")])
    servers = target["real_servers"]
    spare = [n for n in SPARE if all(rs["address"] != lab.topo.host(n).address for rs in servers)]
    extras = [vs for vs in services if vs["name"].startswith("extra-")]
    kind = rng.choice(["weight", "weight", "drain", "add", "delete", "service"])
    if kind == "add" and spare:
        servers.append({"address": lab.topo.host(rng.choice(spare)).address, "port": 80})
    elif kind == "delete" and len(servers) > len(STEADY):
        servers.pop(rng.randrange(len(STEADY), len(servers)))
    elif kind == "drain":
        steady = servers[: len(STEADY)]
        rs = rng.choice(steady)
        rs["state"] = "enabled" if rs.get("state") == "drain" else "drain"
        if all(other.get("state") == "drain" for other in steady):
            # never all the steady ones: a spare added later may be deleted again, and a
            # service whose every server is drained answers 503 to a client not stuck to one
            rs["state"] = "enabled"
    elif kind == "service" and ((extras and rng.random() < 0.5) or len(extras) >= 3):
        services.remove(rng.choice(extras))
        kind = "service-delete"
    elif kind == "service":
        lab.extra_services += 1
        services.append(
            {
                "name": f"extra-{lab.extra_services}",
                "address": lab.topo.vip(),
                "port": 9000 + lab.extra_services % 500,
                "type": "http",
                "real_servers": [{"address": lab.topo.host("rs1").address, "port": 80}],
            }
        )
        kind = "service-add"
    else:
        kind = "weight"
        rng.choice(servers)["weight"] = rng.randint(1, 10)
    return kind, document


def start_load(topo: Topology, stop: Path, duration: float) -> tuple[Any, Any]:
    """Kept-alive clients on L7 and a new connection per request on L4, until ``stop``."""
    common = ["--duration", str(duration), "--stop-file", str(stop), "--timeout", "10"]
    l7 = topo.start_client(
        "--url",
        f"http://{topo.vip()}:{L7_PORT}/",
        "--keepalive",
        "--concurrency",
        "4",
        "--rate",
        "100",
        *common,
    )
    l4 = topo.start_client(
        "--url",
        f"http://{topo.vip()}:{L4_PORT}/",
        "--concurrency",
        "2",
        "--rate",
        "50",
        *common,
    )
    return l7, l4


def chaos(
    lab: Lab, changes: int, kill_every: int, log: Callable[[str], None], load_started: float
) -> ChaosFigures:
    figures = ChaosFigures()
    acknowledged: dict[int, dict[str, Any]] = {}
    next_kill = lab.rng.randint(max(1, kill_every // 2), kill_every * 3 // 2)
    for done in range(1, changes + 1):
        rollback = lab.rng.random() < 0.08 and len(acknowledged) > 2
        if rollback:
            number = lab.rng.choice(sorted(acknowledged)[-10:])
            kind, change = "rollback", lab.rollback_in_flight(number)
        else:
            kind, document = mutate(lab)
            change = lab.apply_in_flight(document)
        figures.by_kind[kind] = figures.by_kind.get(kind, 0) + 1
        kill = done == next_kill
        at = round(time.monotonic() - load_started, 3)
        figures.timeline.append((at, done, kind, "killed" if kill else ""))
        if kill:
            time.sleep(lab.rng.uniform(0.0, 0.6))  # somewhere in the change, or just after
            in_flight = change.poll() is None
            lab.daemon.kill()
            figures.kills += 1
            figures.kills_in_flight += in_flight
        out, err = change.communicate(timeout=120)
        if change.returncode == 0:
            answer = json.loads(out)
            revision = answer.get("revision")
            if revision is not None:
                figures.acknowledged += 1
                acknowledged[int(revision)] = answer
        elif not kill:
            raise AssertionError(f"change {done} ({kind}) refused: {err or out}")
        if kill:
            started = time.monotonic()
            lab.daemon.start(timeout=60)
            status = lab.wait_converged()
            figures.restarts_s.append(round(time.monotonic() - started, 2))
            numbers = stored_revisions(lab)
            missing = sorted(set(acknowledged) - numbers)
            figures.missing_revisions += missing
            if missing:
                log(f"change {done}: acknowledged revisions missing after the restart: {missing}")
            next_kill = done + lab.rng.randint(max(1, kill_every // 2), kill_every * 3 // 2)
            back = figures.restarts_s[-1]
            log(f"change {done}: killed, back in {back} s, head {status['revision']}")
        _, lab.document = lab.current()
        if kill or done % 25 == 0 or done == changes:
            lab.wait_converged()
            mismatch = _settled_mismatch(lab)
            if mismatch is not None:
                figures.engine_mismatches.append(f"after change {done}: {mismatch}")
                log(f"change {done}: the engines do not match the last revision: {mismatch}")
    figures.changes = changes
    return figures


def _settled_mismatch(lab: Lab, timeout: float = 15.0) -> str | None:
    """The engines against the document, given a moment (a status read may race a map update)."""
    deadline = time.monotonic() + timeout
    while True:
        mismatch = lab.engine_mismatch(lab.document)
        if mismatch is None or time.monotonic() > deadline:
            return mismatch
        time.sleep(0.5)


def stored_revisions(lab: Lab) -> set[int]:
    """Every revision number the history holds, a page at a time."""
    numbers: set[int] = set()
    before: list[str] = []
    while True:
        page = json.loads(lab.daemon.cli("--json", "history", "-n", "500", *before).stdout)
        items = page.get("items") or []
        numbers.update(int(item["number"]) for item in items)
        if len(items) < 500:
            return numbers
        before = ["--before", str(min(numbers))]


def logged_server_errors(lab: Lab, most: int = 50) -> list[str]:
    """The request-log lines (``requests.log`` and its rotations) whose status is 5xx."""
    logs = lab.daemon.data_dir / "logs"
    found: list[str] = []
    for path in sorted(logs.glob("requests.log*")):
        for line in path.read_text(errors="replace").splitlines():
            # client:port [date] frontend backend/server timers status bytes ...
            words = line.split()
            status = next((w for w in words[5:8] if len(w) == 3 and w.isdigit()), "")
            if status.startswith("5") and len(found) < most:
                found.append(line)
    return found


# -- the soak ------------------------------------------------------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def sample(lab: Lab, started: float) -> dict[str, float]:
    assert lab.daemon.process is not None
    pid = _daemon_pid(lab)
    data = lab.daemon.data_dir
    sqlite = sum(
        (data / name).stat().st_size
        for name in ("bascule.db", "bascule.db-wal", "bascule.db-shm")
        if (data / name).exists()
    )
    haproxy = 0
    pid_file = data / "haproxy" / "haproxy.pid"
    master = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
    if master is not None:
        children = Path(f"/proc/{master}/task/{master}/children")
        workers = [int(p) for p in children.read_text().split()] if children.exists() else []
        haproxy = sum(_rss_kib(p) for p in (master, *workers))
    return {
        "t_s": round(time.monotonic() - started, 1),
        "rss_kib": _rss_kib(pid),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "sqlite_bytes": sqlite,
        "haproxy_rss_kib": haproxy,
    }


def _daemon_pid(lab: Lab) -> int:
    """The ``bascule run`` process (``ip netns exec`` execs it: the same pid)."""
    assert lab.daemon.process is not None
    pid: int = lab.daemon.process.pid
    return pid


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per hour."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 3600


def soak(lab: Lab, minutes: float, interval: float, log: Callable[[str], None]) -> SoakFigures:
    figures = SoakFigures(minutes=minutes)
    started = time.monotonic()
    end = started + minutes * 60
    next_sample = started
    heavy = lab.topo.host("rs1").address
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_sample:
            figures.samples.append(sample(lab, started))
            next_sample += 10
            if len(figures.samples) % 6 == 0:
                log(f"soak: {figures.samples[-1]}")
        document = json.loads(json.dumps(lab.document))
        for vs in document["virtual_services"]:
            for rs in vs["real_servers"]:
                if rs["address"] == heavy:
                    rs["weight"] = 1 + figures.changes % 2  # flip 1 <-> 2
        lab.daemon.apply(document)
        lab.document = document
        figures.changes += 1
        time.sleep(max(0.0, interval - (time.monotonic() - now)))
    figures.samples.append(sample(lab, started))
    for metric in ("rss_kib", "fds", "sqlite_bytes", "haproxy_rss_kib"):
        points = [(s["t_s"], s[metric]) for s in figures.samples]
        figures.slopes_per_hour[metric] = round(slope_per_hour(points), 1)
    return figures


# -- the program ---------------------------------------------------------------------------------


def run(
    *,
    changes: int,
    kill_every: int,
    soak_minutes: float,
    soak_interval: float,
    seed: int,
    log: Callable[[str], None] = lambda line: print(line, flush=True),
) -> dict[str, Any]:
    rng = random.Random(seed)
    with Topology(real_servers=6) as topo:
        assert topo.workdir is not None
        topo.route_back_through_lb()
        topo.start_real_servers()
        lab = Lab(topo, rng)
        lab.daemon.start()
        try:
            lab.daemon.apply(lab.document)
            lab.wait_converged()
            for name in STEADY:
                lab.daemon.wait_status("web", f"{topo.host(name).address}:80", "up", timeout=30)
                lab.daemon.wait_status("fast", f"{topo.host(name).address}:80", "up", timeout=30)
            stop = topo.workdir / "stop-load"
            budget = 3600 * 24
            result: dict[str, Any] = {"seed": seed}
            if changes:
                load_started = time.monotonic()
                l7, l4 = start_load(topo, stop, budget)
                figures = chaos(lab, changes, kill_every, log, load_started)
                stop.touch()
                figures.l7, figures.l4 = topo.finish_client(l7), topo.finish_client(l4)
                figures.server_errors = logged_server_errors(lab)
                stop.unlink()
                result["chaos"] = {**asdict(figures), "failed_requests": figures.failed_requests}
            if soak_minutes:
                l7, l4 = start_load(topo, stop, budget)
                soaked = soak(lab, soak_minutes, soak_interval, log)
                stop.touch()
                soaked.l7, soaked.l4 = topo.finish_client(l7), topo.finish_client(l4)
                result["soak"] = asdict(soaked)
            return result
        finally:
            if lab.daemon.process is not None and lab.daemon.process.poll() is None:
                lab.daemon.stop()
            lab.daemon.stop_haproxy()


def summary(result: dict[str, Any]) -> str:
    lines = []
    chaos_figures = result.get("chaos")
    if chaos_figures:
        restarts = chaos_figures["restarts_s"]
        lines += [
            f"chaos: {chaos_figures['changes']} changes ({chaos_figures['by_kind']}), "
            f"{chaos_figures['acknowledged']} acknowledged, {chaos_figures['kills']} SIGKILLs "
            f"({chaos_figures['kills_in_flight']} during a change)",
            f"  requests: L7 kept-alive {chaos_figures['l7'].get('ok')} ok / "
            f"{chaos_figures['l7'].get('failures')} failed, L4 new connections "
            f"{chaos_figures['l4'].get('ok')} ok / {chaos_figures['l4'].get('failures')} failed",
            f"  acknowledged revisions missing after a restart: "
            f"{chaos_figures['missing_revisions'] or 'none'}",
            f"  engines not matching the last revision: "
            f"{chaos_figures['engine_mismatches'] or 'never'}",
            f"  5xx in HAProxy's request log: {chaos_figures['server_errors'] or 'none'}",
            f"  restart to the engines on the head: max {max(restarts, default=0)} s, "
            f"median {sorted(restarts)[len(restarts) // 2] if restarts else 0} s",
        ]
    soaked = result.get("soak")
    if soaked:
        lines += [
            f"soak: {soaked['minutes']} min, {soaked['changes']} changes, "
            f"L7 {soaked['l7'].get('ok')} ok / {soaked['l7'].get('failures')} failed, "
            f"L4 {soaked['l4'].get('ok')} ok / {soaked['l4'].get('failures')} failed",
            f"  slopes per hour: {soaked['slopes_per_hour']}",
            f"  first sample {soaked['samples'][0]}, last {soaked['samples'][-1]}",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--kill-every", type=int, default=50)
    parser.add_argument("--soak-minutes", type=float, default=0.0)
    parser.add_argument("--soak-interval", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run as root: it builds network namespaces")
    reason = netns_available()
    if reason:
        parser.error(reason)
    cleanup_stale()
    started = datetime.datetime.now(datetime.UTC)
    result = run(
        changes=args.changes,
        kill_every=args.kill_every,
        soak_minutes=args.soak_minutes,
        soak_interval=args.soak_interval,
        seed=args.seed,
    )
    result["started"] = started.isoformat()
    result["load_average"] = os.getloadavg()
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"chaos-{started.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1))
    print(summary(result))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
