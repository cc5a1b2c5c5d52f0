"""Hostile-load benchmark: the management plane under attack (issue 10).

One command, as root, from the repository root::

    .venv/bin/python bench/hostile.py                  # 500 slow connections, 60 s
    .venv/bin/python bench/hostile.py --slow 200 --duration 30

It builds a throwaway network (tests/integration/netns.py: a client with extra addresses, a
load balancer and two real servers in their own namespaces, 198.18.0.0/24), starts a real
``bascule run`` in the lb namespace with its HTTPS listener on the lb's address, applies one
L7 service, and measures, from the lb namespace (tests/tools/hostile.py ``probe``):

    status       GET /api/v1/status on the unix socket, every 100 ms (what ``bascule status``
                 asks; the CLI's own start-up is timed apart: cli_status)
    admin        an administrator logging in over HTTPS (the API's login) and draining then
                 enabling a real server, every 3 s: each step timed, every failure counted

first quietly (the baseline), then while the client namespace attacks the HTTPS listener
(tests/tools/hostile.py ``attack``): ``--slow`` TLS connections sending a header line every
10 s and never finishing (from ``--sources`` addresses, reconnecting when cut), ``--bodies``
clients without credentials sending 16 MiB JSON bodies, and a viewer flooding requests it may
not make (60 KB paths). It also records the daemon's memory, descriptors, audit entries and
log size before and after. Results go to ``bench/results/hostile-<time>.json`` (git-ignored)
and a table is printed; docs/security.md quotes a run. The goal (issue 10): status under
500 ms p99 on the unix socket while attacked, and every admin round through.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from daemon import BASCULE, BasculeDaemon  # noqa: E402
from netns import TOOLS, Topology, cleanup_stale, netns_available  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
HOSTILE = TOOLS / "hostile.py"
ADMIN_PASSWORD = "bench-admin-password"
PORT = 8443
API = "/api/v1"


def process_figures(pid: int, data_dir: Path) -> dict[str, Any]:
    """The daemon's memory and descriptors, and what it keeps on disk."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
    database = sum(f.stat().st_size for f in data_dir.glob("bascule.db*"))
    return {
        "rss_mib": round(int(rss) / 1024, 1),
        "descriptors": len(os.listdir(f"/proc/{pid}/fd")),
        "database_kib": round(database / 1024, 1),
    }


