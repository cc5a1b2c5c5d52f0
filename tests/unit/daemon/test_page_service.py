"""The page store and PageService over real stores and the FakeEngine: what a page may be,
the files HAProxy reads, the document's names, deletion while used, the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from change_requests import by

from bascule.daemon.audit import AuditService
from bascule.daemon.pages import PageService
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import FakeEngine
from bascule.errors import InvalidConfiguration, NotFound
from bascule.store.audit import AuditStore
from bascule.store.pages import MAX_PAGE_BYTES, InvalidPage, PageStore
from bascule.store.revisions import RevisionStore

ADMIN = by("alice").actor
PAGE = "<h1>Back soon — bientôt</h1>\n".encode()


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[PageService, ConfigService, AuditStore]]:
    path = tmp_path / "bascule.db"
    with RevisionStore(path) as revisions, PageStore(path) as store, AuditStore(path) as audits:
        audit = AuditService(audits)
        config = ConfigService(
            store=revisions, engines=[FakeEngine()], vips=NullVipManager(), audit=audit
        )
        pages = PageService(store, directory=tmp_path / "pages", config=config, audit=audit)
        config.attach_certificates(pages.document_problems, tuple)
        yield pages, config, audits


def closed(page: str) -> dict[str, Any]:
    return {
        "virtual_services": [
            {
                "name": "shop",
                "address": "198.18.0.100",
                "port": 80,
                "not_available": {"respond": {"code": 503, "body_file": page}},
            }
        ]
    }


async def test_a_page_is_stored_written_and_named_by_a_document(
    parts: tuple[PageService, ConfigService, AuditStore], tmp_path: Path
) -> None:
    pages, config, audits = parts
    details = await pages.add("maint", PAGE, actor=ADMIN)
    assert (details.name, details.size) == ("maint", len(PAGE))
    written = tmp_path / "pages" / "maint.html"
    assert written.read_bytes() == PAGE
    assert written.stat().st_mode & 0o777 == 0o644
    await config.apply(closed("maint"), by("alice"))
    assert [(p.name, p.used_by) for p in pages.entries()] == [("maint", ("shop",))]
    assert pages.show("maint")[1] == PAGE.decode()
    with pytest.raises(InvalidPage, match="used by virtual service shop"):
        await pages.delete("maint", actor=ADMIN)
    await config.apply({"virtual_services": []}, by("alice"))
    await pages.delete("maint", actor=ADMIN)
    assert not written.exists()
    actions = [(e.action, e.outcome.value) for e in audits.page(0, 10)[0]]
    assert ("page.add", "ok") in actions
    assert ("page.delete", "refused") in actions
    assert ("page.delete", "ok") in actions


async def test_a_document_naming_a_missing_page_is_refused_on_its_field(
    parts: tuple[PageService, ConfigService, AuditStore],
) -> None:
    _, config, _ = parts
    with pytest.raises(InvalidConfiguration) as caught:
        await config.apply(closed("nowhere"), by("alice"))
    [error] = caught.value.errors
    assert error.path == "virtual_services[0].not_available.respond.body_file"
    assert "no page nowhere in the page store" in error.message


@pytest.mark.parametrize(
    ("name", "content", "field", "reason"),
    [
        ("maint", b"", "content", "empty"),
        ("maint", b"x" * (MAX_PAGE_BYTES + 1), "content", f"at most {MAX_PAGE_BYTES}"),
        ("maint", b"\xff\xfe<h1>", "content", "not UTF-8"),
        ("maint", b"<h1>\x00</h1>", "content", "control character"),
        ("maint", b"a\x1b[2Jb", "content", "control character"),
        ("../etc/passwd", PAGE, "name", "a-z, 0-9"),
        ("Maint", PAGE, "name", "a-z, 0-9"),
        ("a b", PAGE, "name", "a-z, 0-9"),
    ],
)
async def test_what_is_not_a_page_is_refused_and_changes_nothing(
    parts: tuple[PageService, ConfigService, AuditStore],
    name: str,
    content: bytes,
    field: str,
    reason: str,
) -> None:
    pages, _, _ = parts
    with pytest.raises(InvalidPage) as caught:
        await pages.add(name, content, actor=ADMIN)
    [error] = caught.value.errors
    assert error.path == field and reason in error.message
    assert pages.entries() == []


async def test_a_name_is_taken_once_and_a_missing_page_is_not_found(
    parts: tuple[PageService, ConfigService, AuditStore],
) -> None:
    pages, _, _ = parts
    await pages.add("maint", PAGE, actor=ADMIN)
    with pytest.raises(InvalidPage, match="already in the page store"):
        await pages.add("maint", b"<p>other</p>", actor=ADMIN)
    assert pages.show("maint")[1] == PAGE.decode()
    with pytest.raises(NotFound):
        await pages.delete("other", actor=ADMIN)
    with pytest.raises(NotFound):
        pages.show("other")
    assert MAX_PAGE_BYTES < 16384  # answered from one HAProxy buffer (tune.bufsize)
