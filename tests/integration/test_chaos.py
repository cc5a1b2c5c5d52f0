"""The chaos bench's short version (bench/chaos.py): changes under load, the daemon killed.

A few dozen random changes (weights, drains, real servers and services added and deleted,
rollbacks) through the CLI while kept-alive L7 clients and new-connection L4 clients load the
services, with the daemon killed by SIGKILL at random moments (at least twice) and started
again: no request fails, no acknowledged revision is lost, the engines run the last revision.
The full run (1000 changes, a kill about every 50, and the 30-minute soak) is the bench's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from netns import require_root

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import chaos

pytestmark = pytest.mark.integration


def test_changes_under_load_with_the_daemon_killed(_stale_namespaces_removed: None) -> None:
    require_root()
    result = chaos.run(
        changes=36, kill_every=12, soak_minutes=0, soak_interval=1, seed=14, log=lambda _: None
    )
    figures = result["chaos"]
    shown = chaos.summary(result)
    assert figures["kills"] >= 2, shown
    assert figures["acknowledged"] >= figures["changes"] - figures["kills"], shown
    assert figures["missing_revisions"] == [], shown
    assert figures["engine_mismatches"] == [], shown
    assert figures["failed_requests"] == 0, (
        shown,
        figures["l7"]["errors"],
        figures["l4"]["errors"],
    )
    assert figures["l7"]["ok"] > 0 and figures["l4"]["ok"] > 0, shown
