"""The access lists page: every list with where it is used and what it dropped; add, change,
block, unblock and delete through the preview; bad entries refused by line, nothing saved;
viewers see the lists and no form."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from change_requests import by
from wui_client import Browser, CheckedFakeEngine

from bascule.daemon.service import ConfigService
from bascule.store.revisions import RevisionStore


class FilterEngine(CheckedFakeEngine):
    """The FakeEngine under the kernel filter's name, with its counters (``info``)."""

    name = "filter"

    async def info(self) -> dict[str, Any]:
        return {"lists": {"office": {"entries": 2, "dropped_packets": 7}}}


@pytest.fixture
def engine() -> CheckedFakeEngine:
    return FilterEngine()


SITE = {
    "name": "site",
    "address": "198.18.0.100",
    "port": 80,
    "type": "http",
    "real_servers": [{"address": "198.18.0.4", "port": 80}],
    "access": {"allow": ["office"]},
}


@pytest.fixture
async def lists(service: ConfigService) -> None:
    document = {
        "access_lists": {"office": {"addresses": ["198.18.0.0/24", "2001:2::/64"]}},
        "virtual_services": [SITE],
    }
    result = await service.apply(document, by("test"))
    assert result.revision is not None


def _document(store: RevisionStore) -> dict[str, Any]:
    head = store.head()
    assert head is not None
    return dict(head.document)


async def _apply(browser: Browser, response: Any) -> None:
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/preview"
    applied = await browser.post("/preview/apply")
    assert applied.status_code == 303, applied.text


def _error(html: str, field: str) -> str:
    match = re.search(rf'<p class="field-error" id="error-{field}">([^<]*)</p>', html)
    assert match, f"no error beside field {field}"
    return match[1]


async def test_the_lists_with_their_use_and_drops(
    admin: Browser, lists: None, check_html: Callable[[str], None]
) -> None:
    page = await admin.client.get("/access-lists")
    assert page.status_code == 200 and 'data-nav="access_lists"' in page.text
    check_html(page.text)
    row = re.search(r'<tr data-access-list="office">(.*?)</tr>', page.text, re.S)
    assert row, page.text
    assert "site.allow" in row[1] and "<td data-dropped" not in row[1]
    assert re.search(r"data-dropped>7<", row[1]) and 'data-action="block"' in row[1]
    assert 'data-action="delete"' not in row[1]  # used by site: not offered
    one = await admin.client.get("/access-lists/office")
    assert one.status_code == 200
    check_html(one.text)
    assert "198.18.0.0/24\n2001:2::/64</textarea>" in one.text
    missing = await admin.client.get("/access-lists/nope")
    assert missing.status_code == 404


async def test_add_change_block_unblock_and_delete(
    admin: Browser, lists: None, store: RevisionStore
) -> None:
    typed = "# the lab\n198.18.5.0/24\n\n198.18.9.9   # a bastion\n2001:2:0:1::/64\n"
    await _apply(admin, await admin.post("/access-lists", {"name": "lab", "addresses": typed}))
    document = _document(store)
    assert document["access_lists"]["lab"] == {
        "addresses": ["198.18.5.0/24", "198.18.9.9", "2001:2:0:1::/64"],
        "file": None,
    }
    assert document.get("block", []) == []

    changed = {"addresses": "198.18.6.0/24\n", "block": "true"}
    await _apply(admin, await admin.post("/access-lists/lab", changed))
    document = _document(store)
    assert document["access_lists"]["lab"]["addresses"] == ["198.18.6.0/24"]
    assert document["block"] == ["lab"]
    page = await admin.client.get("/access-lists")
    assert 'action="/access-lists/lab/unblock"' in page.text

    await _apply(admin, await admin.post("/access-lists/lab/unblock"))
    assert _document(store).get("block", []) == []
    await _apply(admin, await admin.post("/access-lists/lab/block"))
    assert _document(store)["block"] == ["lab"]
    await _apply(admin, await admin.post("/access-lists/lab/unblock"))
    await _apply(admin, await admin.post("/access-lists/lab/delete"))
    assert "lab" not in _document(store)["access_lists"]


async def test_bad_entries_and_names_are_refused_beside_their_field(
    admin: Browser, lists: None, store: RevisionStore
) -> None:
    before = store.head()
    assert before is not None
    bad = "198.18.5.0/24\nnot-an-address\n198.18.5.7\n"
    refused = await admin.post("/access-lists", {"name": "lab", "addresses": bad})
    assert refused.status_code == 422
    said = _error(refused.text, "addresses")
    assert "line 2" in said and "line 3" in said and "overlaps" in said, said
    assert "not-an-address" in refused.text  # what was typed is shown again
    for name, words in (("office", "already a list named"), ("Bad Name", ""), ("", "needs a name")):
        refused = await admin.post("/access-lists", {"name": name, "addresses": "198.18.5.1"})
        assert refused.status_code == 422, name
        assert words in _error(refused.text, "name")
    injected = await admin.post(
        "/access-lists", {"name": 'x"; flush ruleset', "addresses": "198.18.5.1"}
    )
    assert injected.status_code == 422 and _error(injected.text, "name")
    changed = await admin.post("/access-lists/office", {"addresses": "198.18.0.0/33"})
    assert changed.status_code == 422 and _error(changed.text, "addresses")
    # a list still in use is not deleted: the reasons come back, nothing saved
    deleted = await admin.post("/access-lists/office/delete")
    assert deleted.status_code == 303 and deleted.headers["location"] == "/access-lists"
    page = await admin.client.get("/access-lists")
    assert "The change was not made" in page.text and "office" in page.text
    assert store.head() == before


async def test_viewers_read_and_cannot_change(
    viewer: Browser, lists: None, store: RevisionStore
) -> None:
    page = await viewer.client.get("/access-lists")
    assert page.status_code == 200 and 'data-access-list="office"' in page.text
    assert 'action="/access-lists"' not in page.text
    for action in ("block", "delete", "add-access-list"):
        assert f'data-action="{action}"' not in page.text
    one = await viewer.client.get("/access-lists/office")
    assert one.status_code == 200 and "disabled" in one.text
    before = store.head()
    for path in ("/access-lists", "/access-lists/office", "/access-lists/office/block"):
        refused = await viewer.post(path, {"name": "lab", "addresses": "198.18.5.1"})
        assert refused.status_code == 403, path
    assert store.head() == before
