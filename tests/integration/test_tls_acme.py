"""ACME end to end against Debian's pebble, an ACME test CA, in a namespace of the topology.

pebble runs in rs3's namespace (its own HTTPS made here, trusted with ``--ca-bundle``), with
short-lived certificates (``certificateValidityPeriod``) and a blocklist. The daemon asks it
for a certificate of the VIP's address (an IP identifier, RFC 8738) with ``bascule cert
acme``; pebble validates over HTTP-01 at http://VIP/.well-known/acme-challenge/..., which
HAProxy answers from its runtime map on the ``redirect_http`` listener: no reload, no real
server. Then: the service serves the issued certificate; the daemon renews it at two thirds
of its lifetime and swaps it in without a reload (the worker stays); the order and account
survive a restart of the daemon; a refused order shows the CA's own words in the CLI and the
status.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from daemon import BasculeDaemon
from netns import Topology, require_root
from tls_material import issue, write

pytestmark = pytest.mark.integration

TLS_PROBE = Path(__file__).resolve().parents[1] / "tools" / "tls_probe.py"
LIFETIME = 24  # seconds: renewed at 16
BLOCKED = "blocked.bascule.test"


@dataclass
class Acme:
    topology: Topology
    daemon: BasculeDaemon
    directory: str
    ca_bundle: Path
    vip: str

    def served(self) -> dict[str, Any]:
        done = self.topology.run(
            "client",
            [sys.executable, str(TLS_PROBE), "handshake", "--connect", f"{self.vip}:443"],
            check=False,
        )
        result: dict[str, Any] = json.loads(done.stdout)
        assert result["ok"], result
        return result

    def request(self, name: str, domain: str, *, check: bool = True) -> Any:
        return self.daemon.cli(
            "cert", "acme", name, "--domain", domain, "--email", "admin@bascule.test",
            "--directory", self.directory, "--ca-bundle", str(self.ca_bundle),
            check=check,
        )  # fmt: skip


def start_pebble(topology: Topology) -> tuple[str, Path]:
    """pebble in rs3's namespace; its directory URL and the CA of its HTTPS certificate."""
    assert topology.workdir is not None
    work = topology.workdir / "pebble"
    work.mkdir()
    host = topology.real_servers[2]
    ca = issue("pebble directory CA", ca=True)
    write(work, "directory-ca", ca)
    write(work, "directory", issue(host.address, issuer=ca, ips=(host.address,)))
    config = {
        "pebble": {
            "listenAddress": f"{host.address}:14000",
            "managementListenAddress": f"{host.address}:15000",
            "certificate": str(work / "directory.pem"),
            "privateKey": str(work / "directory.key"),
            "httpPort": 80,
            "tlsPort": 443,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
            "domainBlocklist": [BLOCKED],
            "certificateValidityPeriod": LIFETIME,
        }
    }
    (work / "pebble.json").write_text(json.dumps(config))
    env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
    with (work / "pebble.log").open("w") as log:  # the child keeps its own descriptor
        topology.popen(
            host, ["pebble", "-config", str(work / "pebble.json")], stdout=log, stderr=log, env=env
        )
    topology.wait_tcp("client", host.address, 14000, timeout=15)
    return f"https://{host.address}:14000/dir", work / "directory-ca.pem"


def https(topology: Topology, certificate: str) -> dict[str, Any]:
    servers = [{"address": rs.address, "port": 80} for rs in topology.real_servers[:2]]
    return {
        "virtual_services": [
            {
                "name": "shop",
                "address": topology.vip(),
                "port": 443,
                "type": "https",
                "tls": {"certificates": [certificate], "redirect_http": True},
                "real_servers": servers,
            }
        ]
    }


@pytest.fixture(scope="module")
def acme(_stale_namespaces_removed: None) -> Iterator[Acme]:
    require_root()
    with Topology(real_servers=3) as topology:
        for host in topology.real_servers[:2]:
            topology.start_real_server(host)
        directory, ca_bundle = start_pebble(topology)
        daemon = BasculeDaemon(topology, env={"BASCULE_ACME_INTERVAL": "1"})
        try:
            daemon.start()
            # a placeholder until the CA's certificate exists; the redirect listener on port
            # 80 of the VIP is where the CA's validation arrives
            daemon.cli("cert", "self-signed", "placeholder", "--ip", topology.vip())
            daemon.apply(https(topology, "placeholder"))
            yield Acme(topology, daemon, directory, ca_bundle, topology.vip())
        finally:
            if daemon.process is not None and daemon.process.poll() is None:
                daemon.terminate()
            daemon.stop_haproxy()
            shutil.rmtree(daemon.data_dir, ignore_errors=True)


def test_issue_serve_and_renew_without_a_reload(acme: Acme) -> None:
    issued = acme.request("le", acme.vip)
    assert "issued le" in issued.stdout, issued.stdout
    shown = acme.daemon.cli_json("cert", "show", "le")
    assert shown["source"] == "acme" and shown["acme"]["state"] == "valid", shown
    assert shown["certificate"]["ip_addresses"] == [acme.vip]
    assert shown["certificate"]["issuer"].startswith("CN=Pebble Intermediate CA")
    acme.daemon.apply(https(acme.topology, "le"))
    first = acme.served()
    # the issued certificate, or (on a slow machine, past two thirds of its short lifetime
    # already) its renewal: what the store holds now
    now = acme.daemon.cli_json("cert", "show", "le")["certificate"]["serial"]
    assert first["serial"] in {shown["certificate"]["serial"], now}
    assert first["issuer"].startswith("CN=Pebble Intermediate CA")
    pids = acme.daemon.worker_pids()
    # renewed at two thirds of the lifetime by the daemon's loop, swapped in at runtime
    renewed = wait_for_new_serial(acme, first["serial"], timeout=LIFETIME * 2)
    assert acme.daemon.worker_pids() == pids
    assert acme.daemon.cli_json("cert", "show", "le")["certificate"]["serial"] == renewed


def test_the_state_survives_a_restart(acme: Acme) -> None:
    before = acme.served()["serial"]
    assert acme.daemon.terminate() == 0
    acme.daemon.start()
    shown = acme.daemon.cli_json("cert", "show", "le")
    assert shown["acme"]["directory"] == acme.directory
    # the restarted daemon keeps renewing with the account and order it stored
    wait_for_new_serial(acme, before, timeout=LIFETIME * 2)


def test_a_refused_order_shows_the_cas_words(acme: Acme) -> None:
    refused = acme.request("blocked", BLOCKED, check=False)
    assert refused.returncode == 1
    assert "rejectedIdentifier" in refused.stderr, refused.stderr
    assert "forbidden by policy" in refused.stderr, refused.stderr
    alerts = acme.daemon.status()["certificates"]
    failed = [a for a in alerts if a["name"] == "blocked"]
    assert failed and failed[0]["level"] == "acme_failed", alerts
    assert "forbidden by policy" in failed[0]["message"]


def wait_for_new_serial(acme: Acme, old: str, *, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        serial = str(acme.served()["serial"])
        if serial != old:
            return serial
        assert time.monotonic() < deadline, f"still {old} after {timeout} s:\n{acme.daemon.log()}"
        time.sleep(0.5)
