"""``bascule demo`` on a new data directory, as ``./setup.sh`` runs it on a cold machine.

Inside the ``lb`` namespace (its own loopback, so the demo's 127.0.0.1 addresses and the
HTTPS listener's 127.0.0.1:8443 collide with nothing): the demo starts its back ends and a
daemon, waits until the daemon answers (not merely until its socket file exists), applies the
demo document and prints the admin password it chose, first. The demo service then answers,
the password logs in over HTTPS, and ``bascule demo --stop`` stops it all.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from daemon import BASCULE
from netns import Topology

pytestmark = pytest.mark.integration

PASSWORD_LINE = re.compile(
    r"^The web interface's administrator: user admin, password (\S+) \(shown once: note it\)\.$"
)
LOGIN = """
import json, ssl, sys, httpx
url, cafile, password = sys.argv[1:4]
with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=cafile)) as client:
    answer = client.post("/api/v1/auth/login", json={"username": "admin", "password": password})
    print(json.dumps({"status": answer.status_code}))
"""


def test_demo_on_a_new_data_dir(make_topology: Callable[..., Topology]) -> None:
    topology = make_topology(real_servers=0)
    data_dir = Path(tempfile.mkdtemp(prefix="d", dir=topology.workdir or "/tmp"))
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"BASCULE_ADMIN_PASSWORD", "BASCULE_LISTEN", "BASCULE_DATA_DIR"}
    }
    demo = [BASCULE, "--data-dir", str(data_dir), "demo"]
    try:
        started = topology.run("lb", demo, env=env, check=False, timeout=180)
        log = (data_dir / "bascule.log").read_text()
        assert started.returncode == 0, (started.stdout, started.stderr, log)
        lines = started.stdout.splitlines()
        found = PASSWORD_LINE.match(lines[0])
        assert found, started.stdout  # the password comes first, before anything can fail
        assert "Bascule is running" in started.stdout
        assert "user admin, with the password printed above" in started.stdout
        assert found[1] not in log  # shown on the terminal, never written to the log

        answers = set()
        deadline = time.monotonic() + 20
        while len(answers) < 3 and time.monotonic() < deadline:
            curl = ["curl", "-s", "--max-time", "2", "http://127.0.0.1:8080/"]
            answer = topology.run("lb", curl, check=False).stdout
            answers.add(answer.split(" (")[0])
        assert answers == {f"Hello from backend-{n}" for n in (1, 2, 3)}, answers

        cert = data_dir / "tls" / "cert.pem"
        argv = [sys.executable, "-c", LOGIN, "https://127.0.0.1:8443", str(cert), found[1]]
        login = json.loads(topology.run("lb", argv).stdout)
        assert login["status"] == 200, login

        again = topology.run("lb", demo, env=env, timeout=180)  # a running daemon: no password
        assert not PASSWORD_LINE.match(again.stdout.splitlines()[0]), again.stdout
        assert "with the password shown when it was first started" in again.stdout
    finally:
        stopped = topology.run("lb", [*demo, "--stop"], env=env, check=False, timeout=60)
    assert stopped.stdout.strip() == "demo stopped", stopped
