"""The dashboard's pages of services (web/pages/dashboard.py: Pager)."""

from __future__ import annotations

from wui_client import Browser

from bascule.web.pages.dashboard import PER_PAGE, Pager


def test_pages_of_a_thousand_services() -> None:
    pager = Pager(page=3, per_page=50, total=1000)
    assert (pager.pages, pager.start, pager.first, pager.last) == (20, 100, 101, 150)
    assert PER_PAGE == 50 and pager.link(4) == "?page=4"


def test_a_page_past_the_end_shows_the_last() -> None:
    pager = Pager(page=99, per_page=10, total=25)
    assert (pager.pages, pager.start, pager.first, pager.last) == (3, 20, 21, 25)
    assert pager.link(1) == "?page=1&per_page=10"


def test_no_services() -> None:
    pager = Pager(page=1, per_page=50, total=0)
    assert (pager.pages, pager.first, pager.last) == (1, 0, 0)


async def test_the_live_section_keeps_its_page(admin: Browser, web_service: int) -> None:
    live = await admin.client.get(
        "/dashboard/live?page=2&per_page=1", headers={"HX-Request": "true"}
    )
    assert 'hx-get="/dashboard/live?page=2&amp;per_page=1"' in live.text
    assert '<tr data-vs="web"' in live.text  # one service: page 2 shows the last, page 1
    assert 'id="dashboard-pager"' not in live.text
    refused = await admin.client.get("/dashboard/live?per_page=0", headers={"HX-Request": "true"})
    assert refused.status_code == 400
