"""The page store in the WUI (/pages): list, upload, delete, with the API's checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from change_requests import by
from fastapi import FastAPI
from wui_client import Browser, wui_over

from bascule.daemon.accounts import AccountService
from bascule.daemon.audit import AuditService
from bascule.daemon.pages import PageService
from bascule.daemon.service import ConfigService
from bascule.daemon.statistics import Statistics
from bascule.store.pages import PageStore


@pytest.fixture
def pages(tmp_path: Path, service: ConfigService, audit: AuditService) -> Iterator[PageService]:
    with PageStore(tmp_path / "bascule.db") as store:
        pages = PageService(store, directory=tmp_path / "pages", config=service, audit=audit)
        service.attach_certificates(pages.document_problems, tuple)
        yield pages


@pytest.fixture
def wui(
    service: ConfigService,
    accounts: AccountService,
    audit: AuditService,
    statistics: Statistics,
    pages: PageService,
) -> FastAPI:
    return wui_over(service, accounts, audit, statistics, pages=pages)


async def test_add_a_page_typed_or_uploaded_then_delete_it(
    admin: Browser, pages: PageService, check_html: Callable[[str], None]
) -> None:
    empty = await admin.client.get("/pages")
    assert empty.status_code == 200 and "No page yet." in empty.text
    typed = await admin.post("/pages", {"name": "maintenance", "content": "<h1>Soon</h1>"})
    assert typed.status_code == 303, typed.text
    uploaded = await admin.client.post(
        "/pages",
        data={"csrf_token": admin.csrf, "name": "sorry"},
        files={"file": ("sorry.html", b"<p>Sorry</p>", "text/html")},
    )
    assert uploaded.status_code == 303, uploaded.text
    listed = await admin.client.get("/pages")
    check_html(listed.text)
    assert 'data-page="maintenance"' in listed.text and 'data-page="sorry"' in listed.text
    assert pages.show("sorry")[1] == "<p>Sorry</p>"
    assert (await admin.post("/pages/sorry/delete")).status_code == 303
    assert [p.name for p in pages.entries()] == ["maintenance"]


async def test_a_refused_page_is_explained_beside_its_field(
    admin: Browser, pages: PageService
) -> None:
    bad_name = await admin.post("/pages", {"name": "Not A Name", "content": "<p>x</p>"})
    assert bad_name.status_code == 422
    assert 'id="error-name">' in bad_name.text
    bad_text = await admin.client.post(
        "/pages",
        data={"csrf_token": admin.csrf, "name": "bin"},
        files={"file": ("x.html", b"\x00\x01\x02", "text/html")},
    )
    assert bad_text.status_code == 422
    assert 'id="error-content">the page holds a control character' in bad_text.text
    empty = await admin.post("/pages", {"name": "empty", "content": ""})
    assert 'id="error-content">the page is empty' in empty.text
    assert pages.entries() == []


async def test_a_page_in_use_is_not_deleted(
    admin: Browser, pages: PageService, service: ConfigService
) -> None:
    await admin.post("/pages", {"name": "maintenance", "content": "<h1>Soon</h1>"})
    site = {
        "name": "site",
        "address": "198.18.0.100",
        "port": 80,
        "not_available": {"respond": {"code": 503, "body_file": "maintenance"}},
    }
    await service.apply({"virtual_services": [site]}, by("test"))
    listed = await admin.client.get("/pages")
    assert 'href="/virtual-services/site">site</a>' in listed.text
    refused = await admin.post("/pages/maintenance/delete")
    assert refused.status_code == 303
    shown = await admin.client.get("/pages")
    assert "maintenance is used by virtual service site" in shown.text
    assert [p.name for p in pages.entries()] == ["maintenance"]


async def test_viewers_read_the_list_but_change_nothing(
    viewer: Browser, pages: PageService
) -> None:
    listed = await viewer.client.get("/pages")
    assert listed.status_code == 200 and 'id="page-form"' not in listed.text
    assert (await viewer.post("/pages", {"name": "x", "content": "x"})).status_code == 403


async def test_the_wui_backup_carries_the_pages(admin: Browser, pages: PageService) -> None:
    await admin.post("/pages", {"name": "maintenance", "content": "<h1>Soon</h1>"})
    backup = await admin.client.get("/backup/download")
    assert backup.status_code == 200
    assert "page_store:\n- name: maintenance\n  content: <h1>Soon</h1>\n" in backup.text
