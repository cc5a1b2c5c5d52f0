"""SSL offload end to end: a real daemon, HAProxy terminating TLS, real clients in namespaces.

One topology and one daemon serve the module: the certificates are imported with
``bascule cert ...``, one document holds a service per case (ports of one VIP), and each test
speaks to its service with curl, ``openssl s_client`` or Python's ssl (tests/tools/
tls_probe.py) from the client namespace:

- SNI picks the right one of three certificates, and the first for an unknown name or none;
- TLS 1.1 is refused with ``min_version: tls1.2``, TLS 1.0 accepted by ``cipher_set: old``;
- each cipher set accepts exactly Mozilla's ciphers (``CIPHER_SETS``), each tried alone;
- h2 is negotiated with ``http2: true`` only; HSTS is sent; ``redirect_http`` answers 301 with
  the same host and path; the real servers see X-Forwarded-Proto and X-Forwarded-Port;
- client certificates required or optional, from a real CA: refused without, the subject
  reaches the real server, and a client's forged header does not;
- re-encryption with ``verify_server: required``: the real server whose certificate another CA
  issued is marked down by its TLS health check, with HAProxy's reason;
- every persistence method that reads HTTP still keeps a client on one server over TLS.
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
from netns import Topology, require_root
from tls_material import Material, issue, write

from bascule.model.tls import CIPHER_SETS, CipherSet

pytestmark = pytest.mark.integration

TLS_PROBE = Path(__file__).resolve().parents[1] / "tools" / "tls_probe.py"
CHECK = {"type": "http", "path": "/health", "interval": 1, "rise": 1, "fall": 1}
BOTH_KEYS = ["shop", "shop-rsa"]  # one name, ECDSA and RSA: every cipher can be negotiated

#: the ports of the VIP, by service
PORTS = {
    "shop": 443,
    "plain": 8443,
    "mtls": 8444,
    "mtls-optional": 8445,
    "reencrypt": 8446,
    "modern": 9441,
    "intermediate": 9442,
    "old": 9443,
    "fips": 9444,
}

#: persistence methods that read HTTP, each with how its n-th client makes itself known
PERSISTENCE: dict[str, tuple[dict[str, Any], list[str], str]] = {
    "active-cookie": ({"method": "active_cookie"}, ["--cookies"], "/echo"),
    "server-cookie": (
        {"method": "server_cookie", "cookie": "APP"},
        ["--cookies"],
        "/set-cookie?name=APP",
    ),
    "super-http": ({"method": "super_http"}, ["--header", "User-Agent: ua/{n}"], "/echo"),
    "all-cookies": ({"method": "hash_all_cookies"}, ["--header", "Cookie: a={n}"], "/echo"),
    "url-hash": ({"method": "url_hash"}, [], "/echo/page{n}"),
    "host-header": ({"method": "host_header"}, ["--header", "Host: h{n}.test"], "/echo"),
    "query-item": ({"method": "query_item", "query_item": "sid"}, [], "/echo?sid={n}"),
    "selected-header": (
        {"method": "selected_header", "header": "X-Tenant"},
        ["--header", "X-Tenant: t{n}"],
        "/echo",
    ),
}
PERSISTENCE_PORT = 8450


@dataclass
class Site:
    topology: Topology
    daemon: BasculeDaemon
    material: Material
    vip: str

    def probe(self, *args: str) -> dict[str, Any]:
        done = self.topology.run(
            "client", [sys.executable, str(TLS_PROBE), *args], check=False, timeout=120
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def handshake(self, port: int, *args: str) -> dict[str, Any]:
        return self.probe("handshake", "--connect", f"{self.vip}:{port}", *args)

    def curl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.topology.run("client", ["curl", "-sS", "--max-time", "10", *args], check=False)

    def echo(self, port: int, host: str, *args: str) -> dict[str, Any]:
        """GET /echo over HTTPS: what the real server saw (its JSON)."""
        url = f"https://{host}:{port}/echo"
        done = self.curl("-k", "--resolve", f"{host}:{port}:{self.vip}", url, *args)
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result


def https(name: str, certificates: list[str], **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "https",
        "check": CHECK,
        "tls": {"certificates": certificates, **fields.pop("tls", {})},
        **fields,
    }


def document(topology: Topology) -> dict[str, Any]:
    vip = topology.vip()
    servers = [{"address": rs.address, "port": 80} for rs in topology.real_servers]
    rs1, rs2 = topology.real_servers[:2]
    services = [
        https(
            "shop",
            ["shop", "api", "www", "shop-rsa"],
            tls={"http2": True, "hsts": 600, "redirect_http": True},
        ),
        https("plain", ["shop"]),
        https("mtls", ["shop"], tls={"client_certificate": "required", "client_ca": "corp"}),
        https(
            "mtls-optional",
            ["shop"],
            tls={"client_certificate": "optional", "client_ca": "corp"},
        ),
        https(
            "reencrypt",
            ["shop"],
            tls={
                "reencrypt": True,
                "verify_server": "required",
                "server_ca": "backend",
                "server_sni": "app.test",
            },
            real_servers=[
                {"address": rs1.address, "port": 8443},
                {"address": rs2.address, "port": 8443},
            ],
        ),
        *(
            https(name, BOTH_KEYS, tls={"cipher_set": name})
            for name in ("modern", "intermediate", "old", "fips")
        ),
        *(
            https(name, ["shop"], scheduler="round_robin", persistence={"timeout": 600, **how})
            for name, (how, _args, _path) in PERSISTENCE.items()
        ),
    ]
    ports = {**PORTS, **{n: PERSISTENCE_PORT + i for i, n in enumerate(PERSISTENCE)}}
    for service in services:
        service.setdefault("real_servers", servers)
        service["address"] = vip
        service["port"] = ports[service["name"]]
    return {"virtual_services": services}


def import_certificates(daemon: BasculeDaemon, material: Material) -> None:
    for name in ("shop", "shop-rsa", "api", "www"):
        daemon.cli(
            "cert", "add", name, "--cert", str(material.pem(name)), "--key", str(material.key(name))
        )
    for name in ("corp", "backend"):
        daemon.cli("cert", "ca", "add", name, "--file", str(material.pem(name)))


def start_real_servers(topology: Topology, material: Material) -> None:
    topology.start_real_servers()
    rs1, rs2 = topology.real_servers[:2]
    for host, name in ((rs1, "app"), (rs2, "rogue-app")):
        topology.start_real_server(
            host,
            "--tls-cert",
            str(material.pem(name)),
            "--tls-key",
            str(material.key(name)),
            port=8443,
        )


def wait_up(daemon: BasculeDaemon, wanted: dict[str, int], timeout: float = 20.0) -> None:
    """Wait until each named service has that many real servers up (checks have run)."""
    deadline = time.monotonic() + timeout
    while True:
        services = {s["name"]: s for s in daemon.status()["virtual_services"]}
        if all(services[name]["up"] == count for name, count in wanted.items()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(json.dumps({n: services[n] for n in wanted}, indent=1))
        time.sleep(0.2)


@pytest.fixture(scope="module")
def site(_stale_namespaces_removed: None) -> Iterator[Site]:
    require_root()
    with Topology(real_servers=3) as topology:
        assert topology.workdir is not None
        material = Material.make(topology.workdir / "pki")
        start_real_servers(topology, material)
        daemon = BasculeDaemon(topology)
        try:
            daemon.start()
            import_certificates(daemon, material)
            daemon.apply(document(topology))
            wait_up(daemon, {"shop": 3, "reencrypt": 1})
            yield Site(topology=topology, daemon=daemon, material=material, vip=topology.vip())
        finally:
            if daemon.process is not None and daemon.process.poll() is None:
                daemon.terminate()
            daemon.stop_haproxy()
            shutil.rmtree(daemon.data_dir, ignore_errors=True)


# --------------------------------------------------------------------------- certificates


def test_sni_picks_the_certificate_and_the_first_is_the_default(site: Site) -> None:
    port = PORTS["shop"]
    for sni, name in (("shop.test", "shop"), ("api.test", "api"), ("www.test", "www")):
        answer = site.handshake(port, "--sni", sni)
        assert answer["ok"], answer
        assert answer["serial"] == site.material.serial(name), (sni, answer)
    for sni in ("unknown.test", ""):
        answer = site.handshake(port, *(["--sni", sni] if sni else []))
        assert answer["serial"] == site.material.serial("shop"), answer


def test_versions_below_the_minimum_are_refused(site: Site) -> None:
    refused = site.handshake(PORTS["shop"], "--sni", "shop.test", "--version", "tls1.1")
    assert not refused["ok"], refused
    for version in ("tls1.2", "tls1.3"):
        accepted = site.handshake(PORTS["shop"], "--sni", "shop.test", "--version", version)
        assert accepted["ok"] and accepted["version"] == version.replace("tls", "TLSv"), accepted
    old = site.handshake(PORTS["old"], "--sni", "shop.test", "--version", "tls1.0")
    assert old["ok"] and old["version"] == "TLSv1", old
    modern = site.handshake(PORTS["modern"], "--sni", "shop.test", "--version", "tls1.2")
    assert not modern["ok"], modern


@pytest.mark.parametrize("cipher_set", list(CipherSet))
def test_each_cipher_set_accepts_exactly_its_ciphers(site: Site, cipher_set: CipherSet) -> None:
    answer = site.probe(
        "ciphers", "--connect", f"{site.vip}:{PORTS[cipher_set.value]}", "--sni", "shop.test"
    )
    profile = CIPHER_SETS[cipher_set]
    offered = set(answer["offered12"])
    missing_here = set(profile.ciphers) - offered  # what this client's OpenSSL cannot speak
    assert set(answer["tls12"]) == set(profile.ciphers) - missing_here, answer
    assert len(missing_here) <= 1, missing_here  # (3DES may be left out of a build)
    assert set(answer["tls13"]) == set(profile.ciphersuites), answer


# --------------------------------------------------------------------------- HTTP over TLS


def test_h2_only_where_http2_is_on(site: Site) -> None:
    def version(port: int) -> str:
        done = site.curl(
            "-k", "--http2", "-o", "/dev/null", "-w", "%{http_version}",
            "--resolve", f"shop.test:{port}:{site.vip}", f"https://shop.test:{port}/",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert version(PORTS["shop"]) == "2"
    assert version(PORTS["plain"]) == "1.1"
    alpn = site.handshake(PORTS["shop"], "--sni", "shop.test", "--alpn", "h2,http/1.1")
    assert alpn["alpn"] == "h2"


def test_hsts_and_the_forwarded_headers(site: Site) -> None:
    headers = site.curl(
        "-k", "-D", "-", "-o", "/dev/null", "--resolve", f"shop.test:443:{site.vip}",
        "https://shop.test/",
    ).stdout.lower()  # fmt: skip
    assert "strict-transport-security: max-age=600" in headers
    plain = site.curl(
        "-k", "-D", "-", "-o", "/dev/null", "--resolve", f"shop.test:8443:{site.vip}",
        "https://shop.test:8443/",
    ).stdout.lower()  # fmt: skip
    assert "strict-transport-security" not in plain
    seen = site.echo(PORTS["plain"], "shop.test")["headers"]
    seen = {k.lower(): v for k, v in seen.items()}
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-port"] == "8443"
    assert "x-forwarded-for" in seen


def test_redirect_http_keeps_host_and_path(site: Site) -> None:
    done = site.curl(
        "-D", "-", "-o", "/dev/null", "--resolve", f"shop.test:80:{site.vip}",
        "http://shop.test/some/page?x=1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.lower().splitlines()
    assert lines[0].startswith("http/1.1 301"), done.stdout
    assert "location: https://shop.test/some/page?x=1" in [line.strip() for line in lines]


# --------------------------------------------------------------------------- client certificates


def test_client_certificate_required(site: Site) -> None:
    port = PORTS["mtls"]
    without = site.handshake(port, "--sni", "shop.test", "--request", "/echo")
    assert not without["ok"] or "HTTP/1.1 200" not in without.get("response", ""), without
    stranger = site.curl(
        "-k", "--cert", str(site.material.pem("stranger")), "--key",
        str(site.material.key("stranger")), "--resolve", f"shop.test:{port}:{site.vip}",
        f"https://shop.test:{port}/echo",
    )  # fmt: skip
    assert stranger.returncode != 0, stranger.stdout
    seen = site.echo(
        port,
        "shop.test",
        "--cert", str(site.material.pem("alice")), "--key", str(site.material.key("alice")),
        "-H", "X-SSL-Client-DN: CN=mallory",
    )["headers"]  # fmt: skip
    seen = {k.lower(): v for k, v in seen.items()}
    assert seen["x-ssl-client-dn"] == "CN=alice"
    assert seen["x-ssl-client-issuer-dn"] == "CN=Corp Users CA"
    assert seen["x-ssl-client-verify"] == "SUCCESS"
    assert len(seen["x-ssl-client-cert"]) > 100  # base64 DER


def test_client_certificate_optional(site: Site) -> None:
    port = PORTS["mtls-optional"]
    anonymous = {
        k.lower(): v
        for k, v in site.echo(port, "shop.test", "-H", "X-SSL-Client-DN: CN=x")["headers"].items()
    }
    assert anonymous["x-ssl-client-verify"] == "NONE"
    assert "x-ssl-client-dn" not in anonymous
    known = site.echo(
        port, "shop.test", "--cert", str(site.material.pem("alice")),
        "--key", str(site.material.key("alice")),
    )["headers"]  # fmt: skip
    assert {k.lower(): v for k, v in known.items()}["x-ssl-client-dn"] == "CN=alice"


# --------------------------------------------------------------------------- re-encryption


def test_reencryption_verifies_the_real_servers(site: Site) -> None:
    service = next(s for s in site.daemon.status()["virtual_services"] if s["name"] == "reencrypt")
    by_address = {rs["address"]: rs for rs in service["real_servers"]}
    good = by_address[site.topology.real_servers[0].address]
    rogue = by_address[site.topology.real_servers[1].address]
    assert good["status"] == "up", good
    assert rogue["status"] == "down", rogue
    assert rogue["check_result"] == "L6RSP" or "certificate" in (rogue["check_detail"] or ""), rogue
    names = {site.echo(PORTS["reencrypt"], "shop.test")["server"] for _ in range(4)}
    assert names == {"rs1"}


# --------------------------------------------------------------------------- persistence


@pytest.mark.parametrize("name", list(PERSISTENCE))
def test_persistence_that_reads_http_works_over_tls(site: Site, name: str) -> None:
    _how, extra, path = PERSISTENCE[name]
    port = PERSISTENCE_PORT + list(PERSISTENCE).index(name)
    chosen = []
    for n in range(4):
        args = [a.replace("{n}", str(n)) for a in extra]
        result = site.topology.run_client(
            "--url", f"https://{site.vip}:{port}{path.replace('{n}', str(n))}",
            "--insecure", "--keepalive", "--requests", "5", *args,
        )  # fmt: skip
        assert result["failures"] == 0, result["errors"]
        assert len(result["counts"]) == 1, (n, result["counts"])
        chosen.append(next(iter(result["counts"])))
    assert chosen  # each client kept on one server


# --------------------------------------------------------------------------- runtime swap


def test_replacing_a_certificate_in_use_needs_no_reload(site: Site) -> None:
    """``bascule cert replace`` under wrk over https: no failed request, the same worker, and
    new handshakes get the new serial (the file is written first, then set/commit ssl cert)."""
    daemon, material = site.daemon, site.material
    pids = daemon.worker_pids()
    new = issue("shop.test", dns=("shop.test",))
    write(material.directory, "shop-new", new)
    wrk = site.topology.popen(
        "client",
        [
            "wrk", "-t2", "-c16", "-d6s", "--latency", "-H", "Connection: close",
            f"https://{site.vip}/",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    served_under_load(daemon, "shop", at_least=200)  # the swap happens in the middle of it
    replaced = daemon.cli(
        "cert", "replace", "shop",
        "--cert", str(material.pem("shop-new")), "--key", str(material.key("shop-new")),
    )  # fmt: skip
    assert "served now by haproxy (no reload)" in replaced.stdout, replaced.stdout
    output, _ = wrk.communicate(timeout=30)
    assert wrk.returncode == 0, output
    assert "Socket errors" not in output and "Non-2xx" not in output, output
    requests = int(output.split(" requests in ")[0].split()[-1])
    assert requests > 100, output
    assert daemon.worker_pids() == pids
    answer = site.handshake(PORTS["shop"], "--sni", "shop.test")
    assert answer["serial"] == new.serial, answer
    # every service that names it serves it (one file, one transaction)
    assert site.handshake(PORTS["plain"], "--sni", "shop.test")["serial"] == new.serial


def served_under_load(daemon: BasculeDaemon, name: str, *, at_least: int) -> None:
    """Wait (bounded) until ``name`` took ``at_least`` more connections than it had."""

    def total() -> int:
        services = {s["name"]: s for s in daemon.status()["virtual_services"]}
        return int(services[name]["total_connections"])

    start = total()
    deadline = time.monotonic() + 10
    while total() < start + at_least:
        assert time.monotonic() < deadline, "no load reached the service"
        time.sleep(0.1)
