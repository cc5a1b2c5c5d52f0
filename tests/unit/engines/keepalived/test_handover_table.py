"""The planned handover's nftables table (engines/keepalived/handover.py): golden files
(tests/golden/handover/<case>.nft) each accepted by the real ``nft -c`` with its set elements,
which services a handover drains, and refusals of what could inject into the script."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bascule.engines.keepalived.handover import (
    MARKS,
    DrainedService,
    add_elements,
    element,
    handover_view,
    render,
)
from bascule.engines.keepalived.view import find_self
from bascule.model import parse_document

GOLDEN_DIR = Path(__file__).resolve().parents[3] / "golden" / "handover"
UPDATE_GOLDEN = os.environ.get("BASCULE_UPDATE_GOLDEN") == "1"
NODES = [
    {"name": "lb1", "address": "198.18.0.3", "priority": 150},
    {"name": "lb2", "address": "198.18.0.4", "priority": 100},
]


def service(name: str, address: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "address": address, "port": 80, **more}


DOCUMENT: dict[str, Any] = {
    "high_availability": {"nodes": NODES, "interface": "eth0"},
    "virtual_services": [
        service("hold", "198.18.0.100", port=7000, type="generic", drain_time=30),
        service("web", "198.18.0.100", type="http", drain_time=5),
        service("quick", "198.18.0.101", type="http"),  # no drain_time: cut at once
        service("kernel", "198.18.0.102", mode="l4"),
        service("web6", "2001:2::100", type="http", drain_time=5),  # not the nodes' family
    ],
}
V6_NODES = [
    {"name": "lb1", "address": "2001:2::3", "priority": 150},
    {"name": "lb2", "address": "2001:2::4", "priority": 100},
]
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "lb1_ipv4": (DOCUMENT, "198.18.0.3"),
    "lb2_ipv6": (
        {**DOCUMENT, "high_availability": {"nodes": V6_NODES, "interface": "eth0"}},
        "2001:2::4",
    ),
}


def view_of(case: str) -> Any:
    document, address = CASES[case]
    config = parse_document(document)
    assert config.high_availability is not None
    me, peer = find_self(config.high_availability, frozenset({address}))
    view = handover_view(config, me, peer)
    assert view is not None
    return view


def script_of(case: str) -> str:
    """The table and, as a drain fills them, an element in each set."""
    view = view_of(case)
    service = view.services[0]
    filled = [element(view.family, service.address, service.port, service.drain_time)]
    return (
        render(view)
        + add_elements(view.family, "draining", filled)
        + add_elements(view.family, "forwarded", filled)
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    text = script_of(case)
    path = GOLDEN_DIR / f"{case}.nft"
    if UPDATE_GOLDEN:
        path.write_text(text)
        return
    assert path.exists(), f"no golden file {path}; create it with BASCULE_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path} differs (BASCULE_UPDATE_GOLDEN=1 to update)"


@pytest.mark.skipif(UPDATE_GOLDEN, reason="golden files are being rewritten")
def test_no_stale_golden_files() -> None:
    assert {p.stem for p in GOLDEN_DIR.glob("*.nft")} == set(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_nft_accepts(case: str) -> None:
    if os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("unshare") is None:
        pytest.skip("needs root, nft and unshare: nft -c in a network namespace of its own")
    # its own network namespace with an eth0, so the host's ruleset is never read or touched
    check = "ip link add eth0 type veth peer name eth1 && nft -c -f -"
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", check],
        input=script_of(case),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr


def test_the_services_with_a_drain_time_are_drained() -> None:
    view = view_of("lb1_ipv4")
    assert view.services == (
        DrainedService(name="hold", address="198.18.0.100", port=7000, drain_time=30),
        DrainedService(name="web", address="198.18.0.100", port=80, drain_time=5),
    )
    assert (view.own_mark, view.peer_mark, view.peer_address) == (*MARKS, "198.18.0.4")
    other = view_of("lb2_ipv6")
    assert (other.own_mark, other.peer_mark) == (MARKS[1], MARKS[0])
    assert [s.name for s in other.services] == ["web6"]


def test_a_single_node_has_no_table() -> None:
    single = parse_document({"virtual_services": DOCUMENT["virtual_services"][:1]})
    me = peer = parse_document(DOCUMENT).high_availability.nodes[0]  # type: ignore[union-attr]
    assert handover_view(single, me, peer) is None


@pytest.mark.parametrize(
    ("family", "address", "port", "timeout"),
    [
        ("ip", "2001:2::100", 80, 5),  # another family
        ("ip", "198.18.0.100; flush ruleset", 80, 5),
        ("ip", "198.18.0.100", 0, 5),
        ("ip", "198.18.0.100", 80, 0),
    ],
)
def test_bad_elements_are_refused(family: str, address: str, port: int, timeout: int) -> None:
    with pytest.raises(ValueError):
        element(family, address, port, timeout)


def test_a_bad_interface_is_refused() -> None:
    view = dataclasses.replace(view_of("lb1_ipv4"), interface='eth0"; flush ruleset; "')
    with pytest.raises(ValueError, match="not an interface name"):
        render(view)
