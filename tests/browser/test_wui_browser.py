"""The WUI in a real browser: Debian's Chromium headless against a real daemon.

What an administrator does on the first day, in order (the tests of this module share one
daemon, one browser and one logged-in page, and build on each other's changes): log in, add
a virtual service and two real servers through the forms (each change previewed, then
applied), watch the service turn green, stop a real server and watch its row turn red while
the page stays loaded, drain it, roll a change back from History (and see the server come
back green), see a bad weight refused beside its field with nothing saved, and the dashboard
showing the traffic of a background client.

The page is found through the stable hooks the WUI promises its tests (issue 5):
`#field-<name>` inputs with `#error-<name>` beside them, `tr[data-vs]`/`tr[data-rs]` rows with
`data-status`, and buttons with `data-action`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from chromium import VIEWPORT, save_screenshot
from daemon import BasculeDaemon
from https_access import ADMIN_PASSWORD
from netns import Topology
from wui_pages import log_in

pytestmark = pytest.mark.integration

SERVICE = "web"
# Health changes take a check interval times rise/fall, then up to one 2 s poll of the page.
LIVE_TIMEOUT_MS = 30_000
PAGE_TIMEOUT_MS = 15_000


def rs_key(topology: Topology, index: int) -> str:
    return f"{topology.real_servers[index].address}:80"


def revision_count(daemon: BasculeDaemon) -> int:
    return len(daemon.cli_json("history", "--limit", "1000")["items"])


def current_document(daemon: BasculeDaemon) -> dict[str, Any]:
    document: dict[str, Any] = daemon.cli_json("export")["document"]
    return document


def real_server(daemon: BasculeDaemon, key: str) -> dict[str, Any]:
    for service in current_document(daemon)["virtual_services"]:
        for server in service.get("real_servers", []):
            if f"{server['address']}:{server['port']}" == key:
                found: dict[str, Any] = server
                return found
    raise KeyError(key)


def apply_previewed(page: Any) -> None:
    """A change was asked for: on its preview, press Apply and wait until it is applied."""
    page.wait_for_url(re.compile(r"/preview$"), timeout=PAGE_TIMEOUT_MS)
    assert page.locator("#diff li").count() > 0, "the preview shows no diff"
    page.locator('[data-action="apply"]').click()
    outcome = page.wait_for_selector(
        '#preview[data-state="applied"], #preview[data-state="failed"]', timeout=PAGE_TIMEOUT_MS
    )
    assert outcome.get_attribute("data-state") == "applied", outcome.inner_text()


def submit(page: Any, field_id: str) -> None:
    """Press the submit button of the form holding `#field_id`."""
    page.locator(f"form:has(#{field_id}) [type=submit]").first.click()


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_servers(wui_topology: Topology) -> list[Any]:
    return wui_topology.start_real_servers()


@pytest.fixture(scope="module")
def page(browser: Any, wui_url: str) -> Iterator[Any]:
    """One browser tab logged in as admin through the login form."""
    tab = log_in(browser, wui_url, VIEWPORT)
    try:
        yield tab
    finally:
        tab.context.close()


@pytest.fixture(scope="module")
def web_service(
    page: Any, wui_topology: Topology, wui_daemon: BasculeDaemon, real_servers: list[Any]
) -> str:
    """The `web` service and its two real servers, added through the forms."""
    page.goto("/virtual-services/new")
    page.fill("#field-name", SERVICE)
    page.fill("#field-address", wui_topology.vip())
    page.fill("#field-port", "80")
    page.select_option("#field-protocol", "tcp")
    page.select_option("#field-type", "http")
    submit(page, "field-address")
    apply_previewed(page)
    for index in range(2):
        page.goto(f"/virtual-services/{SERVICE}/real-servers/new")
        page.fill("#field-address", wui_topology.real_servers[index].address)
        page.fill("#field-port", "80")
        page.fill("#field-weight", "1000")
        submit(page, "field-address")
        apply_previewed(page)
    # Light steady traffic for the rest of the module: the pages show rates and sparklines.
    wui_topology.start_client(
        "--url", f"http://{wui_topology.vip()}/", "--duration", "600", "--rate", "20"
    )
    return SERVICE


# -- the tests -----------------------------------------------------------------------------


def test_login_refuses_a_wrong_password_and_admits_the_right_one(
    browser: Any, wui_url: str
) -> None:
    context = browser.new_context(base_url=wui_url, ignore_https_errors=True)
    try:
        tab = context.new_page()
        tab.goto("/")  # not logged in: sent to the login page
        tab.wait_for_url(re.compile(r"/login"))
        tab.fill('[name="username"]', "admin")
        tab.fill('[name="password"]', "not-the-password")
        tab.click('[data-action="login"]')
        tab.wait_for_load_state()
        assert "/login" in tab.url
        assert tab.locator('[name="password"]').is_visible()
        assert context.cookies() == [] or all(
            cookie["name"] != "bascule_session" for cookie in context.cookies()
        )
        tab.fill('[name="username"]', "admin")
        tab.fill('[name="password"]', ADMIN_PASSWORD)
        tab.click('[data-action="login"]')
        tab.wait_for_url(lambda url: "/login" not in url)
        session = [c for c in context.cookies() if c["name"] == "bascule_session"]
        assert session and session[0]["secure"] and session[0]["httpOnly"]
        assert session[0]["sameSite"] == "Strict"
    finally:
        context.close()


def test_service_added_through_the_forms_turns_green(
    page: Any, web_service: str, wui_topology: Topology, wui_daemon: BasculeDaemon
) -> None:
    document = current_document(wui_daemon)
    (service,) = document["virtual_services"]
    assert service["name"] == web_service
    assert service["address"] == wui_topology.vip()
    assert [f"{rs['address']}:{rs['port']}" for rs in service["real_servers"]] == [
        rs_key(wui_topology, 0),
        rs_key(wui_topology, 1),
    ]
    page.goto("/")
    page.wait_for_selector(
        f'tr[data-vs="{web_service}"][data-status="up"]', timeout=LIVE_TIMEOUT_MS
    )


def test_stopped_real_server_turns_red_without_a_reload(
    page: Any,
    web_service: str,
    wui_topology: Topology,
    wui_daemon: BasculeDaemon,
    real_servers: list[Any],
) -> None:
    page.goto(f"/virtual-services/{web_service}")
    for index in range(2):
        page.wait_for_selector(
            f'tr[data-rs="{rs_key(wui_topology, index)}"][data-status="up"]',
            timeout=LIVE_TIMEOUT_MS,
        )
    navigations: list[str] = []

    def navigated(frame: Any) -> None:
        if frame == page.main_frame:
            navigations.append(frame.url)

    page.on("framenavigated", navigated)
    page.evaluate("window.__basculeNotReloaded = true")
    try:
        wui_topology.stop(real_servers[0])  # rs1's server process is gone
        down = f'tr[data-rs="{rs_key(wui_topology, 0)}"][data-status="down"]'
        page.wait_for_selector(down, timeout=LIVE_TIMEOUT_MS)
    finally:
        page.remove_listener("framenavigated", navigated)
    assert page.evaluate("window.__basculeNotReloaded === true"), "the page was reloaded"
    assert navigations == [], "the page navigated"
    # the other one stays green
    assert page.locator(f'tr[data-rs="{rs_key(wui_topology, 1)}"][data-status="up"]').is_visible()
    save_screenshot(page, "virtual-service.png")


def test_drain_button_drains_the_real_server(
    page: Any, web_service: str, wui_topology: Topology, wui_daemon: BasculeDaemon
) -> None:
    key = rs_key(wui_topology, 0)
    page.goto(f"/virtual-services/{web_service}")
    page.locator(f'tr[data-rs="{key}"] [data-action="drain"]').click()
    apply_previewed(page)
    assert real_server(wui_daemon, key)["state"] == "drain"
    page.goto(f"/virtual-services/{web_service}")
    # drained: the row offers enable again
    assert page.locator(f'tr[data-rs="{key}"] [data-action="enable"]').count() == 1


def test_rollback_from_history_undoes_the_drain(
    page: Any, web_service: str, wui_topology: Topology, wui_daemon: BasculeDaemon
) -> None:
    key = rs_key(wui_topology, 0)
    assert real_server(wui_daemon, key)["state"] == "drain"
    history = wui_daemon.cli_json("history", "--limit", "1000")["items"]
    before_drain = max(item["number"] for item in history) - 1
    page.goto("/history")
    page.locator(f'[data-action="rollback"][data-revision="{before_drain}"]').click()
    apply_previewed(page)
    assert real_server(wui_daemon, key)["state"] == "enabled"
    assert revision_count(wui_daemon) == len(history) + 1  # a rollback is a new revision

    # and when its server comes back, the row turns green again, live
    page.goto(f"/virtual-services/{web_service}")
    page.wait_for_selector(f'tr[data-rs="{key}"][data-status="down"]')
    wui_topology.start_real_server("rs1")
    page.wait_for_selector(f'tr[data-rs="{key}"][data-status="up"]', timeout=LIVE_TIMEOUT_MS)


def test_bad_weight_is_refused_beside_the_field_and_nothing_is_saved(
    page: Any, web_service: str, wui_topology: Topology, wui_daemon: BasculeDaemon
) -> None:
    revisions = revision_count(wui_daemon)
    page.goto(f"/virtual-services/{web_service}/real-servers/new")
    page.fill("#field-address", "198.18.0.40")
    page.fill("#field-port", "80")
    page.fill("#field-weight", "70000")
    submit(page, "field-weight")
    error = page.locator("#error-weight")
    error.wait_for(state="visible")
    # in words a person understands: the allowed range, not a validator's jargon
    assert "65535" in error.inner_text(), error.inner_text()
    # beside the field: the error follows the input in the same form
    assert page.evaluate(
        "(() => { const f = document.getElementById('field-weight');"
        " const e = document.getElementById('error-weight');"
        " return f.compareDocumentPosition(e) & Node.DOCUMENT_POSITION_FOLLOWING; })()"
    )
    assert page.input_value("#field-weight") == "70000"  # kept for the person to correct
    assert "/preview" not in page.url
    assert revision_count(wui_daemon) == revisions


def test_dashboard_shows_the_traffic_live(page: Any, web_service: str) -> None:
    page.goto("/")
    row = f'tr[data-vs="{web_service}"]'
    page.wait_for_selector(f'{row}[data-status="up"]', timeout=LIVE_TIMEOUT_MS)
    # the background client's requests show as a rate (an en dash while there is none)
    page.wait_for_function(
        "selector => { const cell = document.querySelector(selector);"
        " return cell !== null && !cell.textContent.trim().startsWith('\u2013'); }",
        arg=f'{row} [data-field="rate"]',
        timeout=LIVE_TIMEOUT_MS,
    )
    assert page.locator(f"{row} svg.sparkline").count() == 1
    save_screenshot(page, "dashboard.png")


def test_request_logs_page_shows_the_traffic_and_filters_it(page: Any, web_service: str) -> None:
    """The background client's requests appear on the Request logs page, newest first; the
    service filter keeps them, a text no line holds leaves none."""
    page.goto("/request-logs")
    rows = f'table.request-logs tr[data-vs="{web_service}"]'

    def refreshed_until_lines() -> None:
        deadline = time.monotonic() + LIVE_TIMEOUT_MS / 1000
        while page.locator(rows).count() == 0:
            assert time.monotonic() < deadline, "no request line on the page"
            page.wait_for_timeout(500)  # a poll of the page, bounded by the deadline
            page.reload()

    refreshed_until_lines()
    assert '"GET / HTTP/1.1"' in page.locator(rows).first.inner_text()
    page.select_option("#field-vs", web_service)
    page.click('[data-action="filter"]')
    page.wait_for_url(re.compile(r"vs=" + web_service))
    assert page.locator(rows).count() > 0
    save_screenshot(page, "request-logs.png")
    page.fill("#field-text", "no line holds this")
    page.click('[data-action="filter"]')
    page.wait_for_url(re.compile(r"text="))
    assert page.locator(rows).count() == 0
    assert "No line matches this filter." in page.content()
