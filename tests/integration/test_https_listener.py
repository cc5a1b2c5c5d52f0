"""``bascule run --listen``: the HTTPS management listener of a real daemon, reached across
namespaces.

The daemon runs in ``lb`` listening on 198.18.0.2:8443; the CLI and a login run in ``client``
(198.18.0.10). First start: a self-signed certificate for the listen address is generated and
the admin password is written once to a 0600 file (the daemon's output is not a terminal); a
restart writes nothing and keeps the certificate; an API
token made over the local socket works remotely with ``--ca-cert`` (or ``--insecure``).
"""

from __future__ import annotations

import json
import re
import stat
import sys
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from daemon import BASCULE, BasculeDaemon
from netns import Topology

pytestmark = pytest.mark.integration

PORT = 8443
PASSWORD_LINE = re.compile(r"^admin password: (written to \S+)", re.MULTILINE)

LOGIN = """
import json, ssl, sys, httpx
url, cafile, password = sys.argv[1:4]
with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=cafile)) as client:
    answer = client.post("/api/v1/auth/login", json={"username": "admin", "password": password})
    cookie = answer.headers.get("set-cookie", "")
    print(json.dumps({"status": answer.status_code, "cookie": cookie, "body": answer.json()}))
"""


def test_https_listener_first_start_and_restart(make_topology: Callable[..., Topology]) -> None:
    topology = make_topology(real_servers=1)
    lb = topology.host("lb").address
    url = f"https://{lb}:{PORT}"
    daemon = BasculeDaemon(topology, run_args=("--listen", f"{lb}:{PORT}")).start()
    try:
        topology.wait_tcp("client", lb, PORT, timeout=15)
        cert = daemon.data_dir / "tls" / "cert.pem"
        key = daemon.data_dir / "tls" / "key.pem"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        loaded = x509.load_pem_x509_certificate(cert.read_bytes())
        names = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert lb in {str(a) for a in names.get_values_for_type(x509.IPAddress)}

        # Its stdout is not a terminal: the password is in a 0600 file, never in the log.
        announced = PASSWORD_LINE.findall(daemon.log())
        password_file = daemon.data_dir / "initial-admin-password"
        assert announced == [f"written to {password_file}"], daemon.log()
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        password = password_file.read_text().strip()
        assert password not in daemon.log()

        # The printed password logs in over HTTPS from another host, verified by the cert.
        login = topology.run("client", [sys.executable, "-c", LOGIN, url, str(cert), password])
        answer = json.loads(login.stdout)
        assert answer["status"] == 200, answer
        assert answer["body"]["role"] == "admin"
        assert "Secure" in answer["cookie"] and "HttpOnly" in answer["cookie"]

        # A token made on the local socket drives the daemon remotely.
        created = daemon.cli_json("token", "create", "remote cli", "--role", "operator")
        token = created["secret"]
        remote = [BASCULE, "--url", url, "--token", token]
        status = topology.run("client", [*remote, "--ca-cert", str(cert), "--json", "status"])
        assert json.loads(status.stdout)["virtual_services"] == []
        topology.run("client", [*remote, "--insecure", "status"])
        untrusted = topology.run("client", [*remote, "status"], check=False)
        assert untrusted.returncode == 1
        assert "--ca-cert" in untrusted.stderr
        refused = topology.run("client", [*remote, "--insecure", "user", "list"], check=False)
        assert refused.returncode == 1 and "administer" in refused.stderr

        fingerprint = loaded.fingerprint(hashes.SHA256())
        assert daemon.terminate() == 0
        restarted = BasculeDaemon(
            topology, data_dir=daemon.data_dir, run_args=("--listen", f"{lb}:{PORT}")
        )
        daemon = restarted.start()
        topology.wait_tcp("client", lb, PORT, timeout=15)
        assert len(PASSWORD_LINE.findall(daemon.log())) == 1  # the first start's line only
        again = x509.load_pem_x509_certificate(cert.read_bytes())
        assert again.fingerprint(hashes.SHA256()) == fingerprint
        topology.run("client", [*remote, "--ca-cert", str(cert), "status"])
        listed = daemon.cli_json("token", "list")["items"]
        assert [t["last_used_at"] is not None for t in listed] == [True]
    finally:
        daemon.terminate()


def test_the_listener_stays_on_loopback_by_default(make_topology: Callable[..., Topology]) -> None:
    topology = make_topology(real_servers=1)
    daemon = BasculeDaemon(topology).start()
    try:
        topology.wait_tcp("lb", "127.0.0.1", PORT, timeout=15)
        listening = topology.run("lb", ["ss", "-Htln"]).stdout
        assert f"127.0.0.1:{PORT}" in listening
        assert f"0.0.0.0:{PORT}" not in listening and f"*:{PORT}" not in listening
    finally:
        daemon.terminate()


HOLD = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); print("held", flush=True); time.sleep(120)
"""


def test_a_listen_address_another_program_holds_stops_the_daemon_before_any_change(
    make_topology: Callable[..., Topology],
) -> None:
    topology = make_topology(real_servers=1)
    holder = topology.popen("lb", [sys.executable, "-c", HOLD, str(PORT)], stdout=-1, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    daemon = BasculeDaemon(topology)
    ran = topology.run(
        "lb", [BASCULE, "--data-dir", str(daemon.data_dir), "run"], check=False, timeout=30
    )
    assert ran.returncode == 1
    assert f"cannot listen on 127.0.0.1:{PORT} for HTTPS" in ran.stderr
    assert "--listen" in ran.stderr
    # Refused before the engines: no HAProxy was started, no API socket is left behind.
    assert not (daemon.data_dir / "haproxy" / "haproxy.cfg").exists()
    assert not (daemon.data_dir / "bascule.sock").exists()
    topology.stop(holder)
