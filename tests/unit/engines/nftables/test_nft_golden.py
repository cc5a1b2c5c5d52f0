"""Golden files of the nft JSON ruleset for every mode x scheduler x persistence, and
`nft -c` accepting each one inside a throwaway network namespace.

Regenerate after an intended change with
``BASCULE_UPDATE_GOLDEN=1 pytest tests/unit/engines/nftables`` and review the diff.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bascule.engines.nftables.view import Environment, L4Inputs, build_ruleset
from bascule.model import Configuration

GOLDEN_DIR = Path(__file__).resolve().parents[3] / "golden" / "nftables"
UPDATE_GOLDEN = os.environ.get("BASCULE_UPDATE_GOLDEN") == "1"

MODES = ("nat_routed", "nat_one_armed", "dsr")
SCHEDULERS = (
    "round_robin",
    "weighted_round_robin",
    "least_connection",
    "weighted_least_connection",
    "fixed_weighting",
    "source_ip_hash",
)
PERSISTENCE = ("none", "source_ip")
ENVIRONMENT = Environment(
    interface="eth0",
    lb_mac="02:00:00:00:00:02",
    server_macs={
        "198.18.0.11": "02:00:00:00:00:11",
        "198.18.0.12": "02:00:00:00:00:12",
        "198.18.0.13": "02:00:00:00:00:13",
    },
    source_addresses={4: "198.18.0.2"},
    maglev_size=31,  # a small prime keeps the files readable; production uses 65537
)


def service(mode: str, scheduler: str, persistence: str, protocol: str = "tcp") -> dict[str, Any]:
    dsr = mode == "dsr"
    one_armed = {"subnet_originating": True} if mode == "nat_one_armed" else {}
    return {
        "name": "web",
        "address": "198.18.0.100",
        "port": 80,
        "extra_ports": ["9000-9010"] if dsr else [8080, "9000-9010"],
        "protocol": protocol,
        "mode": "l4",
        "forwarding": "dsr" if dsr else "nat",
        "scheduler": scheduler,
        "persistence": {"method": persistence, "timeout": 600, "source_mask": 24},
        "real_servers": [
            {"address": "198.18.0.11", "port": 80, "weight": 3000},
            {"address": "198.18.0.12", "port": 80 if dsr else 8080, "weight": 1000},
            {"address": "198.18.0.13", "port": 80, "weight": 1000},
        ],
        **one_armed,
    }


def inputs_for(mode: str, **extra: Any) -> L4Inputs:
    return L4Inputs(environment=ENVIRONMENT, **extra)


def cases() -> dict[str, dict[str, Any]]:
    """case name -> the ruleset document."""
    found: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        for scheduler in SCHEDULERS:
            for persistence in PERSISTENCE:
                config = Configuration.model_validate(
                    {"virtual_services": [service(mode, scheduler, persistence)]}
                )
                name = f"{mode}-{scheduler}-{persistence}"
                found[name] = build_ruleset(config, inputs_for(mode)).document()
    for mode in MODES:
        config = Configuration.model_validate(
            {"virtual_services": [service(mode, "source_ip_hash", "source_ip", "udp")]}
        )
        found[f"{mode}-udp-source_ip_hash-source_ip"] = build_ruleset(
            config, inputs_for(mode)
        ).document()
    down = inputs_for("nat_routed", health={("web", "198.18.0.12:8080"): False})
    config = Configuration.model_validate(
        {"virtual_services": [service("nat_routed", "weighted_round_robin", "source_ip")]}
    )
    found["nat_routed-one_server_down"] = build_ruleset(config, down).document()
    ipv6 = {
        "name": "web6",
        "address": "2001:db8::100",
        "port": 443,
        "mode": "l4",
        "scheduler": "round_robin",
        "persistence": {"method": "source_ip", "source_mask": 64},
        "real_servers": [
            {"address": "2001:db8::11", "port": 8443},
            {"address": "2001:db8::12", "port": 443},
        ],
    }
    config = Configuration.model_validate({"virtual_services": [ipv6]})
    found["nat_routed-ipv6"] = build_ruleset(config, L4Inputs(environment=ENVIRONMENT)).document()
    return found


CASES = cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    path = GOLDEN_DIR / f"{case}.json"
    text = json.dumps(CASES[case], indent=1) + "\n"
    if UPDATE_GOLDEN:
        GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    if not path.exists():
        pytest.fail(f"no golden file {path}; create it with BASCULE_UPDATE_GOLDEN=1")
    assert json.loads(path.read_text()) == CASES[case], f"{path} differs"


@pytest.mark.skipif(UPDATE_GOLDEN, reason="golden files are being rewritten")
def test_no_stale_golden_files() -> None:
    on_disk = {path.stem for path in GOLDEN_DIR.glob("*.json")}
    assert on_disk == set(CASES)


@pytest.fixture(scope="module")
def namespace() -> Iterator[str]:
    """A throwaway network namespace with an `eth0` (a veth), so the host is never touched."""
    if os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("ip") is None:
        pytest.skip("needs root, nft and ip: checks each golden file with nft -c in a netns")
    name = f"bscgold{os.getpid() % 100000:05d}{secrets.token_hex(1)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(
            ["ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1"],
            check=True,
            capture_output=True,
        )
        yield name
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["ip", "netns", "del", name], check=True, capture_output=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_nft_accepts(case: str, namespace: str) -> None:
    proc = subprocess.run(
        ["ip", "netns", "exec", namespace, "nft", "-c", "-j", "-f", "-"],
        input=json.dumps(CASES[case]),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
