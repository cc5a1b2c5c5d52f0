"""STARTTLS end to end: stunnel4 as Bascule's STARTTLS front, HAProxy's relay scheduling and
checking plain mail real servers, clients with ``openssl s_client -starttls`` and Python.

One topology and one daemon: rs1 and rs2 run an SMTP (aiosmtpd), an IMAP and a POP3 server
(tests/tools/mail_servers.py); the document has a ``type: starttls`` service per protocol on
the VIP. The tests show: each protocol's STARTTLS with the store's certificate, sessions
spread over both real servers by the service's scheduler; a stopped real server marked down
by its health check and avoided; a replaced certificate served after stunnel's SIGHUP; and a
stunnel left running by a killed daemon adopted by the next one (same pid, still serving).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from daemon import BasculeDaemon
from netns import Topology, require_root, wait_ready
from tls_material import issue, write

pytestmark = pytest.mark.integration

TOOLS = Path(__file__).resolve().parents[1] / "tools"
PORTS = {"smtp": 25, "imap": 143, "pop3": 110}
# what each s_client session sends once STARTTLS is done, and what the real server answers
S_CLIENT = {
    "smtp": (
        "EHLO client\nMAIL FROM:<a@example.test>\nRCPT TO:<b@example.test>\nDATA\n"
        "Subject: s\n\nbody\n.\nQUIT\n",
        "250 queued at rs",
    ),
    "imap": ("a1 LOGIN user password\na2 LOGOUT\n", "a1 OK logged in at rs"),
    "pop3": ("USER user\nPASS password\nQUIT\n", "+OK PASS at rs"),
}


@dataclass
class Mail:
    topology: Topology
    daemon: BasculeDaemon
    vip: str
    servers: dict[tuple[str, str], Any]  # (host, protocol) -> its process

    def session(self, protocol: str) -> dict[str, Any]:
        done = self.topology.run(
            "client",
            [
                sys.executable,
                str(TOOLS / "mail_client.py"),
                protocol,
                self.vip,
                str(PORTS[protocol]),
            ],
        )
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def s_client(self, protocol: str) -> str:
        commands, _ = S_CLIENT[protocol]
        done = self.topology.run(
            "client",
            [
                "openssl", "s_client", "-starttls", protocol,
                "-connect", f"{self.vip}:{PORTS[protocol]}",
                "-crlf", "-ign_eof", "-servername", "mail.test",
            ],
            input=commands,
            check=False,
        )  # fmt: skip
        return done.stdout + done.stderr


def start_mail_server(topology: Topology, host: str, protocol: str) -> Any:
    address = topology.host(host).address
    process = topology.popen(
        host,
        [
            sys.executable,
            str(TOOLS / "mail_servers.py"),
            protocol,
            address,
            str(PORTS[protocol]),
            host,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    wait_ready(process, 10.0)
    return process


def document(topology: Topology) -> dict[str, Any]:
    def servers(port: int) -> list[dict[str, Any]]:
        return [{"address": rs.address, "port": port} for rs in topology.real_servers[:2]]

    return {
        "virtual_services": [
            {
                "name": f"mail-{protocol}",
                "address": topology.vip(),
                "port": port,
                "type": "starttls",
                "starttls": protocol,
                "check": {"interval": 1, "rise": 1, "fall": 1},
                "tls": {"certificates": ["mail"]},
                "real_servers": servers(port),
            }
            for protocol, port in PORTS.items()
        ]
    }


def wait_up(daemon: BasculeDaemon, name: str, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        services = {s["name"]: s for s in daemon.status()["virtual_services"]}
        if services[name]["up"] == count:
            return
        assert time.monotonic() < deadline, json.dumps(services[name], indent=1)
        time.sleep(0.2)


@pytest.fixture(scope="module")
def mail(_stale_namespaces_removed: None) -> Iterator[Mail]:
    require_root()
    with Topology(real_servers=2) as topology:
        servers = {
            (host.name, protocol): start_mail_server(topology, host.name, protocol)
            for host in topology.real_servers
            for protocol in PORTS
        }
        daemon = BasculeDaemon(topology)
        try:
            daemon.start()
            daemon.cli("cert", "self-signed", "mail", "--dns", "mail.test")
            daemon.apply(document(topology))
            for protocol in PORTS:
                wait_up(daemon, f"mail-{protocol}", 2)
            yield Mail(topology, daemon, topology.vip(), servers)
        finally:
            if daemon.process is not None and daemon.process.poll() is None:
                daemon.terminate()
            daemon.stop_haproxy()
            shutil.rmtree(daemon.data_dir, ignore_errors=True)


@pytest.mark.parametrize("protocol", list(PORTS))
def test_s_client_starttls_reaches_a_real_server(mail: Mail, protocol: str) -> None:
    output = mail.s_client(protocol)
    assert "CN = mail.test" in output, output
    assert "Protocol  : TLSv1.3" in output or "TLSv1.3" in output, output
    assert S_CLIENT[protocol][1] in output, output


@pytest.mark.parametrize("protocol", list(PORTS))
def test_sessions_are_spread_by_the_scheduler(mail: Mail, protocol: str) -> None:
    seen = set()
    for _ in range(4):
        result = mail.session(protocol)
        assert result["ok"], result
        assert result["version"] == "TLSv1.3"
        seen.add(result["server"])
    assert seen == {"rs1", "rs2"}


def test_a_failed_real_server_is_checked_down_and_avoided(mail: Mail) -> None:
    process = mail.servers[("rs1", "smtp")]
    mail.topology.stop(process)
    key = f"{mail.topology.real_servers[0].address}:25"
    mail.daemon.wait_status("mail-smtp", key, "down")
    assert {mail.session("smtp")["server"] for _ in range(3)} == {"rs2"}
    mail.servers[("rs1", "smtp")] = start_mail_server(mail.topology, "rs1", "smtp")
    mail.daemon.wait_status("mail-smtp", key, "up")


def test_a_replaced_certificate_is_served_after_a_sighup(mail: Mail) -> None:
    assert mail.topology.workdir is not None
    new = issue("mail.test", dns=("mail.test",))
    write(mail.topology.workdir, "mail-new", new)
    pid = mail.daemon.cli_json("status")["engine"]["stunnel"]["pid"]
    replaced = mail.daemon.cli(
        "cert", "replace", "mail",
        "--cert", str(mail.topology.workdir / "mail-new.pem"),
        "--key", str(mail.topology.workdir / "mail-new.key"),
    )  # fmt: skip
    assert "stunnel" in replaced.stdout, replaced.stdout
    for protocol in PORTS:
        assert mail.session(protocol)["serial"] == new.serial
    assert mail.daemon.cli_json("status")["engine"]["stunnel"]["pid"] == pid


def test_a_killed_daemons_stunnel_is_adopted(mail: Mail) -> None:
    pid = mail.daemon.cli_json("status")["engine"]["stunnel"]["pid"]
    mail.daemon.kill()
    assert mail.session("smtp")["ok"]  # the data planes run on without the daemon
    mail.daemon.start()
    assert mail.daemon.cli_json("status")["engine"]["stunnel"]["pid"] == pid
    assert mail.session("imap")["ok"]
