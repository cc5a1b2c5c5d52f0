"""A fixture for tests of the doors: every status the pages and the API serve is read anew.

``ConfigService.recent_status`` serves the engines' last reading while it is recent (twenty
times what it took), and past that answers from it while a reading that took more than 50 ms
is made again: a FakeEngine's reading takes milliseconds (more on a busy machine), so a test
that changes a server's health and loads a page at once could be served the reading before.
"""

from __future__ import annotations

import pytest

from bascule.daemon import service as service_module


@pytest.fixture(autouse=True)
def every_status_read_anew(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "READING_AGE_FACTOR", 0.0)
    monkeypatch.setattr(service_module, "READING_MIN_AGE", -1.0)
    monkeypatch.setattr(service_module, "READING_WAIT_MAX", float("inf"))
