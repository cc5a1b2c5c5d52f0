"""The audit log page: administrators only, paginated, filtered, diffs shown readably."""

from __future__ import annotations

from collections.abc import Callable

from change_requests import by
from wui_client import Browser

from bascule.daemon.audit import AuditService
from bascule.daemon.service import ConfigService


async def test_audit_log_shows_who_when_where_and_the_diff(
    admin: Browser, web_service: int, service: ConfigService, check_html: Callable[[str], None]
) -> None:
    await service.edit(
        lambda doc: {**doc, "virtual_services": []},
        by("admin", remote="198.18.0.9", message="remove web"),
    )
    page = await admin.client.get("/audit")
    assert page.status_code == 200
    check_html(page.text)
    assert 'data-action-name="config.edit"' in page.text
    assert 'data-action-name="login"' in page.text
    assert "198.18.0.9" in page.text
    assert "virtual service web" in page.text and 'data-op="remove"' in page.text
    filtered = await admin.client.get("/audit?action=login")
    assert 'data-action-name="config.edit"' not in filtered.text
    assert 'data-action-name="login"' in filtered.text


async def test_audit_log_pages(admin: Browser, audit: AuditService) -> None:
    for index in range(60):
        audit.record("bot", "config.apply", f"target-{index}")
    first = await admin.client.get("/audit")
    assert "target-59" in first.text and "target-5<" not in first.text
    assert 'href="/audit?offset=50"' in first.text
    older = await admin.client.get("/audit?offset=50")
    assert "target-0<" in older.text and 'data-action="newer"' in older.text


async def test_audit_log_is_for_administrators(viewer: Browser, operator: Browser) -> None:
    assert (await viewer.client.get("/audit")).status_code == 403
    assert (await operator.client.get("/audit")).status_code == 403
