"""A viewer cannot fill the disk through the audit log (finding 4): 300 refused requests with
a 60 KB path each used to store 300 entries of 60 KB (18 MB); now the path is cut short and a
burst of refusals is recorded, then a few a minute, with a count of the rest."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from bascule.api import ApiServices
from bascule.daemon.audit import LIMITS, REFUSAL_BURST, REFUSAL_EVERY

ClientAs = Callable[[str | None], Awaitable[httpx.AsyncClient]]
LONG = "x" * 60_000


def database_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.parent.glob(path.name + "*"))


async def test_a_viewer_flooding_refused_requests_grows_the_store_little(
    client_as: ClientAs, committed: int, services: ApiServices
) -> None:
    viewer = await client_as("viewer")
    database = services.config.store.path
    before_entries = services.audit.page(0, 1)[1]
    before_bytes = database_bytes(database)
    started = time.monotonic()
    for _ in range(300):
        response = await viewer.delete(f"/api/v1/virtual-services/{LONG}")
        assert response.status_code == 403
    # the burst, and one more per REFUSAL_EVERY seconds the flood lasted (a loaded machine)
    allowed = REFUSAL_BURST + int((time.monotonic() - started) / REFUSAL_EVERY)
    entries, total = services.audit.page(0, 1000, action="access.denied")
    assert REFUSAL_BURST <= total <= allowed
    assert services.audit.page(0, 1)[1] - before_entries == total
    assert all(len(e.target) < LIMITS["target"] + 40 for e in entries)
    assert database_bytes(database) - before_bytes < 1024 * 1024  # it was 18 MB
