"""The web interface's "High availability" page, its join form, in a real browser.

The pair's topology (tests/integration/ha_pair.py): lb1 runs the pair's document with its
HTTPS listener on its node address; lb2 starts empty, its WUI relayed to the root namespace
where Chromium runs. An administrator of lb2 fills the join form: a wrong fingerprint is
refused beside its field (nothing sent to lb1, nothing joined, the token never shown back),
then the right one joins lb2 to lb1, which the page and ``ha status`` then say.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from daemon import BasculeDaemon
from ha_pair import LB1, LB2, START_TIMEOUT, Pair, PairTopology
from https_access import ADMIN_PASSWORD, HttpsRelay
from netns import require_root
from waiting import wait_until

if not Path("/usr/sbin/keepalived").exists():
    pytest.skip("needs keepalived (Debian package keepalived)", allow_module_level=True)

PORT = 8443
PAGE_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    """lb1 the active with the pair's document; lb2 started empty; both listening on their
    node addresses, with a known admin password."""
    require_root()
    with PairTopology() as topology:
        topology.start_real_servers()
        nodes = Pair(
            topology,
            run_args={"lb": ("--listen", f"{LB1}:{PORT}"), "lb2": ("--listen", f"{LB2}:{PORT}")},
            env={"BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD},
        )
        try:
            nodes.start("lb")
            wait_until("lb1 holds the VIP", lambda: nodes.holds_vip("lb"), timeout=20)
            nodes.daemons["lb2"].start(timeout=START_TIMEOUT)
            yield nodes
        finally:
            nodes.stop()


def fingerprint(daemon: BasculeDaemon) -> str:
    pem = (daemon.data_dir / "tls" / "cert.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256()).hex(":").upper()


def joined(daemon: BasculeDaemon) -> bool:
    return bool(daemon.cli_json("ha", "status")["sync"]["joined"])


def test_the_join_form_refuses_a_wrong_fingerprint_then_joins(browser: Any, pair: Pair) -> None:
    lb1, lb2 = pair.daemons["lb"], pair.daemons["lb2"]
    token = lb1.cli_json("token", "create", "join-lb2", "--role", "admin")["secret"]
    right = fingerprint(lb1)
    with HttpsRelay(pair.topology, host="lb2", address=LB2) as relay:
        context = browser.new_context(base_url=relay.url, ignore_https_errors=True)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        try:
            tab = context.new_page()
            tab.goto("/login")
            tab.fill('[name="username"]', "admin")
            tab.fill('[name="password"]', ADMIN_PASSWORD)
            tab.click('[data-action="login"]')
            tab.wait_for_url(lambda url: "/login" not in url)

            tab.goto("/ha")
            tab.fill("#field-url", f"https://{LB1}:{PORT}")
            tab.fill("#field-token", token)
            tab.fill("#field-fingerprint", "00" + right[2:])
            tab.click('[data-action="join"]')
            error = tab.wait_for_selector("#error-fingerprint")
            assert "nothing was sent" in error.inner_text(), error.inner_text()
            assert tab.get_attribute("#field-fingerprint", "aria-invalid") == "true"
            assert tab.input_value("#field-url") == f"https://{LB1}:{PORT}"  # kept
            assert tab.input_value("#field-token") == ""  # never shown back
            assert token not in tab.content()
            assert not joined(lb2) and not joined(lb1)

            tab.fill("#field-token", token)
            tab.fill("#field-fingerprint", right.lower())
            tab.click('[data-action="join"]')
            notice = tab.wait_for_selector("[data-message]")
            assert f"joined https://{LB1}:{PORT}" in notice.inner_text(), notice.inner_text()
            assert tab.locator("#field-token").count() == 0  # joined: no form any more
            assert joined(lb2) and joined(lb1)
            assert (
                lb2.cli_json("ha", "status")["revision"] == lb1.cli_json("ha", "status")["revision"]
            )
        finally:
            context.close()
