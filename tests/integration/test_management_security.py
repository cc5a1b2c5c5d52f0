"""The management listener's defences, against a real daemon over real HTTPS.

End of the flow of a change seen from an attacker's side: a request must be authenticated
(token or session), carry the session's CSRF token when it writes with a cookie, and be
allowed by the caller's role before it reaches the service layer; what the store keeps must
not give a password, token or session away; and the listener stays on loopback until the
administrator opens it with `--listen`. The daemon runs in the `lb` namespace; the tests reach
it through tests/integration/https_access.py's relay, or from the `client` namespace directly.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from daemon import BasculeDaemon
from https_access import ADMIN_PASSWORD, SESSION_COOKIE, HttpsRelay, WebClient
from netns import Topology, require_root

pytestmark = pytest.mark.integration

LOCKOUT_ATTEMPTS = 3
OPERATOR = "night-shift"
OPERATOR_PASSWORD = "operator-pass-8d1f0b"

# Run inside a namespace: HTTPS GET /api/v1/status at argv[1]:argv[2]; verify the certificate
# against the file argv[3] (for that address) when given. Prints what happened as JSON.
PROBE = """
import http.client, json, ssl, sys
host, port = sys.argv[1], int(sys.argv[2])
if len(sys.argv) > 3:
    context = ssl.create_default_context(cafile=sys.argv[3])
else:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
connection = http.client.HTTPSConnection(host, port, timeout=5, context=context)
try:
    connection.request("GET", "/api/v1/status")
    print(json.dumps({"status": connection.getresponse().status}))
except OSError as exc:
    print(json.dumps({"error": type(exc).__name__, "detail": str(exc)}))
finally:
    connection.close()
