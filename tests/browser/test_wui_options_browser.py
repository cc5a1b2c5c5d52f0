"""The service page's header operations editor, limits, cache, compression and authentication in
a real browser (issues 12 and 13).

A `shop` http service and an l4 `tcp4` service run in a real daemon (HAProxy and nftables);
Chromium edits them the way an administrator would: header operations added, made a replace
(its regex and "with" appear), moved, deleted, refused for a bad regex beside the input with
nothing saved, then saved; the cache, compression and authentication switched on (their
settings appear), limits and access lists filled in, saved through one preview; a bad cache
size refused beside its field; the cache purged from the page; the limits view; and the l4
service showing only what l4 takes.
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

SHOP = "shop"
L4 = "tcp4"
LIVE_TIMEOUT_MS = 30_000
HTTP_PASSWORD = "ops-password-1"


def _service(daemon: BasculeDaemon, name: str = SHOP) -> dict[str, Any]:
    return service_document(daemon, name)


def _click(page: Any, selector: str) -> None:
    page.locator(selector).click()
    settled(page)


def _preview_and_apply(page: Any) -> None:
    page.locator('#virtual-service-form [data-action="preview"]').click()
    apply_previewed(page)


def _row(list_name: str, index: int, part: str) -> str:
    return f'[name="{list_name}[{index}].{part}"]'


def _names(page: Any, list_name: str) -> list[str]:
    inputs = page.locator(f'#section-{list_name.replace("_", "-")} input[name$=".name"]')
    names: list[str] = inputs.evaluate_all("inputs => inputs.map(i => i.value)")
    return names


@pytest.fixture(scope="module")
def shop(wui_topology: Topology, wui_daemon: BasculeDaemon) -> str:
    wui_topology.start_real_servers()
    servers = wui_topology.real_servers
    wui_daemon.cli("http-user", "add", "ops", "--password-stdin", stdin=HTTP_PASSWORD + "\n")
    wui_daemon.apply(
        {
            "access_lists": {
                "office": {"addresses": ["198.18.0.0/24"]},
                "partners": {"addresses": ["198.18.5.0/24"]},
            },
            "virtual_services": [
                {
                    "name": SHOP,
                    "address": wui_topology.vip(),
                    "port": 80,
                    "type": "http",
                    "check": {"type": "http", "interval": 1},
                    "real_servers": [{"address": servers[0].address, "port": 80}],
                },
                {
                    "name": L4,
                    "address": wui_topology.vip(101),
                    "port": 81,
                    "mode": "l4",
                    "type": "generic",
                    "check": {"type": "tcp", "interval": 1},
                    "real_servers": [{"address": servers[1].address, "port": 80}],
                },
            ],
        }
    )
    return SHOP


@pytest.fixture(scope="module")
def page(browser: Any, wui_url: str, shop: str) -> Iterator[Any]:
    tab = log_in(browser, wui_url, VIEWPORT)
    try:
        yield tab
    finally:
        tab.context.close()


def test_header_operations_are_added_moved_deleted_and_saved(
    page: Any, shop: str, wui_daemon: BasculeDaemon
) -> None:
    page.goto(f"/virtual-services/{shop}")
    request = "#section-request-headers"
    _click(page, f'{request} [data-action="add-header"]')
    page.fill(_row("request_headers", 0, "name"), "X-Env")
    page.fill(_row("request_headers", 0, "value"), "prod")
    _click(page, f'{request} [data-action="add-header"]')
    page.fill(_row("request_headers", 1, "name"), "Host")
    page.select_option(_row("request_headers", 1, "op"), "replace")
    settled(page)
    page.locator(_row("request_headers", 1, "regex")).wait_for(state="visible")
    assert page.locator(_row("request_headers", 1, "value")).count() == 0
    page.fill(_row("request_headers", 1, "regex"), "^old\\.(.*")  # a bad regex first
    page.fill(_row("request_headers", 1, "with"), "new.\\1")
    _click(page, f'{request} [data-action="add-header"]')
    page.select_option(_row("request_headers", 2, "op"), "delete")
    settled(page)
    page.fill(_row("request_headers", 2, "name"), "X-Drop")
    assert _names(page, "request_headers") == ["X-Env", "Host", "X-Drop"]
    _click(page, f'{request} [data-row="2"] [data-action="up"]')
    assert _names(page, "request_headers") == ["X-Env", "X-Drop", "Host"]
    _click(page, f'{request} [data-row="0"] [data-action="delete"]')
    assert _names(page, "request_headers") == ["X-Drop", "Host"]
    assert page.locator(_row("request_headers", 0, "value")).count() == 0  # a delete: no value
    _click(page, '#section-response-headers [data-action="add-header"]')
    page.select_option(_row("response_headers", 0, "op"), "delete")
    settled(page)
    page.fill(_row("response_headers", 0, "name"), "Server")

    before = revisions(wui_daemon)
    page.locator('#virtual-service-form [data-action="preview"]').click()
    error = page.wait_for_selector("#error-request_headers\\[1\\]\\.regex")
    assert "not a valid regular expression" in error.inner_text()
    assert page.locator(_row("request_headers", 1, "regex")).input_value() == "^old\\.(.*"
    assert _names(page, "request_headers") == ["X-Drop", "Host"]  # the rows as typed
    assert revisions(wui_daemon) == before
    page.fill(_row("request_headers", 1, "regex"), "^old\\.(.*)")
    _preview_and_apply(page)
    stored = _service(wui_daemon)
    assert [{k: v for k, v in op.items() if v is not None} for op in stored["request_headers"]] == [
        {"delete": "X-Drop"},
        {"replace": "Host", "regex": "^old\\.(.*)", "replacement": "new.\\1"},
    ]
    assert [op["delete"] for op in stored["response_headers"]] == ["Server"]
    page.goto(f"/virtual-services/{shop}")
    assert _names(page, "request_headers") == ["X-Drop", "Host"]
    save_screenshot(
        page,
        "header-operations.png",
        parts=(page.locator("#section-request-headers"), page.locator("#section-response-headers")),
    )


def test_limits_cache_compression_and_authentication(
    page: Any, shop: str, wui_daemon: BasculeDaemon, wui_topology: Topology
) -> None:
    page.goto(f"/virtual-services/{shop}")
    assert page.locator("#field-cache\\.size_mb").count() == 0  # off: no settings shown
    page.fill("#field-limits\\.per_client\\.requests_per_second", "50")
    page.check("#field-cache\\.enabled")
    settled(page)
    page.locator("#field-cache\\.size_mb").wait_for(state="visible")
    assert page.locator("#field-limits\\.per_client\\.requests_per_second").input_value() == "50"
    page.fill("#field-cache\\.size_mb", "1")
    page.fill("#field-cache\\.max_object_kb", "4096")  # more than half the cache
    page.check("#field-compression\\.enabled")
    settled(page)
    page.fill("#field-compression\\.types", "text/html, application/json")
    page.check("#field-authentication\\.enabled")
    settled(page)
    page.fill("#field-authentication\\.realm", "Operations")
    page.check('input[name="authentication.users"][value="ops"]')
    page.fill("#field-limits\\.max_connections", "10000")
    page.select_option("#field-limits\\.response\\.code", "503")
    page.fill("#field-limits\\.response\\.retry_after", "10")
    page.check('input[name="limits.exempt"][value="partners"]')
    page.check('input[name="access.allow"][value="office"]')

    before = revisions(wui_daemon)
    page.locator('#virtual-service-form [data-action="preview"]').click()
    error = page.wait_for_selector("#error-cache\\.max_object_kb")
    assert "at most half of size_mb" in error.inner_text()
    assert revisions(wui_daemon) == before
    assert page.locator("#field-compression\\.types").input_value() == (
        "text/html, application/json"
    )
    page.fill("#field-cache\\.size_mb", "64")
    page.fill("#field-cache\\.max_object_kb", "1024")
    _preview_and_apply(page)
    stored = _service(wui_daemon)
    assert stored["cache"]["size_mb"] == 64 and stored["cache"]["max_object_kb"] == 1024
    assert stored["compression"]["types"] == ["text/html", "application/json"]
    assert stored["authentication"] == {"realm": "Operations", "users": ["ops"]}
    assert stored["access"]["allow"] == ["office"]
    limits = stored["limits"]
    assert limits["max_connections"] == 10000
    assert limits["per_client"]["requests_per_second"] == 50
    assert limits["response"] == {"code": 503, "retry_after": 10}
    assert limits["exempt"] == ["partners"]

    page.goto(f"/virtual-services/{shop}")
    save_screenshot(
        page,
        "service-filtering.png",
        parts=(page.locator("#section-access"), page.locator("#section-authentication")),
    )
    page.locator('[data-action="purge-cache"]').click()
    page.wait_for_url(re.compile(rf"/virtual-services/{shop}$"))
    assert "The cache of shop was purged." in page.locator("body").inner_text()
    # a client over its rate (100 requests/s against 50): the limits view, refreshed live,
    # shows it limited, as HAProxy's stick table counts it
    flood = wui_topology.start_client(
        "--url", f"http://{wui_topology.vip()}/", "--rate", "100", "--duration", "8"
    )
    try:
        page.locator('[data-action="limits"]').click()
        page.wait_for_url(re.compile(r"/limits$"))
        client = wui_topology.client.address
        page.wait_for_selector(
            f'#client-loads tr[data-client="{client}"][data-limited="true"]',
            timeout=LIVE_TIMEOUT_MS,
        )
        save_screenshot(page, "limits.png")
    finally:
        wui_topology.finish_client(flood)


def test_an_l4_service_shows_only_what_l4_takes(page: Any, shop: str) -> None:
    page.goto(f"/virtual-services/{L4}")
    page.locator("#field-limits\\.per_client\\.connections").wait_for(state="visible")
    for absent in ("limits\\.per_client\\.requests_per_second", "limits\\.response\\.code",
                   "cache\\.enabled", "compression\\.enabled", "authentication\\.enabled",
                   "timeouts\\.idle", "rewrite_path\\.regex"):  # fmt: skip
        assert page.locator(f"#field-{absent}").count() == 0, absent
    assert page.locator("#section-request-headers").count() == 0
    options = page.locator("#field-not_available\\.kind option").evaluate_all(
        "options => options.map(o => o.value)"
    )
    assert options == ["", "sorry_server"]


def test_access_lists_page_adds_blocks_and_deletes_a_list(
    page: Any, shop: str, wui_daemon: BasculeDaemon, wui_topology: Topology
) -> None:
    page.goto("/access-lists")
    office = page.locator('tr[data-access-list="office"]')
    assert "shop.allow" in office.inner_text()  # the previous test allowed it on the shop
    before = revisions(wui_daemon)
    page.fill("#field-name", "scanners")
    page.fill("#field-addresses", "# seen on 5 December\n198.18.250.0/24\n198.18.250.7\n")
    page.check("#field-block")
    page.locator('[data-action="add-access-list"]').click()
    error = page.wait_for_selector("#error-addresses")
    assert "line 3" in error.inner_text() and "overlaps" in error.inner_text()
    assert revisions(wui_daemon) == before
    page.fill("#field-addresses", "# seen on 5 December\n198.18.250.0/24\n2001:2:0:fa::/64\n")
    page.locator('[data-action="add-access-list"]').click()
    apply_previewed(page)
    document = wui_daemon.cli_json("export")["document"]
    assert document["block"] == ["scanners"]
    assert document["access_lists"]["scanners"]["addresses"] == [
        "198.18.250.0/24",
        "2001:2:0:fa::/64",
    ]
    listed = wui_topology.run(
        "lb", ["nft", "list", "set", "inet", "bascule_filter", "acl4/scanners"]
    )
    assert "198.18.250.0/24" in listed.stdout, listed.stdout

    page.goto("/access-lists")
    row = page.locator('tr[data-access-list="scanners"]')
    assert "yes" in row.inner_text()
    save_screenshot(page, "access-lists.png")
    row.locator('[data-action="unblock"]').click()
    apply_previewed(page)
    assert wui_daemon.cli_json("export")["document"].get("block", []) == []
    page.goto("/access-lists")
    page.locator('tr[data-access-list="scanners"] [data-action="delete"]').click()
    apply_previewed(page)
    assert "scanners" not in wui_daemon.cli_json("export")["document"]["access_lists"]
