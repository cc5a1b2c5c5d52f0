"""Fixtures for the browser tests: a real daemon in namespaces, Debian's Chromium headless.

The WUI is tested the way an administrator uses it: a `bascule run` daemon in the `lb`
namespace of a test topology (tests/integration/netns.py), real servers in their own
namespaces, and Playwright driving Debian's `/usr/bin/chromium` (installed by
`setup.sh --dev`; Playwright's own browser downloads are never used). The daemon's HTTPS
listener (127.0.0.1:8443 inside `lb`) is relayed to 127.0.0.1:<port> in the root namespace,
where the browser runs (tests/integration/https_access.py).

Everything costly is shared by a module: one topology, one daemon, one browser.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

from chromium import CHROMIUM, CHROMIUM_ARGS
from daemon import BasculeDaemon
from https_access import ADMIN_PASSWORD, HttpsRelay
from netns import Topology, cleanup_stale, netns_available, require_root


def _require_browser() -> Any:
    """The Playwright sync API, or skip with the reason (root, namespaces, Chromium)."""
    require_root()
    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM} (setup.sh --dev installs it)")
    playwright = pytest.importorskip("playwright.sync_api", reason="needs Playwright (dev lock)")
    return playwright


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    api = _require_browser()
    with api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def wui_topology() -> Iterator[Topology]:
    """A client, the lb and two real servers for the whole module."""
    require_root()
    if netns_available() is None:
        cleanup_stale()
    with Topology(real_servers=2) as topology:
        yield topology


@pytest.fixture(scope="module")
def wui_daemon(wui_topology: Topology) -> Iterator[BasculeDaemon]:
    """`bascule run` in the lb namespace, with a known admin password."""
    # Statistics every second, so the dashboard's rate and sparkline fill within the module.
    env = {"BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD, "BASCULE_STATS_INTERVAL": "1"}
    daemon = BasculeDaemon(wui_topology, env=env)
    daemon.start()
    try:
        yield daemon
    finally:
        try:
            daemon.terminate()
        except Exception:
            daemon.kill()
            daemon.stop_haproxy()


@pytest.fixture(scope="module")
def wui_url(wui_topology: Topology, wui_daemon: BasculeDaemon) -> Iterator[str]:
    """https://127.0.0.1:<port>: the daemon's WUI as the root namespace sees it."""
    try:
        with HttpsRelay(wui_topology) as relay:
            yield relay.url
    except Exception as exc:
        if wui_daemon.process is not None and wui_daemon.process.poll() is not None:
            raise AssertionError(f"the daemon died:\n{wui_daemon.log()}") from exc
        raise
