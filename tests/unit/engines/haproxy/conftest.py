"""Fixtures for the HAProxy renderer tests: golden files and the real ``haproxy -c``.

Golden files live in tests/golden/haproxy/<case>.cfg. After a deliberate change to the
output, regenerate them with ``BASCULE_UPDATE_GOLDEN=1 pytest tests/unit/engines/haproxy``
and review the diff.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

HAPROXY = Path("/usr/sbin/haproxy")
GOLDEN_DIR = Path(__file__).resolve().parents[3] / "golden" / "haproxy"
UPDATE_GOLDEN = os.environ.get("BASCULE_UPDATE_GOLDEN") == "1"


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """``golden(case, text)``: compare ``text`` with the case's golden file (or rewrite it)."""

    def compare(case: str, text: str) -> None:
        path = GOLDEN_DIR / f"{case}.cfg"
        if UPDATE_GOLDEN:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        if not path.exists():
            pytest.fail(f"no golden file {path}; create it with BASCULE_UPDATE_GOLDEN=1")
        assert text == path.read_text(), f"{path} differs (BASCULE_UPDATE_GOLDEN=1 to update)"

    return compare


@pytest.fixture
def haproxy_check(tmp_path: Path) -> Callable[..., str]:
    """``haproxy_check(text, allow=())``: run the real ``haproxy -c``; fail on any warning.

    ``allow`` lists substrings of warnings that are expected on this host (a state file that
    only exists on an appliance, say).
    """
    if not HAPROXY.exists():
        pytest.skip(f"HAProxy is not installed at {HAPROXY}")

    def check(text: str, allow: tuple[str, ...] = ()) -> str:
        path = tmp_path / "haproxy.cfg"
        path.write_text(text)
        result = subprocess.run(
            [str(HAPROXY), "-c", "-f", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        warnings = [
            line
            for line in output.splitlines()
            if "[WARNING]" in line and not any(expected in line for expected in allow)
        ]
        assert not warnings, output
        assert "[ALERT]" not in output, output
        return output

    return check
