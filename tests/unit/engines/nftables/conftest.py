"""Fixtures of the nft tests: a throwaway network namespace where the real ``nft`` checks and
loads the golden rulesets (``nft_namespace.nft`` runs it there)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator

import pytest


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
