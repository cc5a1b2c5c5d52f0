"""A real ``bascule run`` on a store written by another version of Bascule (model/schema.py).

An older revision (schema 1: an IPv6 service's ``source_mask`` meant its IPv6 prefix) is read
forward at the start and served as it meant, the stored history untouched; a revision written
by a newer Bascule stops the start before any engine is touched, with a message naming both
versions.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from daemon import BasculeDaemon
from netns import Topology

from bascule.model.schema import SCHEMA_VERSION

pytestmark = pytest.mark.integration


def rewrite_head(daemon: BasculeDaemon, document: dict[str, Any]) -> None:
    """Put ``document`` in the newest revision as an other version would have stored it."""
    with sqlite3.connect(daemon.data_dir / "bascule.db") as db:
        (head,) = db.execute("SELECT MAX(number) FROM revisions").fetchone()
        db.execute(
            "UPDATE revisions SET document = ? WHERE number = ?", (json.dumps(document), head)
        )


def test_an_older_revision_is_migrated_on_start_and_a_newer_one_refused(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=1, ipv6=True)
    topo.start_real_servers()
    rs = topo.real_servers[0]
    v1 = {  # no schema_version: schema 1
        "virtual_services": [
            {
                "name": "web",
                "address": topo.vip6(),
                "port": 80,
                "persistence": {"method": "source_ip", "timeout": 600, "source_mask": 32},
                "real_servers": [{"address": rs.address6, "port": 80}],
            }
        ]
    }
    daemon = BasculeDaemon(topo).start()
    daemon.apply({"virtual_services": []})
    daemon.stop()
    rewrite_head(daemon, v1)

    daemon.start()
    try:
        current = json.loads(daemon.cli("export", "--format", "json").stdout)
        persistence = current["virtual_services"][0]["persistence"]
        assert current["schema_version"] == SCHEMA_VERSION, current
        # schema 1's default /32 of an IPv6 service grouped clients by /32: one address now
        assert persistence["source_mask6"] == 128, persistence
        assert "ipmask" not in daemon.haproxy("show table web"), "one client per address"
        result = topo.run_client("--url", f"http://[{topo.vip6()}]/", "--requests", "5")
        assert result["failures"] == 0, result["errors"]
        assert "revisions of older document schemas are read forward" in daemon.log()
    finally:
        daemon.stop()
    with sqlite3.connect(daemon.data_dir / "bascule.db") as db:
        stored = [json.loads(row[0]) for row in db.execute("SELECT document FROM revisions")]
    assert v1 in stored  # the history is never rewritten

    rewrite_head(daemon, {"schema_version": SCHEMA_VERSION + 1, "virtual_services": []})
    daemon.start(wait=False)
    assert daemon.process is not None
    code = daemon.process.wait(timeout=30)
    log = daemon.log()
    assert code != 0, log
    assert f"schema_version: {SCHEMA_VERSION + 1} is newer than this Bascule reads" in log, log
    assert "restore a backup made by this version, or run the newer Bascule" in log, log
    assert "table ip" not in topo.run("lb", ["nft", "list", "tables"]).stdout  # nothing touched