"""


@dataclass
class Appliance:
    topology: Topology
    daemon: BasculeDaemon
    url: str
    admin: WebClient
    viewer_token: str
    operator_token: str

    def client(self, token: str | None = None) -> WebClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return WebClient(self.url, headers=headers)

    def revisions(self) -> int:
        return len(self.daemon.cli_json("history", "--limit", "1000")["items"])

    def rs_key(self) -> str:
        return f"{self.topology.real_servers[0].address}:80"

    def rs_state(self) -> str:
        document = self.daemon.cli_json("export")["document"]
        (service,) = document["virtual_services"]
        (server,) = service["real_servers"]
        return str(server.get("state", "enabled"))


def _secret_in(answer: Any) -> str:
    """The one-time token secret (`bsc_<id>_<secret>`) somewhere in an API answer."""
    if isinstance(answer, str):
        return answer if answer.startswith("bsc_") else ""
    values = answer.values() if isinstance(answer, dict) else answer
    if not isinstance(answer, dict | list):
        return ""
    return next((found for value in values if (found := _secret_in(value))), "")


def _create_token(admin: WebClient, name: str, role: str) -> str:
    response = admin.post(
        "/api/v1/tokens", json={"name": name, "role": role}, headers=admin.csrf_headers()
    )
    assert response.status_code in (200, 201), response.text
    secret = _secret_in(response.json())
    assert secret, f"no bsc_ token in {response.text}"
    return secret


@pytest.fixture(scope="module")
def appliance(_stale_namespaces_removed: None) -> Iterator[Appliance]:
    """One daemon for the module: admin logged in, a viewer and an operator token, `web`."""
    require_root()
    with Topology(real_servers=1) as topology:
        daemon = BasculeDaemon(
            topology,
            env={
                "BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "BASCULE_LOCKOUT_ATTEMPTS": str(LOCKOUT_ATTEMPTS),
            },
        ).start()
        try:
            daemon.apply(
                {
                    "virtual_services": [
                        {
                            "name": "web",
                            "address": topology.vip(),
                            "port": 80,
                            "check": {"type": "none"},
                            "real_servers": [
                                {"address": topology.real_servers[0].address, "port": 80}
                            ],
                        }
                    ]
                }
            )
            with HttpsRelay(topology) as relay, WebClient(relay.url) as admin:
                admin.login("admin", ADMIN_PASSWORD)
                response = admin.post(
                    "/api/v1/users",
                    json={"name": OPERATOR, "role": "operator", "password": OPERATOR_PASSWORD},
                    headers=admin.csrf_headers(),
                )
                assert response.status_code in (200, 201), response.text
                yield Appliance(
                    topology=topology,
                    daemon=daemon,
                    url=relay.url,
                    admin=admin,
                    viewer_token=_create_token(admin, "dashboard-screen", "viewer"),
                    operator_token=_create_token(admin, "night-script", "operator"),
                )
        finally:
            daemon.terminate()


def _probe(topology: Topology, host: str, address: str, *cafile: str) -> dict[str, Any]:
    proc = topology.run(host, [sys.executable, "-c", PROBE, address, "8443", *cafile])
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


# -- authentication ------------------------------------------------------------------------


def test_no_credentials_get_401_and_the_wui_sends_to_login(appliance: Appliance) -> None:
    with appliance.client() as anonymous:
        assert anonymous.get("/api/v1/status").status_code == 401
        assert anonymous.get("/api/v1/config").status_code == 401
        assert anonymous.post("/api/v1/virtual-services", json={}).status_code == 401
        page = anonymous.get("/")
        assert page.status_code in (302, 303, 307)
        assert page.headers["location"].split("?")[0].endswith("/login")
    with appliance.client("bsc_forged_0123456789abcdef") as forged:
        assert forged.get("/api/v1/status").status_code == 401
    with WebClient(appliance.url, cookies={SESSION_COOKIE: "forged-session-id"}) as forged:
        assert forged.get("/api/v1/status").status_code == 401


def test_session_cookie_is_secure_httponly_samesite_strict(appliance: Appliance) -> None:
    with appliance.client() as web:
        response = web.try_login("admin", ADMIN_PASSWORD)
        cookies = [
            header
            for header in response.headers.get_list("set-cookie")
            if header.startswith(f"{SESSION_COOKIE}=")
        ]
    assert len(cookies) == 1, response.headers
    attributes = {}
    for part in cookies[0].split(";")[1:]:
        name, _, value = part.strip().partition("=")
        attributes[name.lower()] = value
    assert "secure" in attributes
    assert "httponly" in attributes
    assert attributes.get("samesite", "").lower() == "strict"
    assert attributes.get("path") == "/"


def test_wui_pages_forbid_framing_inline_scripts_and_caching(appliance: Appliance) -> None:
    for page in (appliance.admin.get("/"), appliance.admin.get("/login")):
        policy = page.headers.get("content-security-policy", "")
        assert "script-src 'self'" in policy, policy
        assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";")[0]
        assert "frame-ancestors 'none'" in policy
        assert page.headers.get("x-content-type-options") == "nosniff"
        assert "no-store" in page.headers.get("cache-control", "")


# -- CSRF -----------------------------------------------------------------------------------


def test_wui_form_post_without_or_with_a_wrong_csrf_token_is_refused(
    appliance: Appliance,
) -> None:
    admin = appliance.admin
    revisions = appliance.revisions()
    form = {"name": "sneaky", "address": appliance.topology.vip(101), "port": "80"}
    for token in ({}, {"csrf_token": "0" * 43}, {"csrf_token": ""}):
        refused = admin.post("/virtual-services/new", data={**form, **token})
        assert refused.status_code == 403, (token, refused.status_code)
        assert admin.post("/logout", data=token).status_code == 403
    assert appliance.revisions() == revisions
    # the refused logout did not end the session
    assert admin.get("/").status_code == 200


def test_api_write_with_the_session_cookie_needs_the_csrf_header(appliance: Appliance) -> None:
    admin = appliance.admin
    drain = f"/api/v1/virtual-services/web/real-servers/{appliance.rs_key()}/drain"
    enable = f"/api/v1/virtual-services/web/real-servers/{appliance.rs_key()}/enable"
    service = {"name": "sneaky", "address": appliance.topology.vip(101), "port": 80}
    revisions = appliance.revisions()
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
        assert admin.post(drain, headers=headers).status_code == 403, headers
        assert (
            admin.post("/api/v1/virtual-services", json=service, headers=headers).status_code == 403
        )
    assert appliance.revisions() == revisions
    assert appliance.rs_state() == "enabled"
    # the same write with the token goes through
    assert admin.post(drain, headers=admin.csrf_headers()).status_code == 200
    assert appliance.rs_state() == "drain"
    assert admin.post(enable, headers=admin.csrf_headers()).status_code == 200
    assert appliance.rs_state() == "enabled"


# -- roles ---------------------------------------------------------------------------------


def test_a_viewer_token_reads_but_cannot_write(appliance: Appliance) -> None:
    key = appliance.rs_key()
    revisions = appliance.revisions()
    with appliance.client(appliance.viewer_token) as viewer:
        assert viewer.get("/api/v1/status").status_code == 200
        assert viewer.get("/api/v1/config").status_code == 200
        writes: list[Callable[[], httpx.Response]] = [
            lambda: viewer.post(f"/api/v1/virtual-services/web/real-servers/{key}/drain"),
            lambda: viewer.patch(
                f"/api/v1/virtual-services/web/real-servers/{key}", json={"weight": 5}
            ),
            lambda: viewer.post(
                "/api/v1/virtual-services",
                json={"name": "sneaky", "address": appliance.topology.vip(101), "port": 80},
            ),
            lambda: viewer.delete("/api/v1/virtual-services/web"),
            lambda: viewer.post("/api/v1/tokens", json={"name": "escalate", "role": "admin"}),
        ]
        for write in writes:
            response = write()
            assert response.status_code == 403, response.text
    assert appliance.revisions() == revisions
    assert appliance.rs_state() == "enabled"


def test_an_operator_token_drains_but_cannot_change_structure(appliance: Appliance) -> None:
    key = appliance.rs_key()
    with appliance.client(appliance.operator_token) as operator:
        assert operator.delete("/api/v1/virtual-services/web").status_code == 403
        assert (
            operator.patch(
                f"/api/v1/virtual-services/web/real-servers/{key}", json={"max_connections": 5}
            ).status_code
            == 403
        )
        assert operator.post(f"/api/v1/virtual-services/web/real-servers/{key}/drain").is_success
        assert appliance.rs_state() == "drain"
        assert operator.post(f"/api/v1/virtual-services/web/real-servers/{key}/enable").is_success
    assert appliance.rs_state() == "enabled"


# -- lockout ------------------------------------------------------------------------------


def test_repeated_failures_lock_the_name_out(appliance: Appliance) -> None:
    with appliance.client() as attacker:
        for attempt in range(1, LOCKOUT_ATTEMPTS + 1):
            # the failure that reaches the limit may already answer "locked"
            expected = {401} if attempt < LOCKOUT_ATTEMPTS else {401, 429}
            assert attacker.try_login(OPERATOR, "guess").status_code in expected
            assert attacker.cookies.get(SESSION_COOKIE) is None
        # now even the right password is refused, and the page says for how long
        locked = attacker.try_login(OPERATOR, OPERATOR_PASSWORD)
        assert locked.status_code == 429
        assert attacker.cookies.get(SESSION_COOKIE) is None
        assert re.search(r"too many failed logins: try again in \d+ seconds", locked.text, re.I)
    # the lock is on that name only: the admin still logs in
    with appliance.client() as other:
        other.login("admin", ADMIN_PASSWORD)
    entries = appliance.admin.get("/api/v1/audit", params={"action": "login"}).text
    assert "locked" in entries


# -- secrets at rest ----------------------------------------------------------------------


def test_passwords_tokens_and_sessions_are_not_stored_in_clear(appliance: Appliance) -> None:
    secrets = {
        "admin password": ADMIN_PASSWORD,
        "operator password": OPERATOR_PASSWORD,
        "viewer token": appliance.viewer_token,
        "viewer token secret": appliance.viewer_token.split("_", 2)[2],
        "operator token secret": appliance.operator_token.split("_", 2)[2],
        "session id": appliance.admin.session_cookie(),
    }
    files = [
        path
        for path in Path(appliance.daemon.data_dir).rglob("*")
        if path.is_file() and not path.is_socket()
    ]
    database = b"".join(path.read_bytes() for path in files if path.name.startswith("bascule.db"))
    assert b"$argon2" in database, "no argon2 hash in the store: wrong file?"
    for path in [*files, appliance.daemon.log_path]:
        content = path.read_bytes()
        for what, secret in secrets.items():
            assert secret.encode() not in content, f"the {what} is in clear in {path}"


# -- where the listener listens -----------------------------------------------------------


def test_listener_is_on_loopback_only_by_default(appliance: Appliance) -> None:
    topology = appliance.topology
    from_client = _probe(topology, "client", topology.lb.address)
    assert from_client.get("error") == "ConnectionRefusedError", from_client
    # not even the lb's own address: only 127.0.0.1
    from_lb = _probe(topology, "lb", topology.lb.address)
    assert from_lb.get("error") == "ConnectionRefusedError", from_lb
    assert _probe(topology, "lb", "127.0.0.1") == {"status": 401}


def test_listen_option_opens_the_listener_with_a_matching_certificate(
    make_topology: Callable[..., Topology],
) -> None:
    topology = make_topology(real_servers=0)
    address = topology.lb.address
    daemon = BasculeDaemon(
        topology,
        env={"BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD},
        run_args=["--listen", f"{address}:8443"],
    ).start()
    try:
        topology.wait_tcp("client", address, 8443)
        certificate = daemon.data_dir / "tls" / "cert.pem"
        # verified: the self-signed certificate names the listen address
        assert _probe(topology, "client", address, str(certificate)) == {"status": 401}
    finally:
        daemon.terminate()
