"""What the browser tests do on the WUI's pages again and again: log in, wait for htmx to
settle, apply a previewed change, read the applied document back from the daemon."""

from __future__ import annotations

import re
from typing import Any

from daemon import BasculeDaemon
from https_access import ADMIN_PASSWORD

PAGE_TIMEOUT_MS = 15_000


def log_in(browser: Any, url: str, viewport: dict[str, int]) -> Any:
    """A new tab of a new context, logged in as admin through the login form."""
    context = browser.new_context(base_url=url, ignore_https_errors=True, viewport=viewport)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    tab = context.new_page()
    tab.goto("/login")
    tab.fill('[name="username"]', "admin")
    tab.fill('[name="password"]', ADMIN_PASSWORD)
    tab.click('[data-action="login"]')
    tab.wait_for_url(lambda u: "/login" not in u)
    return tab


def settled(page: Any) -> None:
    """Wait until htmx has swapped what it fetched in and settled (a choice made while it
    settles would go to the element being replaced)."""
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
    )


def apply_previewed(page: Any) -> None:
    """On the preview a form led to: Apply, and the change must be applied."""
    page.wait_for_url(re.compile(r"/preview$"), timeout=PAGE_TIMEOUT_MS)
    page.locator('[data-action="apply"]').click()
    outcome = page.wait_for_selector(
        '#preview[data-state="applied"], #preview[data-state="failed"]', timeout=PAGE_TIMEOUT_MS
    )
    assert outcome.get_attribute("data-state") == "applied", outcome.inner_text()


def service_document(daemon: BasculeDaemon, name: str) -> dict[str, Any]:
    """Virtual service ``name`` as the daemon exports it."""
    for service in daemon.cli_json("export")["document"]["virtual_services"]:
        if service["name"] == name:
            found: dict[str, Any] = service
            return found
    raise KeyError(name)


def revisions(daemon: BasculeDaemon) -> int:
    """How many revisions the daemon holds (a refused change adds none)."""
    return len(daemon.cli_json("history", "--limit", "1000")["items"])
