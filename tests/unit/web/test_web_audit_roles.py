"""The audit entry of a change made in the WUI carries the logged-in user's role."""

from __future__ import annotations

from wui_client import Browser

from bascule.daemon.audit import AuditService


async def test_a_wui_change_records_the_users_role(
    operator: Browser, web_service: int, audit: AuditService
) -> None:
    proposed = await operator.post(
        "/virtual-services/web/real-servers/198.18.0.4:80/state", {"state": "drain"}
    )
    assert proposed.headers["location"] == "/preview", proposed.text
    applied = await operator.post("/preview/apply")
    assert applied.status_code == 303, applied.text
    [entry], _ = audit.page(0, 1)
    assert (entry.actor, entry.role, entry.revision) == ("olivia", "operator", web_service + 1)
    assert entry.remote == "198.18.0.9"
