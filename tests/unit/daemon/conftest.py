"""Fixtures the daemon's account tests share: a hand-moved clock and an audit service on it.
A test module that needs another clock or audit defines its own fixture of the same name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_clock import Clock

from bascule.daemon.audit import AuditService
from bascule.store.audit import AuditStore


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def audit(tmp_path: Path, clock: Clock) -> Iterator[AuditService]:
    with AuditStore(tmp_path / "bascule.db") as store:
        yield AuditService(store, clock=clock)
