"""A viewer cannot fill the disk through the audit log from the WUI either (finding 4):
refused forms with long paths are stored short and a few at a time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from wui_client import Browser

from bascule.daemon.audit import LIMITS, REFUSAL_BURST, AuditService
from bascule.store.audit import AuditStore


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditService]:
    """The audit service on a stopped clock: the refusal budget must not refill while the 100
    forms are posted, however slow a loaded machine makes them."""
    stopped = time.time()
    with AuditStore(tmp_path / "bascule.db") as opened:
        yield AuditService(opened, clock=lambda: stopped)


async def test_refused_forms_are_recorded_short_and_a_few_at_a_time(
    viewer: Browser, audit: AuditService
) -> None:
    long = "x" * 60_000
    for _ in range(100):
        response = await viewer.post(f"/virtual-services/{long}/delete")
        assert response.status_code == 403
    entries, total = audit.page(0, 1000, action="access.denied")
    assert total == REFUSAL_BURST
    assert all(len(e.target) < LIMITS["target"] + 40 for e in entries)
