"""What a starting daemon imports: not the ACME client (issue 15, docs/architecture.md).

``bascule run`` imports the daemon, the API and the WUI; the ``acme`` library and what it
brings (``josepy``, ``requests``, ``urllib3``, pyOpenSSL: ~6.5 MiB resident) are imported by the
first ACME order's worker thread (daemon/acme.py). The memory is measured by
bench/management.py, never asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys

# What `bascule run` imports before it serves (bascule/main.py: run, _Apps)
RUN = "import bascule.main, bascule.daemon.runner, bascule.api.app, bascule.web"
LAZY = ("acme", "josepy", "requests", "urllib3", "OpenSSL", "charset_normalizer")


def test_the_daemon_starts_without_the_acme_client() -> None:
    probe = f"import json, sys\n{RUN}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    modules = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "bascule.daemon.acme" in modules
    assert sorted(m for m in modules if m.split(".")[0] in LAZY) == []
