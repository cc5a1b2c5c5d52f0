"""The Certificates page: import by paste and by upload, self-signed, CA bundles, expiry in
colour, where each is used, replace, delete refused while used, errors beside their fields,
administrators only, and never a private key in a page."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from change_requests import by
from fastapi import FastAPI
from make_certificates import DAY, hierarchy, issue
from wui_client import Browser, wui_over

from bascule.daemon.accounts import AccountService
from bascule.daemon.audit import AuditService
from bascule.daemon.certificates import CertificateService
from bascule.daemon.service import ConfigService
from bascule.daemon.statistics import Statistics
from bascule.store.certificates import CertificateStore


@pytest.fixture
def certificates(
    tmp_path: Path, service: ConfigService, audit: AuditService
) -> Iterator[CertificateService]:
    with CertificateStore(tmp_path / "bascule.db") as store:
        certificates = CertificateService(
            store, directory=tmp_path / "certificates", config=service, audit=audit
        )
        service.attach_certificates(certificates.document_problems, certificates.alerts)
        yield certificates


@pytest.fixture
def wui(
    service: ConfigService,
    accounts: AccountService,
    audit: AuditService,
    statistics: Statistics,
    certificates: CertificateService,
) -> FastAPI:
    return wui_over(service, accounts, audit, statistics, certificates=certificates)


def no_key(html: str) -> None:
    assert "PRIVATE KEY" not in html.replace("-----BEGIN PRIVATE KEY-----)", "")


async def test_import_by_paste_then_detail_replace_and_delete(
    admin: Browser, certificates: CertificateService, check_html: Callable[[str], None]
) -> None:
    h = hierarchy(datetime.now(UTC))
    page = await admin.client.get("/certificates")
    assert page.status_code == 200
    check_html(page.text)
    added = await admin.post(
        "/certificates/import",
        {
            "name": "shop",
            "cert": h.leaf.pem.decode(),
            "key": h.leaf.key_pem.decode(),
            "chain": h.intermediate.pem.decode(),
        },
    )
    assert added.status_code == 303, added.text
    assert added.headers["location"] == "/certificates/shop"
    detail = await admin.client.get("/certificates/shop")
    check_html(detail.text)
    no_key(detail.text)
    assert "CN=www.example.test" in detail.text and "CN=Test Intermediate CA" in detail.text
    new = issue(
        "www.example.test",
        not_before=datetime.now(UTC) - DAY,
        not_after=datetime.now(UTC) + 90 * DAY,
    )
    replaced = await admin.post(
        "/certificates/shop/replace", {"cert": new.pem.decode(), "key": new.key_pem.decode()}
    )
    assert replaced.status_code == 303
    assert certificates.show("shop").certificate.serial == f"{new.certificate.serial_number:X}"
    deleted = await admin.post("/certificates/shop/delete")
    assert deleted.status_code == 303
    assert certificates.entries() == []


async def test_upload_files(admin: Browser, certificates: CertificateService) -> None:
    h = hierarchy(datetime.now(UTC))
    response = await admin.client.post(
        "/certificates/import",
        data={"csrf_token": admin.csrf, "name": "up"},
        files={
            "cert_file": ("cert.pem", h.leaf.pem, "application/x-pem-file"),
            "key_file": ("key.pem", h.leaf.key_pem, "application/x-pem-file"),
        },
    )
    assert response.status_code == 303, response.text
    assert certificates.show("up").has_key
    ca = await admin.client.post(
        "/certificates/ca",
        data={"csrf_token": admin.csrf, "ca_name": "corp"},
        files={"ca_file": ("ca.pem", h.root.pem, "application/x-pem-file")},
    )
    assert ca.status_code == 303, ca.text
    assert certificates.show("corp").kind.value == "ca_bundle"


async def test_errors_come_back_beside_their_fields(
    admin: Browser, certificates: CertificateService, check_html: Callable[[str], None]
) -> None:
    h = hierarchy(datetime.now(UTC))
    other = issue(
        "other.test", not_before=datetime.now(UTC) - DAY, not_after=datetime.now(UTC) + DAY
    )
    refused = await admin.post(
        "/certificates/import",
        {"name": "shop", "cert": h.leaf.pem.decode(), "key": other.key_pem.decode()},
    )
    assert refused.status_code == 422
    check_html(refused.text)
    assert 'id="error-key"' in refused.text
    no_key(refused.text)
    bad_name = await admin.post(
        "/certificates/self-signed", {"ss_name": "Bad Name", "dns": "a.test"}
    )
    assert bad_name.status_code == 422
    assert 'id="error-ss_name"' in bad_name.text
    bad_dns = await admin.post("/certificates/self-signed", {"ss_name": "lab", "dns": "not a name"})
    assert 'id="error-dns"' in bad_dns.text
    assert certificates.entries() == []


async def test_expiry_colour_and_where_used(
    admin: Browser, certificates: CertificateService, service: ConfigService
) -> None:
    actor = by("alice").actor
    await certificates.self_signed("soon", dns=["soon.test"], days=5, actor=actor)
    await certificates.self_signed("later", dns=["later.test"], days=200, actor=actor)
    await service.apply(
        {
            "virtual_services": [
                {
                    "name": "shop",
                    "address": "198.18.0.100",
                    "port": 443,
                    "type": "https",
                    "tls": {"certificates": ["soon"]},
                }
            ]
        },
        by("alice"),
    )
    page = (await admin.client.get("/certificates")).text
    assert 'data-certificate="soon" data-expiry="critical"' in page
    assert 'data-certificate="later" data-expiry="ok"' in page
    assert 'status-down" title="critical"' in page and 'status-up" title="ok"' in page
    assert '<a href="/virtual-services/shop">shop</a>' in page
    detail = (await admin.client.get("/certificates/soon")).text
    assert "cannot be deleted while shop uses it" in detail
    refused = await admin.post("/certificates/soon/delete")
    assert refused.status_code == 422 and "used by virtual service shop" in refused.text


async def test_administrators_only(operator: Browser, viewer: Browser) -> None:
    for browser in (operator, viewer):
        assert (await browser.client.get("/certificates")).status_code == 403
        refused = await browser.post("/certificates/self-signed", {"ss_name": "x", "dns": "x.test"})
        assert refused.status_code == 403
    nav = (await viewer.client.get("/")).text
    assert 'href="/certificates"' not in nav


async def test_backup_page_downloads_sealed_keys_and_restores_them(
    admin: Browser, certificates: CertificateService, service: ConfigService
) -> None:
    await certificates.self_signed("shop", dns=["shop.test"], actor=by("alice").actor)
    page = (await admin.client.get("/backup")).text
    assert "1 entry of the certificate store" in page and 'data-action="download-sealed"' in page
    plain = (await admin.client.get("/backup/download")).text
    assert "certificate_store" in plain and "PRIVATE KEY" not in plain
    short = await admin.post("/backup/download", {"passphrase": "short"})
    assert short.status_code == 422 and 'id="error-seal-passphrase"' in short.text
    sealed = await admin.post("/backup/download", {"passphrase": "a long passphrase"})
    assert sealed.status_code == 200 and "ciphertext" in sealed.text
    await certificates.delete("shop", actor=by("alice").actor)
    upload = await admin.client.post(
        "/backup/restore",
        data={"csrf_token": admin.csrf, "passphrase": "a long passphrase"},
        files={"file": ("b.yaml", sealed.content, "application/yaml")},
    )
    assert upload.status_code == 303, upload.text  # to the preview
    preview = await admin.client.get(upload.headers["location"])
    assert "1 certificate store entry with its sealed private keys" in preview.text
    assert certificates.entries() == []  # the preview changed nothing
