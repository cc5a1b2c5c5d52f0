"""HA failover figures: the gap in service for each kind of failure of the active, N runs each.

As root, from the repository root (needs keepalived, haproxy, iproute2, nft)::

    .venv/bin/python bench/ha_failover.py                        # 20 runs of every kind
    .venv/bin/python bench/ha_failover.py --runs 20 --kinds link,standby

It runs the failover tests themselves (tests/integration/test_ha_failover.py: two load
balancer namespaces running ``bascule run``, keepalived with ``advert_interval: 0.2``, and
tests/tools/gap_probe.py opening a new connection to the VIP every 10 ms), with
``BASCULE_HA_RUNS`` runs of each kind asked for, and collects the figures they write to
``BASCULE_HA_FIGURES``: for each kind, the gap of every run (the longest time between two
answers), its median and its maximum. No new measuring code: the bench is the test, run longer.

Kinds: ``keepalived`` (killed), ``haproxy`` (killed), ``daemon`` (killed), ``link`` (``ip link
set eth0 down``), ``standby`` (``bascule ha standby``, planned). Results go to
``bench/results/ha-failover-<time>.json`` (git-ignored) and a table is printed; the figures in
docs/user-guide.md ("Failure modes, and what each costs") come from it. The test asserts every
gap is under a second; a run that is not still has its figures written, and the bench says so.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
TEST = "tests/integration/test_ha_failover.py"

#: Each kind of failure, and the test that measures it.
KINDS = {
    "keepalived": "test_the_standby_takes_over_when_the_active_keepalived_dies",
    "haproxy": "test_the_standby_takes_over_when_the_active_haproxy_dies",
    "daemon": "test_the_standby_takes_over_when_the_active_daemon_dies",
    "link": "test_the_standby_takes_over_when_the_active_link_goes_down",
    "standby": "test_ha_status_and_a_planned_standby",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each kind (default 20)")
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}"
    )
    args = parser.parse_args()
    kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds or args.runs < 1:
        parser.error(f"--kinds: choose among {', '.join(KINDS)}; --runs: at least 1")
    if os.geteuid() != 0:
        parser.error("run as root: the failover tests build network namespaces")

    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as handle:
        figures_file = Path(handle.name)
    env = {**os.environ, "BASCULE_HA_RUNS": str(args.runs), "BASCULE_HA_FIGURES": str(figures_file)}
    selection = " or ".join(KINDS[kind] for kind in kinds)
    started = datetime.datetime.now(datetime.UTC)
    pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-s", TEST]
    outcome = subprocess.run([*pytest, "-k", selection], cwd=ROOT, env=env, check=False)
    figures = [json.loads(line) for line in figures_file.read_text().splitlines() if line]
    figures_file.unlink()

    result: dict[str, Any] = {
        "started_at": started.isoformat(),
        "runs": args.runs,
        "kinds": kinds,
        "tests_passed": outcome.returncode == 0,
        "load_average": os.getloadavg(),
        "figures": figures,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"ha-failover-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")

    print("\n| what fails on the active | runs | gap p50 | gap max |")
    print("| --- | --- | --- | --- |")
    for item in figures:
        p50, worst = item["p50_s"], item["max_s"]
        print(f"| {item['failure']} | {item['runs']} | {p50:.2f} s | {worst:.2f} s |")
    print(f"\nwritten to {path}")
    if outcome.returncode != 0:
        print("the tests failed (a gap of a second or more, or a failover that did not happen):"
              " see their output above")  # fmt: skip
    return outcome.returncode


if __name__ == "__main__":
    sys.exit(main())
