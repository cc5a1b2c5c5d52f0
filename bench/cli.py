"""CLI benchmark: how long a ``bascule`` command takes, before and after a change (issue 9).

One command, as root, from the repository root::

    .venv/bin/python bench/cli.py                    # 10 runs of each command, before = main
    .venv/bin/python bench/cli.py --runs 20 --before 6d925a3

It builds a throwaway network namespace (tests/integration/netns.py: the load balancer
only, 198.18.0.0/24), starts one real ``bascule run`` daemon there with a small document
(two L7 services of three real servers each, no health checks), and times whole processes
as a user's shell runs them, from the root namespace (the daemon's unix socket is a path, so
it is reachable from there):

    --help        ``bascule --help``: nothing but importing the CLI and printing its help
    status        ``bascule status``: the status table
    status_json   ``bascule --json status``
    vs_list       ``bascule vs list``

for two versions of Bascule's own code: ``after`` (this worktree's ``src``) and ``before``
(the ``--before`` git ref, ``main`` by default, exported with ``git archive`` into a
temporary directory). Both run on the same interpreter and the same installed packages, with
their ``src`` first on ``PYTHONPATH``, against the same daemon: only Bascule's code differs.
Runs are interleaved (before, after, then again), each figure is the median of the runs in
milliseconds, with the fastest and slowest run, because the machine is small and shared.
It also reports ``python -X importtime -c 'import bascule.main'`` (the cumulative import time
of the console script's module, median of the runs). Results go to
``bench/results/cli-<time>.json`` (git-ignored) and a table is printed.
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
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from daemon import BasculeDaemon  # noqa: E402
from netns import Topology, cleanup_stale, netns_available  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
COMMANDS: dict[str, tuple[str, ...]] = {
    "--help": ("--help",),
    "status": ("status",),
    "status_json": ("--json", "status"),
    "vs_list": ("vs", "list"),
}
# What the console script does (``bascule = "bascule.main:main"``), from whichever ``src`` is
# first on PYTHONPATH.
LAUNCHER = "import sys; sys.argv[0] = 'bascule'; from bascule.main import main; main()"
TARGET_MS = 250.0  # issue 9: `bascule status` answers in under 250 ms (median of 10)


def document(vip: str) -> dict[str, Any]:
    return {
        "virtual_services": [
            {
                "name": f"web-{i}",
                "address": vip,
                "port": 8000 + i,
                "type": "http",
                "check": {"type": "none"},
                "real_servers": [{"address": f"198.18.0.{11 + j}", "port": 80} for j in range(3)],
            }
            for i in range(2)
        ]
    }


def export_ref(ref: str, into: Path) -> Path:
    """``src/`` of ``ref`` (``git archive``) under ``into``; returns that ``src``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "src"],
        capture_output=True,
        check=True,
    ).stdout
    path = into / "archive.tar"
    path.write_bytes(archive)
    with tarfile.open(path) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def environment_for(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": ""}


def which_bascule(src: Path) -> str:
    """The file ``import bascule`` finds with ``src`` first: proof of which code runs."""
    done = subprocess.run(
        [sys.executable, "-c", "import bascule; print(bascule.__file__)"],
        env=environment_for(src),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def time_command(src: Path, data_dir: Path, args: Sequence[str]) -> float:
    """Milliseconds of one whole ``bascule`` process; a failure stops the bench."""
    argv = [sys.executable, "-c", LAUNCHER, "--data-dir", str(data_dir), *args]
    start = time.perf_counter()
    done = subprocess.run(argv, env=environment_for(src), capture_output=True, text=True)
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"bascule {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return elapsed


def import_time(src: Path) -> float:
    """Milliseconds ``import bascule.main`` takes (``-X importtime``, cumulative)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import bascule.main"],
        env=environment_for(src),
        capture_output=True,
        text=True,
        check=True,
    )
    for line in reversed(done.stderr.splitlines()):
        fields = [field.strip() for field in line.split("|")]
        if len(fields) == 3 and fields[2] == "bascule.main":
            return int(fields[1]) / 1000
    raise RuntimeError(f"no bascule.main in -X importtime output:\n{done.stderr[-2000:]}")


def measure(
    versions: dict[str, Path], data_dir: Path, runs: int
) -> dict[str, dict[str, list[float]]]:
    """version -> measure -> milliseconds of each run, interleaved between versions."""
    times: dict[str, dict[str, list[float]]] = {
        version: {name: [] for name in [*COMMANDS, "import"]} for version in versions
    }
    order = list(versions)
    for run in range(runs):
        for version in order[run % 2 :] + order[: run % 2]:  # who goes first alternates
            src = versions[version]
            for name, args in COMMANDS.items():
                times[version][name].append(time_command(src, data_dir, args))
            times[version]["import"].append(import_time(src))
    return times


def summarize(times: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, dict[str, float]]]:
    return {
        version: {
            name: {
                "p50_ms": round(statistics.median(values), 1),
                "min_ms": round(min(values), 1),
                "max_ms": round(max(values), 1),
            }
            for name, values in measured.items()
        }
        for version, measured in times.items()
    }


def table(summary: dict[str, dict[str, dict[str, float]]]) -> str:
    before, after = summary["before"], summary["after"]
    lines = [
        f"{'measure':22} {'before p50':>11} {'(min-max)':>15} {'after p50':>10} "
        f"{'(min-max)':>15} {'after/before':>12}"
    ]
    for name in [*COMMANDS, "import"]:
        label = "import bascule.main" if name == "import" else f"bascule {' '.join(COMMANDS[name])}"
        b, a = before[name], after[name]
        lines.append(
            f"{label:22} {b['p50_ms']:9.1f}ms {b['min_ms']:6.0f}-{b['max_ms']:<6.0f}ms"
            f" {a['p50_ms']:8.1f}ms {a['min_ms']:6.0f}-{a['max_ms']:<6.0f}ms"
            f" {a['p50_ms'] / b['p50_ms']:12.2f}"
        )
    verdict = "met" if after["status"]["p50_ms"] < TARGET_MS else "NOT met"
    lines.append(f"\ntarget: bascule status under {TARGET_MS:.0f} ms (median): {verdict}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each command per version")
    parser.add_argument("--before", default="main", help="git ref of the code to compare with")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


@contextlib.contextmanager
def running_daemon() -> Iterator[BasculeDaemon]:
    with Topology(real_servers=0) as topology:
        daemon = BasculeDaemon(topology, env={"BASCULE_LISTEN": "none"})
        try:
            daemon.start(timeout=30)
            daemon.apply(document(topology.vip()))
            yield daemon
        finally:
            if daemon.process is not None and daemon.process.poll() is None:
                try:
                    daemon.terminate(timeout=60)
                except subprocess.TimeoutExpired:
                    daemon.kill()
            daemon.stop_haproxy()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bench/cli.py needs root: it builds a network namespace for the daemon")
    reason = netns_available()
    if reason is not None:
        sys.exit(reason)
    cleanup_stale()
    started = datetime.datetime.now(datetime.UTC)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bascule-cli-bench-") as scratch:
        versions = {"before": export_ref(args.before, Path(scratch)), "after": ROOT / "src"}
        code = {version: which_bascule(src) for version, src in versions.items()}
        print(f"{args.runs} runs per command, load {load_before}", file=sys.stderr)
        with running_daemon() as daemon:
            times = measure(versions, daemon.data_dir, args.runs)
    summary = summarize(times)
    report = {
        "started": started.isoformat(timespec="seconds"),
        "args": {"runs": args.runs, "before": args.before},
        "code": code,
        "environment": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "summary": summary,
        "runs_ms": times,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"cli-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(table(summary))
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
