"""Management benchmark: API write latency, WUI page render time and memory at scale
(issues 5 and 15).

One command, as root, from the repository root::

    .venv/bin/python bench/management.py               # 1,000 x 10, 30 writes, 20 page loads
    .venv/bin/python bench/management.py --services 200 --runs 10 --pages 20
    .venv/bin/python bench/management.py --compare bench/results/management-<before>.json

``--compare`` prints a previous run's figures beside this run's (before | after). To measure
another checkout's daemon (the "before"), put its ``src`` first on the path: the daemon is
started with this environment, ``PYTHONPATH=/path/to/other/src`` wins over this editable
install.

It builds a throwaway network (tests/integration/netns.py: a client and a load balancer in
their own namespaces, 198.18.0.0/24), starts a real ``bascule run`` in the lb namespace with
its HTTPS listener on 127.0.0.1:8443, and applies one document of ``--services`` L7 HTTP
virtual services (one VIP, ports 10000 and up) of ``--servers`` real servers each, addressed
in 198.19.0.0/16 (part of the benchmarking range 198.18.0.0/15). The real servers need not
exist: health checks are off, no traffic is sent; what is measured is the control plane.
If the document is not applied (HAProxy refused it), the bench says why and stops.

Then, from a client process inside the lb namespace (on the appliance, so the figures are
Bascule's and not the network's), over the unix socket and over HTTPS with an admin API token:

    weight        PATCH a real server's weight: an operate change, runtime API, no reload
    drain, disable, enable
                  POST .../drain|disable|enable of a real server: runtime API, no reload
    add_server    POST a new real server: a structural change, applied with HAProxy's
                  ``add server`` (no reload) and the configuration file rewritten (it is
                  removed again after each run, untimed, with ``del server``); the deferred
                  reload that makes it an ordinary server follows a few seconds later, in the
                  background, and a write that comes meanwhile waits for it (it holds the
                  change lock): the other rows' p95 include it
    status        GET /api/v1/status: every service and real server with health and counters

With ``--tail SECONDS`` (0: not run), over the unix socket, beside the statistics sampler
(every 10 s) and the repair loop (every 5 s), each for that long, one request every 100 ms:

    status_paced  GET /api/v1/status, as a dashboard or a monitoring system polls it
    weight_paced  PATCH a real server's weight (a new weight each time, services in turn)

so that a p99 counts: 60 s give ~400 requests of each (the writes above are ``--runs``).

and over HTTPS with a WUI session (logged in through the form): the dashboard (``/``), its
live fragment (``/dashboard/live``, polled every 2 s by the page), one virtual service's page
and its live fragment. Each figure is the p50 and p95 of the runs, in milliseconds, of the
whole request as the client sees it (and the p99 where there are 100 runs or more). The
daemon's resident memory (VmRSS) is read after the apply, 30 s later (the statistics sampler
has run), at the end of the writes and ``--settle-after`` seconds later (15: a sample has run
and given back what the writes freed). Results go to ``bench/results/management-<time>.json``
(git-ignored) and a table is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from daemon import BasculeDaemon  # noqa: E402
from https_access import WebClient  # noqa: E402
from netns import Topology, cleanup_stale, netns_available  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
ADMIN_PASSWORD = "bench-admin-password"  # a throwaway daemon's: BASCULE_ADMIN_PASSWORD
HTTPS = "https://127.0.0.1:8443"
FIRST_PORT = 10000
API = "/api/v1"


# --------------------------------------------------------------------------- the document


def service_name(index: int) -> str:
    return f"vs-{index:03d}"


SERVERS = 10  # per service; the client side's addresses follow the document's
ADDED = "198.19.250"  # the real servers add_server adds (never one of the document's)


def server_address(service: int, server: int, servers: int = SERVERS) -> str:
    """The ``n``-th real server of the document, n = service x servers + server, counted from
    198.19.0.1: 198.19.0.0/16 is inside 198.18.0.0/15 (RFC 2544)."""
    n = service * servers + server + 1
    return f"198.19.{n // 256}.{n % 256}"


def document(vip: str, services: int, servers: int) -> dict[str, Any]:
    return {
        "virtual_services": [
            {
                "name": service_name(i),
                "address": vip,
                "port": FIRST_PORT + i,
                "type": "http",
                "scheduler": "weighted_round_robin",
                "check": {"type": "none"},
                "real_servers": [
                    {"address": server_address(i, j, servers), "port": 80} for j in range(servers)
                ],
            }
            for i in range(services)
        ]
    }


# --------------------------------------------------------------------------- the client side
# Runs inside the lb namespace (``--client``): prints one JSON object of timings (ms).


def timed(request: Callable[..., httpx.Response], url: str, **kwargs: Any) -> float:
    """Milliseconds of one whole request; an error answer stops the bench."""
    start = time.perf_counter()
    response = request(url, **kwargs)
    elapsed = (time.perf_counter() - start) * 1000
    if response.status_code >= 400:
        raise RuntimeError(
            f"{response.request.method} {url}: {response.status_code} {response.text[:500]}"
        )
    return elapsed


def api_writes(
    client: httpx.Client, args: argparse.Namespace, weights: int
) -> dict[str, list[float]]:
    """Weight changes, real server additions (then removals, untimed) and status reads.

    Every weight is new (``weights`` + run: each door has its own range), so every PATCH is a
    real change: a new revision and a runtime command, never the "no change" shortcut.
    """
    states = ("drain", "disable", "enable")
    times: dict[str, list[float]] = {
        what: [] for what in ("weight", *states, "add_server", "status")
    }
    for run in range(args.runs):
        index = (run * 7) % args.services  # spread over the services
        key = f"{server_address(index, 0, args.servers)}:80"
        path = f"{API}/virtual-services/{service_name(index)}/real-servers"
        weight = weights + run
        times["weight"].append(timed(client.patch, f"{path}/{key}", json={"weight": weight}))
        for state in states:
            times[state].append(timed(client.post, f"{path}/{key}/{state}"))
        if run < args.structural_runs:
            added = f"{ADDED}.{run % 250 + 1}"
            times["add_server"].append(
                timed(client.post, path, json={"address": added, "port": 80})
            )
            timed(client.delete, f"{path}/{added}:80")
        times["status"].append(timed(client.get, f"{API}/status"))
    return times


TAIL_GAP = 0.1  # seconds between two paced requests


def paced(client: httpx.Client, args: argparse.Namespace) -> dict[str, list[float]]:
    """Status reads, then weight changes, one every ``TAIL_GAP`` for ``args.tail`` seconds
    each: requests that arrive at every moment of the sampler's and the repair loop's
    cycles (docs/performance.md section 18)."""
    times: dict[str, list[float]] = {"status_paced": [], "weight_paced": []}
    end = time.monotonic() + args.tail
    while time.monotonic() < end:
        times["status_paced"].append(timed(client.get, f"{API}/status"))
        time.sleep(TAIL_GAP)
    end, run = time.monotonic() + args.tail, 0
    while time.monotonic() < end:
        index = (run * 7) % args.services
        key = f"{server_address(index, 1, args.servers)}:80"
        path = f"{API}/virtual-services/{service_name(index)}/real-servers/{key}"
        times["weight_paced"].append(timed(client.patch, path, json={"weight": 4000 + run}))
        run += 1
        time.sleep(TAIL_GAP)
    return times


def wui_pages(web: WebClient, args: argparse.Namespace) -> dict[str, list[float]]:
    name = service_name(args.services // 2)
    pages = {
        "dashboard": "/",
        "dashboard_live": "/dashboard/live",
        "virtual_service": f"/virtual-services/{name}",
        "virtual_service_live": f"/virtual-services/{name}/live",
    }
    times: dict[str, list[float]] = {page: [] for page in pages}
    for _ in range(args.pages):
        for page, path in pages.items():
            times[page].append(timed(web.get, path))
    return times


def client_main(args: argparse.Namespace) -> int:
    results: dict[str, dict[str, list[float]]] = {}
    socket = httpx.HTTPTransport(uds=args.socket)
    with httpx.Client(transport=socket, base_url="http://bascule", timeout=120) as local:
        results["unix"] = api_writes(local, args, weights=2000)
        if args.tail > 0:
            results["unix"].update(paced(local, args))
    token = {"Authorization": f"Bearer {args.token}"}
    with httpx.Client(base_url=HTTPS, verify=args.ca, headers=token, timeout=120) as remote:
        results["https"] = api_writes(remote, args, weights=3000)
    with WebClient(HTTPS, timeout=120) as web:
        web.login("admin", ADMIN_PASSWORD)
        results["wui"] = wui_pages(web, args)
    print(json.dumps(results))
    return 0


# --------------------------------------------------------------------------- the root side


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: the value below which ``fraction`` of the runs fall."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summarize(results: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, Any]]:
    return {
        f"{door}/{what}": {
            "runs": len(values),
            "p50_ms": round(statistics.median(values), 2),
            "p95_ms": round(percentile(values, 0.95), 2),
            "max_ms": round(max(values), 2),
            **({"p99_ms": round(percentile(values, 0.99), 2)} if len(values) >= 100 else {}),
        }
        for door, measured in results.items()
        for what, values in measured.items()
    }


def table(report: dict[str, Any], before: dict[str, Any] | None = None) -> str:
    """This run's figures; with ``before`` (a previous run's report), its p50 and p95 first."""
    summary: dict[str, dict[str, Any]] = report["summary"]
    old: dict[str, dict[str, Any]] = before["summary"] if before else {}
    head = f"{'measure':28} {'runs':>5} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'max ms':>9}"
    if before:
        head = (
            f"{'measure':28} {'before p50':>11} {'p95':>9} {'p99':>9} | {'after p50':>10}"
            f" {'p95':>9} {'p99':>9}"
        )
    lines = [head]

    def p99(row: dict[str, Any]) -> str:
        return f"{row['p99_ms']:9.1f}" if "p99_ms" in row else f"{'-':>9}"

    for name, row in summary.items():
        if before:
            was = old.get(name)
            then = (
                f"{was['p50_ms']:11.1f} {was['p95_ms']:9.1f} {p99(was)}"
                if was
                else f"{'-':>11} {'-':>9} {'-':>9}"
            )
            lines.append(
                f"{name:28} {then} | {row['p50_ms']:10.1f} {row['p95_ms']:9.1f} {p99(row)}"
            )
        else:
            lines.append(
                f"{name:28} {row['runs']:5d} {row['p50_ms']:9.1f} {row['p95_ms']:9.1f}"
                f" {p99(row)} {row['max_ms']:9.1f}"
            )
    lines.append("")
    for section, unit in (("setup_s", "s"), ("rss_mib", "MiB")):
        for name, value in report[section].items():
            was = (before or {}).get(section, {}).get(name)
            then = "" if not before else f"{'-' if was is None else f'{was:.2f}'} -> "
            lines.append(f"{name}: {then}{value:.2f} {unit}")
    return "\n".join(lines)


def rss_mib(pid: int) -> float:
    """A process's resident memory (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class Bench:
    def __init__(self, topology: Topology, args: argparse.Namespace) -> None:
        self.topology = topology
        self.args = args
        # Production's reconcile interval, not the tests' 1 s: the loop competes for the lock.
        self.daemon = BasculeDaemon(
            topology,
            env={"BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD, "BASCULE_RECONCILE_INTERVAL": "5"},
        )
        self.setup_times: dict[str, float] = {}
        self.rss: dict[str, float] = {}

    def daemon_rss(self, when: str) -> None:
        pid = int((self.daemon.data_dir / "bascule.pid").read_text())
        self.rss[when] = rss_mib(pid)

    def local(self) -> httpx.Client:
        transport = httpx.HTTPTransport(uds=str(self.daemon.data_dir / "bascule.sock"))
        return httpx.Client(transport=transport, base_url="http://bascule", timeout=600)

    def setup(self) -> str:
        """Start the daemon, apply the document; return an admin API token."""
        self.daemon.start(timeout=30)
        self.topology.wait_tcp("lb", "127.0.0.1", 8443, timeout=30)
        self.daemon_rss("started")
        wanted = document(self.topology.vip(), self.args.services, self.args.servers)
        with self.local() as api:
            start = time.monotonic()
            response = api.put(f"{API}/config", json=wanted, params={"message": "bench"})
            self.setup_times["apply_whole_document"] = time.monotonic() - start
            if response.status_code != 200 or not response.json().get("applied"):
                message = response.json().get("message") if response.status_code == 200 else ""
                raise RuntimeError(
                    f"the document was not applied after {self.setup_times} s: "
                    f"{message or response.text[-2000:]}\n{self.daemon.log()}"
                )
            self.daemon_rss("applied")
            start = time.monotonic()
            api.get(f"{API}/status").raise_for_status()
            self.setup_times["first_status"] = time.monotonic() - start
            # the statistics sampler runs every 10 s: three samples of every server
            time.sleep(self.args.settle)
            self.daemon_rss(f"applied_plus_{self.args.settle:g}s")
            created = api.post(
                f"{API}/tokens", json={"name": "bench", "role": "admin", "owner": "admin"}
            )
            created.raise_for_status()
            secret: str = created.json()["secret"]
        return secret

    def measure(self, token: str) -> dict[str, dict[str, list[float]]]:
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--client",
            "--socket",
            str(self.daemon.data_dir / "bascule.sock"),
            "--token",
            token,
            "--ca",
            str(self.daemon.data_dir / "tls" / "cert.pem"),
            "--services",
            str(self.args.services),
            "--servers",
            str(self.args.servers),
            "--structural-runs",
            str(self.args.structural_runs),
            "--runs",
            str(self.args.runs),
            "--pages",
            str(self.args.pages),
            "--tail",
            str(self.args.tail),
        ]
        proc = self.topology.run("lb", argv, check=False, timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"the client failed: {proc.stderr[-4000:]}\n{self.daemon.log()}")
        results: dict[str, dict[str, list[float]]] = json.loads(proc.stdout)
        self.daemon_rss("measured")
        # once the writes' memory is given back (the trim after the last change, 1 s, and
        # after the next statistics sample, every 10 s): "measured" is one moment of a
        # process that builds and drops tens of MiB per status report and page
        time.sleep(self.args.settle_after)
        self.daemon_rss(f"measured_plus_{self.args.settle_after:g}s")
        return results

    def teardown(self) -> None:
        if self.daemon.process is not None and self.daemon.process.poll() is None:
            try:
                self.daemon.terminate(timeout=60)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
        self.daemon.stop_haproxy()


