"""What a starting daemon imports: not the ACME client, not the CLI (issue 15,
docs/architecture.md).

``bascule run`` executes ``bascule.serve`` (bascule/serve.py), which imports the daemon, the API
and the WUI; the ``acme`` library and what it brings (``josepy``, ``requests``, ``urllib3``,
pyOpenSSL: ~6.5 MiB resident) are imported by the first ACME order's worker thread
(daemon/acme.py), and the CLI (typer, rich, bascule.cli: ~3 MiB) only by the ``bascule run``
that parses the options and then replaces itself with the daemon. The memory is measured by
bench/management.py, never asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys

# What the daemon's process imports before it serves (bascule/serve.py: serve, _Apps)
RUN = (
    "import sys\n"
    "sys.modules.setdefault('httpx._main', None)\n"
    "import bascule.serve, bascule.daemon.runner, bascule.api.app, bascule.web"
)
LAZY = ("acme", "josepy", "requests", "urllib3", "OpenSSL", "charset_normalizer")
# imported by /metrics's first scrape (api/routes/metrics.py)
SCRAPED = ("prometheus_client", "bascule.api.exposition")
CLI = ("bascule.main", "bascule.cli", "typer", "rich")


def daemon_modules() -> set[str]:
    probe = f"import json\n{RUN}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def among(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def test_the_daemon_starts_without_the_acme_client() -> None:
    modules = daemon_modules()
    assert "bascule.daemon.acme" in modules
    assert among(modules, LAZY) == []


def test_the_daemon_starts_without_prometheus_client() -> None:
    modules = daemon_modules()
    assert "bascule.api.routes.metrics" in modules
    assert among(modules, SCRAPED) == []


def test_the_daemon_starts_without_the_cli() -> None:
    modules = daemon_modules()
    assert "bascule.serve" in modules
    assert among(modules, CLI) == []
