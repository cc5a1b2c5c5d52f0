"""Pre-authentication (issue 13) through a real `bascule run`, HAProxy and curl.

A service with ``authentication`` answers 401 with the realm to a client without credentials
or with a wrong password, and serves a right one from the real server; the request log line of
every attempt holds no password; a new password (``bascule http-user passwd``) is checked from
the reload on, and the configuration file that holds the hashes is 0600.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from daemon import BasculeDaemon
from netns import Topology
from origins import start_logging_origin
from waiting import wait_until

pytestmark = pytest.mark.integration

ORIGIN = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = open(sys.argv[2], "a", buffering=1)

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path != "/":
            log.write(self.path + "\n")
        body = b"hello from the real server\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer((sys.argv[1], 80), Handler)
print("ready", flush=True)
server.serve_forever()
"""

PASSWORD = "s3cret-Ops-1"
NEW_PASSWORD = "n3w-Ops-secret-2"


def test_basic_auth_refuses_and_accepts_and_never_logs_the_password(
    make_topology: Callable[..., Topology],
) -> None:
    topo = make_topology(real_servers=1)
    rs1 = topo.real_servers[0]
    reached = start_logging_origin(topo, ORIGIN)

    def get(path: str, user: str | None = None) -> tuple[int, dict[str, str], str]:
        argv = ["curl", "-sS", "--max-time", "5", "-D", "-", f"http://{topo.vip()}{path}"]
        if user is not None:
            argv += ["-u", user]
        text = topo.run("client", argv).stdout
        head, _, body = text.replace("\r\n", "\n").partition("\n\n")
        lines = head.splitlines()
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:] if ":" in line)
        }
        return int(lines[0].split()[1]), headers, body

    daemon = BasculeDaemon(topo).start(timeout=60)
    try:
        document = {
            "virtual_services": [
                {
                    "name": "ops",
                    "address": topo.vip(),
                    "port": 80,
                    "check": {"type": "tcp", "interval": 1, "rise": 1},
                    "real_servers": [{"address": rs1.address, "port": 80}],
                    "authentication": {"realm": "Operations", "users": ["ops"]},
                }
            ]
        }
        # the document names a user the store does not hold yet: refused on its field
        refused = daemon.apply(document, check=False)
        assert refused.returncode != 0
        assert "virtual_services[0].authentication.users[0]" in refused.stdout + refused.stderr

        daemon.cli("http-user", "add", "ops", "--password-stdin", stdin=PASSWORD + "\n")
        listed = daemon.cli_json("http-user", "list")
        assert [item["name"] for item in listed["items"]] == ["ops"]
        assert PASSWORD not in str(listed) and "$y$" not in str(listed)
        daemon.apply(document)
        daemon.wait_status("ops", f"{rs1.address}:80", "up", timeout=20)

        # no credentials, a wrong password, an unknown user: 401 with the realm, nothing
        # reaches the real server
        for path, user in (
            ("/none", None),
            ("/wrong", "ops:not-the-password"),
            ("/stranger", f"eve:{PASSWORD}"),
        ):
            status, headers, _ = get(path, user)
            assert status == 401, (path, status)
            assert headers["www-authenticate"] == 'Basic realm="Operations"'
            assert reached(path) == 0

        # the right password: served by the real server
        status, _, body = get("/right", f"ops:{PASSWORD}")
        assert (status, body) == (200, "hello from the real server\n")
        assert reached("/right") == 1

        # the request log has every attempt, and no credentials
        def lines() -> list[str]:
            return [line["line"] for line in daemon.cli_json("logs", "ops")["lines"]]

        wait_until("four request lines", lambda: len(lines()) >= 4, timeout=10)
        encoded = base64.b64encode(f"ops:{PASSWORD}".encode()).decode()
        text = "\n".join(lines())
        assert " 401 " in text and " 200 " in text
        assert PASSWORD not in text and encoded not in text and "Authorization" not in text

        # the hashes live in HAProxy's configuration: readable by root only
        config = daemon.data_dir / "haproxy" / "haproxy.cfg"
        assert config.stat().st_mode & 0o777 == 0o600
        assert "userlist ops_users" in config.read_text()
        assert PASSWORD not in config.read_text()

        # a new password is checked from the reload on; the old one is refused
        daemon.cli("http-user", "passwd", "ops", "--password-stdin", stdin=NEW_PASSWORD + "\n")
        wait_until(
            "the new password is accepted",
            lambda: get("/new", f"ops:{NEW_PASSWORD}")[0] == 200,
            timeout=15,
        )
        assert get("/old", f"ops:{PASSWORD}")[0] == 401
        assert reached("/old") == 0

        # a user a service names cannot be deleted
        deleted = daemon.cli("http-user", "delete", "ops", "--yes", check=False)
        assert deleted.returncode != 0 and "named by the authentication" in deleted.stderr
    finally:
        daemon.stop(data_plane=True)
