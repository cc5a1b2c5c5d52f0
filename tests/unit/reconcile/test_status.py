"""reconcile/status.py: the words of the status, as JSON, templates and metrics carry them."""

from __future__ import annotations

import json

from bascule.reconcile.status import ServerStatus, ServiceStatus


def test_statuses_are_their_words_in_json() -> None:
    assert json.dumps([ServiceStatus.apply_error, ServerStatus.drain]) == '["apply_error", "drain"]'
    assert f"{ServiceStatus.degraded}" == "degraded"


def test_a_service_serves_while_up_degraded_or_unchecked() -> None:
    serving = {status for status in ServiceStatus if status.serving}
    assert serving == {ServiceStatus.up, ServiceStatus.degraded, ServiceStatus.unchecked}
