"""Backup and restore: download the YAML, upload it back through the preview, refuse bad
files beside the upload field with nothing changed."""

from __future__ import annotations

import re
from collections.abc import Callable

import yaml
from change_requests import by
from wui_client import Browser

from bascule.daemon.service import ConfigService


async def _upload(browser: Browser, content: bytes, name: str = "backup.yaml") -> object:
    return await browser.client.post(
        "/backup/restore",
        data={"csrf_token": browser.csrf},
        files={"file": (name, content, "application/yaml")},
    )


def _error(html: str) -> str:
    match = re.search(r'<p class="field-error" id="error-file">([^<]*)</p>', html)
    assert match, "no error beside the upload field"
    return match[1]


async def test_backup_page_and_download(
    viewer: Browser, web_service: int, check_html: Callable[[str], None]
) -> None:
    page = await viewer.client.get("/backup")
    assert page.status_code == 200
    check_html(page.text)
    assert 'data-action="download"' in page.text
    assert 'id="field-file"' not in page.text  # a viewer may not restore
    download = await viewer.client.get("/backup/download")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("application/yaml")
    assert 'filename="bascule-revision-1.yaml"' in download.headers["content-disposition"]
    first, _, body = download.text.partition("\n")
    assert first == "# bascule revision 1"
    assert yaml.safe_load(body)["virtual_services"][0]["name"] == "web"


async def test_restore_previews_then_applies_a_new_revision(
    admin: Browser, web_service: int, service: ConfigService
) -> None:
    backup = (await admin.client.get("/backup/download")).content
    await service.apply({"virtual_services": []}, by("t"))  # revision 2: web removed
    response = await _upload(admin, backup)
    assert response.status_code == 303 and response.headers["location"] == "/preview"
    assert service.store.head_number() == 2  # planned, not applied
    preview = await admin.client.get("/preview")
    assert "Restore the configuration from backup.yaml (revision 1)" in preview.text
    assert (await admin.post("/preview/apply")).status_code == 303
    head = service.store.head()
    assert head is not None and head.number == 3
    assert head.message == "restore from backup" and head.author == "admin"
    assert head.document["virtual_services"][0]["name"] == "web"


async def test_a_bad_file_is_refused_beside_the_field_and_nothing_changes(
    admin: Browser, web_service: int, service: ConfigService, check_html: Callable[[str], None]
) -> None:
    not_yaml = await _upload(admin, b"virtual_services: [\n", "broken.yaml")
    assert not_yaml.status_code == 422
    check_html(not_yaml.text)
    assert "broken.yaml was not restored: the file is not YAML or JSON" in _error(not_yaml.text)
    not_text = await _upload(admin, b"\xff\xfe\x00garbage")
    assert "not text" in _error(not_text.text)
    a_list = await _upload(admin, b"- 1\n- 2\n")
    assert "configuration document" in _error(a_list.text)
    invalid = await _upload(
        admin,
        b"virtual_services:\n  - name: web\n    address: 198.18.0.100\n    port: 99999\n",
    )
    assert invalid.status_code == 422
    assert "virtual_services[0].port" in _error(invalid.text)
    empty = await admin.client.post("/backup/restore", data={"csrf_token": admin.csrf})
    assert "choose a backup file" in _error(empty.text)
    assert service.store.head_number() == 1
    assert (await admin.client.get("/preview")).text.count('data-action="apply"') == 0


async def test_restore_needs_configure_and_csrf(
    operator: Browser, admin: Browser, web_service: int, service: ConfigService
) -> None:
    content = b"virtual_services: []\n"
    assert (await _upload(operator, content)).status_code == 403
    forged = await admin.client.post(
        "/backup/restore",
        data={"csrf_token": "forged"},
        files={"file": ("b.yaml", content, "application/yaml")},
    )
    assert forged.status_code == 403
    missing = await admin.client.post(
        "/backup/restore", files={"file": ("b.yaml", content, "application/yaml")}
    )
    assert missing.status_code == 403
    assert service.store.head_number() == 1
