"""The real-server scripts of ``bascule dsr script``: golden files, and what they must say.

The exact text of each case is a golden file in tests/golden/dsr/ (``<case>.sh`` for Linux,
``<case>.ps1`` for Windows). After a deliberate change to a template or to the decisions in
dsr/script.py, regenerate them with ``BASCULE_UPDATE_GOLDEN=1 pytest tests/unit/dsr`` and
review the diff.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bascule.dsr.script import is_dsr, linux_script, script, setup, windows_script
from bascule.dsr.target import TargetOs
from bascule.model import VirtualService, parse_document

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "golden" / "dsr"
UPDATE_GOLDEN = os.environ.get("BASCULE_UPDATE_GOLDEN") == "1"
SUFFIX = {TargetOs.linux: ".sh", TargetOs.windows: ".ps1"}


def service(**changes: Any) -> VirtualService:
    document = {
        "name": "web",
        "address": "198.18.0.100",
        "port": 80,
        "mode": "l4",
        "forwarding": "dsr",
        "real_servers": [
            {"address": "198.18.0.11", "port": 80},
            {"address": "198.18.0.12", "port": 80},
        ],
        **changes,
    }
    return parse_document({"virtual_services": [document]}).virtual_services[0]


UDP_EXTRA_PORTS: dict[str, Any] = {
    "protocol": "udp",
    "port": 53,
    "extra_ports": ["5300-5310"],
    "check": {"type": "none"},
    "real_servers": [
        {"address": "198.18.0.11", "port": 53},
        {"address": "198.18.0.12", "port": 53},
    ],
}
IPV6: dict[str, Any] = {
    "address": "2001:2::100",
    "real_servers": [
        {"address": "2001:2::11", "port": 80},
        {"address": "198.18.0.12", "port": 80},  # any family: DSR rewrites MACs only
    ],
}
DUAL_STACK: dict[str, Any] = {"address6": "2001:2::100"}
CASES: dict[str, tuple[TargetOs, dict[str, Any]]] = {
    "linux-tcp": (TargetOs.linux, {}),
    "linux-udp-extra-ports": (TargetOs.linux, UDP_EXTRA_PORTS),
    "linux-ipv6": (TargetOs.linux, IPV6),
    "linux-no-real-servers": (TargetOs.linux, {"real_servers": []}),
    "linux-dual-stack": (TargetOs.linux, DUAL_STACK),
    "windows-dual-stack": (TargetOs.windows, DUAL_STACK),
    "windows-tcp": (TargetOs.windows, {}),
    "windows-udp-extra-ports": (TargetOs.windows, UDP_EXTRA_PORTS),
    "windows-ipv6": (TargetOs.windows, IPV6),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    target, changes = CASES[case]
    text = script(service(**changes), target)
    path = GOLDEN_DIR / f"{case}{SUFFIX[target]}"
    if UPDATE_GOLDEN:
        GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    if not path.exists():
        pytest.fail(f"no golden file {path}; create it with BASCULE_UPDATE_GOLDEN=1")
    assert text == path.read_text(), f"{path} differs (BASCULE_UPDATE_GOLDEN=1 to update)"


@pytest.mark.skipif(UPDATE_GOLDEN, reason="golden files are being rewritten")
def test_no_stale_golden_files() -> None:
    on_disk = {path.name for path in GOLDEN_DIR.iterdir()}
    assert on_disk == {f"{case}{SUFFIX[target]}" for case, (target, _) in CASES.items()}


@pytest.mark.parametrize("case", sorted(c for c, (t, _) in CASES.items() if t is TargetOs.linux))
def test_the_linux_scripts_are_valid_posix_shell(case: str) -> None:
    shell = shutil.which("dash") or shutil.which("sh")
    if shell is None:
        pytest.skip("no POSIX shell")
    target, changes = CASES[case]
    text = script(service(**changes), target)
    done = subprocess.run([shell, "-n"], input=text, text=True, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr


def test_linux_and_windows_are_the_script_of_their_target() -> None:
    vs = service()
    assert linux_script(vs) == script(vs, TargetOs.linux)
    assert windows_script(vs) == script(vs, TargetOs.windows)


def test_the_decisions_behind_the_scripts() -> None:
    decided = setup(service(**UDP_EXTRA_PORTS))
    assert (decided.host_address, decided.prefix, decided.stack) == ("198.18.0.100/32", 32, "ipv4")
    assert decided.ports == "udp ports 53,5300-5310"
    assert decided.local_ports == "'53', '5300-5310'"
    assert decided.servers == ("198.18.0.11", "198.18.0.12")
    assert setup(service()).ports == "tcp port 80"
    assert setup(service(**IPV6)).servers == ("2001:2::11", "198.18.0.12")
    dual = setup(service(**DUAL_STACK))
    assert (dual.vip, dual.vip6, dual.host_address6) == (
        "198.18.0.100",
        "2001:2::100",
        "2001:2::100/128",
    )


@pytest.mark.parametrize(
    "changes", [{"forwarding": "nat"}, {"mode": "l7", "forwarding": "nat", "type": "http"}]
)
def test_only_dsr_services_have_a_script(changes: dict[str, Any]) -> None:
    vs = service(**changes)
    assert not is_dsr(vs)
    with pytest.raises(ValueError, match="is not a DSR service"):
        linux_script(vs)
    with pytest.raises(ValueError, match="is not a DSR service"):
        windows_script(vs)