class Bench:
    def __init__(self, topology: Topology, args: argparse.Namespace) -> None:
        self.topology = topology
        self.args = args
        self.lb = topology.host("lb").address
        self.daemon = BasculeDaemon(
            topology,
            env={"BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD, "BASCULE_RECONCILE_INTERVAL": "5"},
            run_args=("--listen", f"{self.lb}:{PORT}"),
        )

    def api(self) -> httpx.Client:
        transport = httpx.HTTPTransport(uds=str(self.daemon.data_dir / "bascule.sock"))
        return httpx.Client(transport=transport, base_url="http://bascule", timeout=60)

    def setup(self) -> str:
        """Start the daemon with one service; a viewer's API token for the attacker."""
        self.topology.start_real_servers()
        self.daemon.start(timeout=30)
        self.topology.wait_tcp("client", self.lb, PORT, timeout=30)
        servers = [{"address": rs.address, "port": 80} for rs in self.topology.real_servers]
        document = {
            "virtual_services": [
                {
                    "name": "web",
                    "address": self.topology.vip(),
                    "port": 80,
                    "check": {"type": "http", "path": "/health", "interval": 2},
                    "persistence": {"method": "source_ip"},
                    "real_servers": servers,
                }
            ]
        }
        with self.api() as api:
            api.put(f"{API}/config", json=document).raise_for_status()
            api.post(
                f"{API}/users", json={"name": "eve", "role": "viewer", "password": "eve-pass-1"}
            ).raise_for_status()
            made = api.post(f"{API}/tokens", json={"name": "eve", "role": "viewer", "owner": "eve"})
            made.raise_for_status()
            secret: str = made.json()["secret"]
        return secret

    def probe(self, seconds: float) -> dict[str, Any]:
        argv = [
            sys.executable, str(HOSTILE), "probe",
            "--socket", str(self.daemon.data_dir / "bascule.sock"),
            "--https", f"{self.lb}:{PORT}", "--duration", str(seconds),
            "--admin-password", ADMIN_PASSWORD, "--service", "web",
            "--server", f"{self.topology.real_servers[0].address}:80",
        ]  # fmt: skip
        ran = self.topology.run("lb", argv, timeout=seconds + 300)
        result: dict[str, Any] = json.loads(ran.stdout)
        return result

    def cli_status(self, runs: int) -> list[float]:
        """``bascule status`` on the unix socket, the whole command (its start-up included)."""
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            self.topology.run(
                "lb", [BASCULE, "--data-dir", str(self.daemon.data_dir), "status"], timeout=60
            )
            times.append((time.perf_counter() - started) * 1000)
        return times

    def attack(self, token: str) -> subprocess.Popen[str]:
        sources = self.topology.client.extra_addresses[: self.args.sources]
        argv = [
            sys.executable, str(HOSTILE), "attack",
            "--target", f"{self.lb}:{PORT}", "--duration", str(self.args.duration),
            "--slow", str(self.args.slow), "--slow-interval", "10",
            *[arg for source in sources for arg in ("--source", source)],
            "--bodies", str(self.args.bodies), "--body-mib", "16",
            "--viewer-token", token, "--viewer-rate", str(self.args.viewer_rate),
        ]  # fmt: skip
        return self.topology.popen("client", argv, stdout=-1, stderr=-1, text=True)

    def denied(self) -> int:
        with self.api() as api:
            answer = api.get(f"{API}/audit", params={"action": "access.denied", "limit": 1})
            answer.raise_for_status()
            total: int = answer.json()["total"]
        return total

    def teardown(self) -> None:
        if self.daemon.process is not None and self.daemon.process.poll() is None:
            try:
                self.daemon.terminate(timeout=60)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
        self.daemon.stop_haproxy()


def percentiles(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(ordered[len(ordered) // 2], 1),
        "p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
        "max": round(ordered[-1], 1),
    }


def table(report: dict[str, Any]) -> str:
    lines = [f"{'measure':34} {'count':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"]
    for phase in ("quiet", "attacked"):
        seen = report[phase]
        for name in ("status_ms", "admin_login_ms", "admin_drain_ms"):
            row = seen[name]
            if row["count"]:
                lines.append(
                    f"{phase + ' ' + name:34} {row['count']:6d} {row['p50']:8.1f}"
                    f" {row['p99']:8.1f} {row['max']:8.1f}"
                )
        lines.append(
            f"{phase + ' admin rounds ok':34} {seen['admin_ok']:>3}/{seen['admin_rounds']:<3}"
            f"   status failures: {seen['status_failures'] or 'none'}"
        )
    cli = report["cli_status_ms"]
    lines.append(f"{'cli status (whole command)':34} {'':6} {cli['p50']:8.1f} {cli['p99']:8.1f}")
    lines.append("")
    lines.append(f"attack: {json.dumps(report['attack'])}")
    lines.append(f"daemon before: {report['daemon_before']}")
    lines.append(f"daemon after:  {report['daemon_after']}")
    lines.append(f"audit access.denied entries added: {report['audit_denied_added']}")
    lines.append(f"daemon log grew by {report['log_growth_kib']} KiB")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", type=int, default=500, help="slow TLS connections")
    parser.add_argument("--sources", type=int, default=8, help="addresses they come from")
    parser.add_argument("--bodies", type=int, default=8, help="16 MiB unauthenticated bodies")
    parser.add_argument("--viewer-rate", type=float, default=50, help="refused requests/s")
    parser.add_argument("--duration", type=float, default=60, help="seconds of attack")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if not 1 <= args.sources <= 10:
        parser.error("--sources 1..10 (the client's extra addresses)")
    return args


@contextlib.contextmanager
def _bench(args: argparse.Namespace) -> Iterator[Bench]:
    with Topology(real_servers=2, client_extra_addresses=10) as topology:
        bench = Bench(topology, args)
        try:
            yield bench
        finally:
            bench.teardown()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bench/hostile.py needs root: it builds network namespaces")
    reason = netns_available()
    if reason is not None:
        sys.exit(reason)
    cleanup_stale()
    started = datetime.datetime.now(datetime.UTC)
    print(f"{args.slow} slow connections from {args.sources} addresses, {args.bodies} "
          f"16 MiB bodies, a viewer at {args.viewer_rate}/s, {args.duration:g} s; "
          f"load {os.getloadavg()}", file=sys.stderr)  # fmt: skip
    with _bench(args) as bench:
        token = bench.setup()
        assert bench.daemon.process is not None
        pid = bench.daemon.process.pid
        quiet = bench.probe(10)
        cli = bench.cli_status(10)
        before = process_figures(pid, bench.daemon.data_dir)
        denied_before = bench.denied()
        log_before = bench.daemon.log_path.stat().st_size
        attacker = bench.attack(token)
        time.sleep(5)  # the attack reaches its steady state (connections opened, bodies sent)
        attacked = bench.probe(args.duration - 10)
        out, err = attacker.communicate(timeout=args.duration + 300)
        if attacker.returncode != 0:
            raise RuntimeError(f"the attacker failed: {err[-4000:]}")
        report = {
            "started": started.isoformat(timespec="seconds"),
            "args": {k: str(v) for k, v in vars(args).items()},
            "quiet": quiet,
            "attacked": attacked,
            "cli_status_ms": percentiles(cli),
            "attack": json.loads(out),
            "daemon_before": before,
            "daemon_after": process_figures(pid, bench.daemon.data_dir),
            "audit_denied_added": bench.denied() - denied_before,
            "log_growth_kib": round((bench.daemon.log_path.stat().st_size - log_before) / 1024, 1),
            "loadavg_after": os.getloadavg(),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"hostile-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"\nwritten to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
