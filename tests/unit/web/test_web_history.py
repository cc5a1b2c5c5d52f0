"""History pages: the revisions, a revision's readable diff, rollback through the preview."""

from __future__ import annotations

from collections.abc import Callable

from change_requests import by
from wui_client import Browser

from bascule.daemon.service import ConfigService
from bascule.reconcile.diff import DiffItem, DiffOp
from bascule.web.pages.history import diff_rows, readable_path


async def _change_weight(service: ConfigService, weight: int) -> int:
    result = await service.edit(
        lambda doc: {
            "virtual_services": [
                {
                    **doc["virtual_services"][0],
                    "real_servers": [
                        {**rs, "weight": weight} if rs["address"] == "198.18.0.4" else rs
                        for rs in doc["virtual_services"][0]["real_servers"]
                    ],
                }
            ]
        },
        by("alice", message="lighter"),
    )
    assert result.revision is not None
    return result.revision


def test_paths_read_as_objects_and_fields() -> None:
    assert readable_path("virtual_services[web].real_servers[198.18.0.4:80].weight") == (
        "real server 198.18.0.4:80 of virtual service web",
        "weight",
    )
    assert readable_path("virtual_services[web].check.interval") == (
        "virtual service web",
        "check.interval",
    )
    assert readable_path("virtual_services") == ("", "virtual_services")
    [row] = diff_rows([DiffItem(op=DiffOp.CHANGE, path="virtual_services[a].port", old=80, new=81)])
    assert (row.op, row.sign, row.field, row.old, row.new) == ("change", "~", "port", "80", "81")


async def test_history_lists_revisions_newest_first(
    viewer: Browser, web_service: int, service: ConfigService, check_html: Callable[[str], None]
) -> None:
    await _change_weight(service, 500)
    page = await viewer.client.get("/history")
    assert page.status_code == 200
    check_html(page.text)
    assert page.text.index('data-revision="2"') < page.text.index('data-revision="1"')
    assert "alice" in page.text and "lighter" in page.text
    # a viewer sees no rollback button
    assert 'data-action="rollback"' not in page.text


async def test_history_pages_back(admin: Browser, service: ConfigService) -> None:
    await service.apply({"virtual_services": []}, by("t"))  # revision 1
    for port in range(1, 30):
        doc = {"virtual_services": [{"name": "a", "address": "198.18.0.100", "port": port}]}
        await service.apply(doc, by("t"))
    first = await admin.client.get("/history")
    assert 'data-revision="30"' in first.text and 'data-revision="5"' not in first.text
    assert 'href="/history?before=6"' in first.text
    older = await admin.client.get("/history?before=6")
    assert 'data-revision="5"' in older.text and 'data-revision="1"' in older.text
    assert 'data-action="older"' not in older.text


async def test_revision_page_shows_the_diff_readably(
    viewer: Browser, web_service: int, service: ConfigService, check_html: Callable[[str], None]
) -> None:
    number = await _change_weight(service, 500)
    page = await viewer.client.get(f"/history/{number}")
    assert page.status_code == 200
    check_html(page.text)
    assert 'data-path="virtual_services[web].real_servers[198.18.0.4:80].weight"' in page.text
    assert "real server 198.18.0.4:80 of virtual service web" in page.text
    assert '<span class="old">1000</span> → <span class="new">500</span>' in page.text
    missing = await viewer.client.get("/history/99")
    assert missing.status_code == 404


async def test_rollback_goes_through_the_preview_and_makes_a_revision(
    admin: Browser, web_service: int, service: ConfigService
) -> None:
    await _change_weight(service, 500)
    page = await admin.client.get("/history")
    assert 'data-action="rollback" data-revision="1"' in page.text
    response = await admin.post("/history/1/rollback")
    assert response.status_code == 303 and response.headers["location"] == "/preview"
    assert service.store.head_number() == 2  # planned only
    preview = await admin.client.get("/preview")
    assert "Roll back to revision 1" in preview.text and "weight" in preview.text
    applied = await admin.post("/preview/apply")
    assert applied.status_code == 303
    head = service.store.head()
    assert head is not None and head.number == 3
    assert head.rolled_back_from == 1 and head.author == "admin"
    weights = [
        rs.get("weight", 1000) for rs in head.document["virtual_services"][0]["real_servers"]
    ]
    assert weights == [1000, 1000]
    entries, _ = service.audit.page(0, 5, action="config.rollback") if service.audit else ([], 0)
    assert entries and entries[0].actor == "admin" and entries[0].remote == "198.18.0.9"


async def test_rollback_to_the_current_revision_changes_nothing(
    admin: Browser, web_service: int, service: ConfigService
) -> None:
    response = await admin.post("/history/1/rollback")
    assert response.status_code == 303 and response.headers["location"] == "/history/1"
    assert service.store.head_number() == 1


async def test_rollback_needs_configure_and_csrf(
    operator: Browser, admin: Browser, web_service: int, service: ConfigService
) -> None:
    await _change_weight(service, 500)
    refused = await operator.post("/history/1/rollback")
    assert refused.status_code == 403
    forged = await admin.client.post("/history/1/rollback", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    missing = await admin.client.post("/history/1/rollback")
    assert missing.status_code == 403
    assert service.store.head_number() == 2