def environment() -> dict[str, Any]:
    def first_line(*argv: str) -> str:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        return lines[0] if lines else ""

    return {
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "haproxy": first_line("haproxy", "-v"),
        "git": first_line("git", "-C", str(ROOT), "describe", "--always", "--dirty"),
    }


def prepare(script: str) -> tuple[datetime.datetime, dict[str, Any]]:
    """The start of a bench that builds network namespaces (as root, stale ones removed): its
    time and the machine's ``environment``."""
    if os.geteuid() != 0:
        sys.exit(f"bench/{script} needs root: it builds network namespaces")
    reason = netns_available()
    if reason is not None:
        sys.exit(reason)
    cleanup_stale()
    return datetime.datetime.now(datetime.UTC), environment()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--servers", type=int, default=10, help="real servers per service")
    parser.add_argument("--runs", type=int, default=30, help="API writes per kind and door")
    parser.add_argument(
        "--structural-runs", type=int, default=10, help="of the runs, those that add a server"
    )
    parser.add_argument("--pages", type=int, default=20, help="loads of each WUI page")
    parser.add_argument(
        "--tail", type=float, default=0, help="seconds of paced status reads, then of weights"
    )
    parser.add_argument("--settle", type=float, default=30, help="seconds before the RSS")
    parser.add_argument(
        "--settle-after", type=float, default=15, help="seconds after the writes before the RSS"
    )
    parser.add_argument("--compare", type=Path, help="a previous result, printed beside")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    # The client side, run inside the lb namespace by the bench itself.
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--socket", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--ca", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.services * args.servers <= 60_000:
        parser.error("at most 60,000 real servers (addresses 198.19.0.1 and up)")
    return args


@contextlib.contextmanager
def _bench(args: argparse.Namespace) -> Iterator[Bench]:
    with Topology(real_servers=0) as topology:
        bench = Bench(topology, args)
        try:
            yield bench
        finally:
            bench.teardown()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.client:
        return client_main(args)
    started, env_before = prepare("management.py")
    print(
        f"{args.services} virtual services x {args.servers} real servers, "
        f"{args.runs} writes, {args.pages} page loads, load {env_before['loadavg']}",
        file=sys.stderr,
    )
    with _bench(args) as bench:
        token = bench.setup()
        print(f"setup: {bench.setup_times}", file=sys.stderr)
        results = bench.measure(token)
        setup_times = bench.setup_times
        rss = bench.rss
    summary = summarize(results)
    report = {
        "started": started.isoformat(timespec="seconds"),
        "args": {
            k: str(v) if isinstance(v, Path) else v
            for k, v in vars(args).items()
            if k not in {"client", "socket", "token", "ca"}
        },
        "environment": env_before,
        "loadavg_after": os.getloadavg(),
        "setup_s": setup_times,
        "rss_mib": rss,
        "summary": summary,
        "runs_ms": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"management-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    before = json.loads(args.compare.read_text()) if args.compare else None
    print(table(report, before))
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
