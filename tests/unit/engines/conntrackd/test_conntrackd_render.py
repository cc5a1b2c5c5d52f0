"""conntrackd's configuration for a joined pair: golden files (tests/golden/conntrackd/), and
refusals of anything that could inject into the file (it has no quoting)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bascule.engines.conntrackd.render import render
from bascule.engines.conntrackd.view import ConntrackdPaths, build_view
from bascule.model.high_availability import HighAvailability

GOLDEN_DIR = Path(__file__).resolve().parents[3] / "golden" / "conntrackd"
UPDATE_GOLDEN = os.environ.get("BASCULE_UPDATE_GOLDEN") == "1"
RUN = "/var/lib/bascule/conntrackd"
PATHS = ConntrackdPaths(
    lock_file=f"{RUN}/conntrackd.lock",
    socket=f"{RUN}/conntrackd.ctl",
    log_file=f"{RUN}/conntrackd.log",
)
CASES: dict[str, dict[str, Any]] = {
    "pair_ipv4": {
        "nodes": [
            {"name": "lb1", "address": "198.18.0.3", "priority": 150},
            {"name": "lb2", "address": "198.18.0.4", "priority": 100},
        ],
        "interface": "eth0",
    },
    "pair_ipv6": {
        "nodes": [
            {"name": "lb1", "address": "2001:2::3", "priority": 150},
            {"name": "lb2", "address": "2001:2::4"},
        ],
        "interface": "bond0.12",
    },
}


def text_of(case: str, paths: ConntrackdPaths = PATHS) -> str:
    pair = HighAvailability.model_validate(CASES[case])
    me, peer = pair.nodes
    return render(build_view(pair, me, peer, paths))


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    text = text_of(case)
    path = GOLDEN_DIR / f"{case}.conf"
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"no golden file {path}; create it with BASCULE_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path} differs (BASCULE_UPDATE_GOLDEN=1 to update)"


@pytest.mark.skipif(UPDATE_GOLDEN, reason="golden files are being rewritten")
def test_no_stale_golden_files() -> None:
    assert {p.stem for p in GOLDEN_DIR.glob("*.conf")} == set(CASES)


def test_the_sync_goes_to_the_peer_and_ignores_the_nodes_own_traffic() -> None:
    text = text_of("pair_ipv4")
    assert "IPv4_address 198.18.0.3\n" in text
    assert "IPv4_Destination_Address 198.18.0.4\n" in text
    assert "DisableExternalCache On" in text  # the peer's flows go straight to the kernel
    ignored = text.split("Address Ignore {")[1]
    assert all(f"IPv4_address {a}" in ignored for a in ("127.0.0.1", "198.18.0.3", "198.18.0.4"))


@pytest.mark.parametrize(
    "path",
    ["relative/lock", "/run/with space", "/run/x\n}\nGeneral {", '/run/"quoted"', "/run/a;b"],
)
def test_a_path_conntrackd_could_misread_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="plain absolute paths"):
        text_of("pair_ipv4", ConntrackdPaths(lock_file=path, socket=PATHS.socket, log_file="/l"))
