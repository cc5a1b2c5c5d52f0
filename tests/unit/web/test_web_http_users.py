"""The HTTP users page: administrators only, add with field errors beside the fields, a new
password, delete refused while a service names the user, and never a password or a hash."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from change_requests import by
from fastapi import FastAPI
from wui_client import Browser, wui_over

from bascule.daemon.accounts import AccountService
from bascule.daemon.audit import AuditService
from bascule.daemon.http_users import HttpUserService
from bascule.daemon.service import ConfigService
from bascule.daemon.statistics import Statistics
from bascule.store.http_users import HttpUserStore, verify_password


@pytest.fixture
def http_users(
    tmp_path: Path, service: ConfigService, audit: AuditService
) -> Iterator[HttpUserService]:
    with HttpUserStore(tmp_path / "bascule.db") as store:
        users = HttpUserService(store, config=service, audit=audit)
        service.attach_certificates(users.document_problems, tuple)
        yield users


@pytest.fixture
def wui(
    service: ConfigService,
    accounts: AccountService,
    audit: AuditService,
    statistics: Statistics,
    http_users: HttpUserService,
) -> FastAPI:
    return wui_over(service, accounts, audit, statistics, http_users=http_users)


def _error(html: str, field: str) -> str:
    match = re.search(rf'<p class="field-error" id="error-{field}">([^<]*)</p>', html)
    assert match, f"no error beside field {field}"
    return match[1]


async def test_add_set_a_password_and_delete(
    admin: Browser,
    http_users: HttpUserService,
    service: ConfigService,
    check_html: Callable[[str], None],
) -> None:
    page = await admin.client.get("/http-users")
    assert page.status_code == 200 and 'data-nav="http_users"' in page.text
    check_html(page.text)
    added = await admin.post("/http-users", {"name": "ops", "password": "ops-password-1"})
    assert added.status_code == 303 and added.headers["location"] == "/http-users"
    listed = await admin.client.get("/http-users")
    assert 'data-http-user="ops"' in listed.text
    assert "ops-password-1" not in listed.text and "$y$" not in listed.text

    changed = await admin.post("/http-users/ops/password", {"password": "ops-password-2"})
    assert changed.status_code == 303
    assert verify_password("ops-password-2", http_users.store.hashes()["ops"])

    await service.apply(
        {
            "virtual_services": [
                {
                    "name": "ops",
                    "address": "198.18.0.100",
                    "port": 80,
                    "authentication": {"users": ["ops"]},
                }
            ]
        },
        by("alice"),
    )
    named = await admin.client.get("/http-users")
    assert 'data-action="delete"' not in named.text  # named by a service: no delete button
    refused = await admin.post("/http-users/ops/delete")
    assert refused.status_code == 303 and [u.name for u in http_users.entries()] == ["ops"]


async def test_field_errors_are_beside_the_fields_and_the_password_is_not_kept(
    admin: Browser, http_users: HttpUserService, check_html: Callable[[str], None]
) -> None:
    short = await admin.post("/http-users", {"name": "ops", "password": "short"})
    assert short.status_code == 422
    check_html(short.text)
    assert "at least 8 characters" in _error(short.text, "password")
    assert 'value="ops"' in short.text and 'value="short"' not in short.text
    bad = await admin.post("/http-users", {"name": "o:ps", "password": "long-enough"})
    assert _error(bad.text, "name")
    assert http_users.entries() == []


async def test_only_administrators(operator: Browser, viewer: Browser) -> None:
    for browser in (operator, viewer):
        assert (await browser.client.get("/http-users")).status_code == 403
        added = await browser.post("/http-users", {"name": "ops", "password": "long-enough"})
        assert added.status_code == 403
