"""Reaching a test daemon's HTTPS management listener from the root namespace.

`bascule run` serves the WUI and the API over HTTPS on 127.0.0.1:8443 *inside* the topology's
`lb` namespace (the default `--listen`). The browser tests and the security tests run in the
root namespace, so `HttpsRelay` bridges the two with tests/tools/relay.py: one relay in `lb`
from a unix socket (unix sockets are not network-namespaced) to 127.0.0.1:8443, one in the
root namespace from 127.0.0.1:<free port> to that unix socket. TLS ends at the daemon, so what
the tests see is exactly what a browser on the appliance would see.

    daemon = BasculeDaemon(topo, env={"BASCULE_ADMIN_PASSWORD": ADMIN_PASSWORD}).start()
    with HttpsRelay(topo) as relay:
        with WebClient(relay.url) as web:
            web.login("admin", ADMIN_PASSWORD)
            web.get("/")
"""

from __future__ import annotations

import contextlib
import html
import re
import subprocess
import sys
from typing import Any

import httpx
from netns import TOOLS, Topology, TopologyError, wait_ready

RELAY = TOOLS / "relay.py"
HTTPS_PORT = 8443
ADMIN_PASSWORD = "correct-horse-battery-staple"  # test only: BASCULE_ADMIN_PASSWORD
SESSION_COOKIE = "bascule_session"

_CSRF_RE = (
    re.compile(r'name="csrf_token"[^>]*\bvalue="([^"]+)"'),
    re.compile(r'value="([^"]+)"[^>]*name="csrf_token"'),
    re.compile(r'X-CSRF-Token(?:"|&quot;|&#34;)\s*:\s*(?:"|&quot;|&#34;)([^"&]+)'),
    re.compile(r'<meta name="csrf-token" content="([^"]+)"'),
)


def csrf_token(page: str) -> str | None:
    """The CSRF token a WUI page carries (a form's hidden field or the htmx headers)."""
    for pattern in _CSRF_RE:
        match = pattern.search(page)
        if match:
            return html.unescape(match.group(1))
    return None


class HttpsRelay:
    """127.0.0.1:<port> in the root namespace -> `address`:`port` inside `host` (`lb`,
    127.0.0.1 unless told)."""

    def __init__(
        self,
        topology: Topology,
        *,
        port: int = HTTPS_PORT,
        host: str = "lb",
        address: str = "127.0.0.1",
    ) -> None:
        if topology.workdir is None:
            raise TopologyError("the topology is not built: use it as a context manager")
        self.topology = topology
        self.port = port
        self.host = host
        self.address = address
        self.socket_path = topology.workdir / f"https-{host}-{port}.sock"
        self.local_port = 0
        self._inner: subprocess.Popen[str] | None = None
        self._outer: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.local_port}"

    def __enter__(self) -> HttpsRelay:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self, timeout: float = 15.0) -> None:
        # The daemon opens its HTTPS listener next to its unix socket: wait until it accepts.
        self.topology.wait_tcp(self.host, self.address, self.port, timeout=timeout)
        self._inner = self.topology.popen(
            self.host,
            [
                sys.executable,
                str(RELAY),
                "--listen-unix",
                str(self.socket_path),
                "--connect-tcp",
                f"{self.address}:{self.port}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        wait_ready(self._inner)
        self._outer = subprocess.Popen(
            [
                sys.executable,
                str(RELAY),
                "--listen-tcp",
                "127.0.0.1:0",
                "--connect-unix",
                str(self.socket_path),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        # Both lines come at once, and readline() may buffer both: no selector (wait_ready)
        # after it. The relay prints them or exits, so these reads end either way.
        assert self._outer.stdout is not None
        lines = [self._outer.stdout.readline().strip() for _ in range(2)]
        if lines[1] != "ready" or not lines[0].startswith("port "):
            raise TopologyError(f"relay.py did not start: {lines!r}")
        self.local_port = int(lines[0].removeprefix("port "))

    def close(self) -> None:
        if self._outer is not None:
            outer, self._outer = self._outer, None
            outer.terminate()
            try:
                outer.wait(timeout=5)
            except subprocess.TimeoutExpired:
                outer.kill()
                outer.wait(timeout=5)
            if outer.stdout is not None:
                outer.stdout.close()
        if self._inner is not None:
            inner, self._inner = self._inner, None
            with contextlib.suppress(KeyError):
                self.topology.stop(inner)


class WebClient(httpx.Client):
    """An HTTPS client of the WUI and the API (self-signed certificate: not verified)."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        kwargs.setdefault("timeout", 15.0)
        super().__init__(base_url=base_url, verify=False, **kwargs)
        self.csrf: str | None = None

    def try_login(self, username: str, password: str) -> httpx.Response:
        """Post the WUI's login form once; the answer as it came (not redirected)."""
        form = {"username": username, "password": password}
        token = csrf_token(self.get("/login").text)
        if token is not None:
            form["csrf_token"] = token
        return self.post("/login", data=form)

    def login(self, username: str, password: str) -> httpx.Response:
        """Log in through the WUI's form; keep the session cookie and the CSRF token."""
        response = self.try_login(username, password)
        if self.cookies.get(SESSION_COOKIE) is None:
            raise AssertionError(
                f"login as {username} failed: {response.status_code} {response.text[:500]}"
            )
        self.csrf = csrf_token(self.get("/", follow_redirects=True).text)
        return response

    def session_cookie(self) -> str:
        value = self.cookies.get(SESSION_COOKIE)
        if value is None:
            raise AssertionError("not logged in")
        return value

    def csrf_headers(self) -> dict[str, str]:
        """The header an API write with the session cookie must carry."""
        if self.csrf is None:
            raise AssertionError("no CSRF token seen on the WUI's pages")
        return {"X-CSRF-Token": self.csrf}
