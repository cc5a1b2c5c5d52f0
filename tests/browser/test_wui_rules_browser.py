"""The rules editor, sub-service tabs and contextual fields in a real browser (issue 12).

A `site` service with a sub-service `api` runs in a real daemon; Chromium edits it the way an
administrator would: fields that appear and vanish with the choices (keeping what was typed),
a rule refused for its regular expression with the error beside the field and nothing saved,
the rule added, moved up and deleted (each change previewed, then applied), the sub-service's
own tab with its settings and a drain of its real server, and the page at a phone's width.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from chromium import VIEWPORT, save_screenshot
from daemon import BasculeDaemon
from netns import Topology
from wui_pages import apply_previewed, log_in, revisions, service_document, settled

pytestmark = pytest.mark.integration

SITE = "site"
LIVE_TIMEOUT_MS = 30_000
PHONE = {"width": 390, "height": 844}


def _document(daemon: BasculeDaemon) -> dict[str, Any]:
    return service_document(daemon, SITE)


def _choose(page: Any, select: str, value: str) -> None:
    """Pick ``value`` and wait until htmx has swapped the fields it shows in and settled."""
    page.select_option(select, value)
    settled(page)


@pytest.fixture(scope="module")
def site(wui_topology: Topology, wui_daemon: BasculeDaemon) -> str:
    wui_topology.start_real_servers()
    servers = wui_topology.real_servers
    api = {"name": "api", "real_servers": [{"address": servers[1].address, "port": 80}]}
    to_api = {"name": "to-api", "match": {"path_prefix": "/api/"}, "action": {"use": "api"}}
    wui_daemon.apply(
        {
            "virtual_services": [
                {
                    "name": SITE,
                    "address": wui_topology.vip(),
                    "port": 80,
                    "type": "http",
                    "check": {"type": "http", "interval": 1},
                    "real_servers": [{"address": servers[0].address, "port": 80}],
                    "sub_services": [api],
                    "rules": [to_api],
                }
            ]
        }
    )  # fmt: skip
    return SITE


@pytest.fixture(scope="module")
def page(browser: Any, wui_url: str, site: str) -> Iterator[Any]:
    tab = log_in(browser, wui_url, VIEWPORT)
    try:
        yield tab
    finally:
        tab.context.close()


def test_fields_follow_the_choices_and_keep_what_was_typed(page: Any, site: str) -> None:
    page.goto(f"/virtual-services/{site}")
    for section in ("basic", "standard", "check", "advanced"):
        assert page.locator(f"#section-{section}").is_visible()
    cookie = page.locator("#field-persistence\\.cookie")
    assert cookie.count() == 0  # persistence none: no cookie name
    assert page.locator("#field-forwarding").count() == 0  # an l4 option on an l7 service
    page.fill("#field-slow_start", "12")
    _choose(page, "#field-persistence\\.method", "active_cookie")
    cookie.wait_for(state="visible")
    assert page.locator("#field-slow_start").input_value() == "12"  # kept through the swap
    _choose(page, "#field-check\\.type", "tcp")
    page.locator("#field-check\\.path").wait_for(state="detached")
    _choose(page, "#field-check\\.type", "http")
    page.locator("#field-check\\.path").wait_for(state="visible")
    # nothing was saved by the swaps: the page is reloaded as stored
    page.goto(f"/virtual-services/{site}")
    assert page.locator("#field-persistence\\.cookie").count() == 0


def test_a_bad_regex_is_refused_beside_its_field_then_the_rule_is_added(
    page: Any, site: str, wui_daemon: BasculeDaemon
) -> None:
    before = revisions(wui_daemon)
    page.goto(f"/virtual-services/{site}")
    page.locator('[data-action="add-rule"]').click()
    page.fill("#field-name", "images")
    page.fill("#field-match\\.path_regex", "^/img/([a-z")
    _choose(page, "#field-action\\.kind", "use")
    page.locator("#field-action\\.use").wait_for(state="visible")
    page.select_option("#field-action\\.use", "api")
    page.locator('#rule-form [data-action="preview"]').click()
    error = page.wait_for_selector("#error-match\\.path_regex")
    assert "not a valid regular expression" in error.inner_text()
    assert page.locator("#field-match\\.path_regex").input_value() == "^/img/([a-z"
    assert revisions(wui_daemon) == before  # nothing saved
    save_screenshot(page, "rule-refused.png")
    page.fill("#field-match\\.path_regex", "^/img/[a-z]+")
    page.locator('#rule-form [data-action="preview"]').click()
    apply_previewed(page)
    rules = _document(wui_daemon)["rules"]
    assert [r["name"] for r in rules] == ["to-api", "images"]
    assert rules[1]["match"]["path_regex"] == "^/img/[a-z]+"


def test_the_action_fields_follow_the_action(page: Any, site: str) -> None:
    page.goto(f"/virtual-services/{site}/new-rule")
    _choose(page, "#field-action\\.kind", "redirect")
    page.locator("#field-action\\.redirect").wait_for(state="visible")
    assert page.locator("#field-action\\.use").count() == 0
    assert page.locator("#field-rewrite_path\\.regex").count() == 0  # the LB answers itself
    _choose(page, "#field-action\\.kind", "respond")
    page.locator("#field-action\\.respond").wait_for(state="visible")
    assert page.locator("#field-action\\.redirect").count() == 0


def test_a_rule_moves_up_then_is_deleted(page: Any, site: str, wui_daemon: BasculeDaemon) -> None:
    page.goto(f"/virtual-services/{site}")
    page.locator('tr[data-rule="images"] [data-action="up"]').click()
    apply_previewed(page)
    assert [r["name"] for r in _document(wui_daemon)["rules"]] == ["images", "to-api"]
    page.goto(f"/virtual-services/{site}")
    order = page.locator("#rules tbody tr").evaluate_all("rows => rows.map(r => r.dataset.rule)")
    assert order == ["images", "to-api"]
    save_screenshot(page, "rules-editor.png")
    page.locator('tr[data-rule="images"] a').click()
    page.locator('[data-action="delete-rule"]').click()
    apply_previewed(page)
    assert [r["name"] for r in _document(wui_daemon)["rules"]] == ["to-api"]


def test_a_sub_service_tab_has_its_own_settings_and_servers(
    page: Any, site: str, wui_topology: Topology, wui_daemon: BasculeDaemon
) -> None:
    key = f"{wui_topology.real_servers[1].address}:80"
    page.goto(f"/virtual-services/{site}")
    page.locator('#service-tabs [data-tab="api"]').click()
    page.wait_for_url(re.compile(r"/sub-services/api$"))
    page.wait_for_selector(
        f'#real-servers tr[data-rs="{key}"][data-status="up"]', timeout=LIVE_TIMEOUT_MS
    )
    _choose(page, "#field-scheduler", "least_connection")
    _choose(page, "#field-persistence\\.method", "active_cookie")
    page.locator("#field-persistence\\.cookie").wait_for(state="visible")
    page.fill("#field-persistence\\.cookie", "API")
    page.locator('#sub-service-form [data-action="preview"]').click()
    apply_previewed(page)
    sub = _document(wui_daemon)["sub_services"][0]
    assert sub["scheduler"] == "least_connection"
    assert (sub["persistence"]["method"], sub["persistence"]["cookie"]) == ("active_cookie", "API")
    page.goto(f"/virtual-services/{site}/sub-services/api")
    page.locator(f'#real-servers tr[data-rs="{key}"] [data-action="drain"]').click()
    apply_previewed(page)
    assert _document(wui_daemon)["sub_services"][0]["real_servers"][0]["state"] == "drain"
    page.goto(f"/virtual-services/{site}/sub-services/api")
    page.wait_for_selector(f'#real-servers tr[data-rs="{key}"][data-state="drain"]')
    save_screenshot(page, "sub-service.png")
    # the tabs follow the statuses live: enabled again from the CLI, the tab says up without
    # a reload of the page
    page.goto(f"/virtual-services/{site}")
    page.wait_for_selector('#service-tabs [data-tab="api"] .status-down')
    wui_daemon.cli("rs", "enable", f"{site}/api", key)
    page.wait_for_selector('#service-tabs [data-tab="api"] .status-up', timeout=LIVE_TIMEOUT_MS)


def test_the_service_page_fits_a_phone(browser: Any, wui_url: str, site: str) -> None:
    phone = log_in(browser, wui_url, PHONE)
    try:
        for path in (f"/virtual-services/{site}", f"/virtual-services/{site}/new-rule",
                     f"/virtual-services/{site}/sub-services/api"):  # fmt: skip
            phone.goto(path)
            overflow = phone.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{path} is {overflow}px wider than a phone"
        phone.goto(f"/virtual-services/{site}")
        _choose(phone, "#field-persistence\\.method", "source_ip")
        phone.locator("#field-persistence\\.source_mask").wait_for(state="visible")
        save_screenshot(phone, "virtual-service-phone.png")
    finally:
        phone.context.close()
