"""``nft`` run inside the tests' throwaway namespace (the ``namespace`` fixture, conftest.py)."""

from __future__ import annotations

import subprocess


def nft(namespace: str, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", namespace, "nft", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
