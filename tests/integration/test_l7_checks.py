"""Health check types end to end: a real daemon, HAProxy's checks, `bascule status --json`.

One topology and one daemon serve the module: every check type gets a virtual service on its
own port of the VIP with a real server that answers the check as it should (it must show
`up`) and one that misbehaves (wrong banner, wrong status, wrong body, wrong bytes, nothing
listening: it must show `down`). The fixture applies everything at once and waits until
every real server has its expected status (or a deadline passes); each test then reads its
own service from that settled status report.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from daemon import BasculeDaemon
from netns import Topology, require_root

pytestmark = pytest.mark.integration

SETTLE_TIMEOUT = 30.0
TIMING = {"interval": 1, "timeout": 1, "rise": 1, "fall": 1}

# LDAPv3 anonymous simple bind, message id 1: what HAProxy's "option ldap-check" sends
# (src/tcpcheck.c, ldap_req), and a BindResponse to it (RFC 4511 section 4.2.2).
LDAP_BIND_REQUEST = "300c020101600702010304008000"
LDAP_BIND_SUCCESS = "300c02010161070a010004000400"  # resultCode 0 success
LDAP_BIND_REFUSED = "300c02010161070a013104000400"  # resultCode 49 invalidCredentials

PING, PONG, NOPE = b"PING\n".hex(), b"PONG\n".hex(), b"NOPE\n".hex()

# Where the http check's echo body must show every part of the request HAProxy sent. The
# body is realserver.py's /echo JSON; rs2 answers the same request, but its name differs.
HTTP_BODY = (
    r'"server": "rs1".*"method": "POST", "path": "/echo/check".*'
    r'"host": "health\.example".*"x-check": "probe-42".*"body_length": 6'
)


@dataclass(frozen=True)
class Case:
    """A virtual service checked one way and what each of its real servers must show."""

    port: int
    check: dict[str, Any]
    servers: dict[str, str]  # "rsN:port" -> expected status
    service_type: str = "http"


def cases(https: bool) -> dict[str, Case]:
    found = {
        "http": Case(
            7001,
            {
                "type": "http",
                "method": "POST",
                "path": "/echo/check",
                "host": "health.example",
                "headers": {"X-Check": "probe-42"},
                "post_data": "ping=1",
                "expect_status": "200,204",
                "expect_body": HTTP_BODY,
            },
            {"rs1:80": "up", "rs2:80": "down"},
        ),
        "http-status": Case(
            7002,
            {"type": "http", "path": "/health", "expect_status": "200,204"},
            # 302 is in the default list, not in this one
            {"rs1:80": "up", "rs2:7102": "up", "rs3:7102": "down"},
        ),
        "smtp": Case(7004, {"type": "smtp"}, {"rs1:25": "up", "rs2:25": "down"}, "generic"),
        "ftp": Case(7005, {"type": "ftp"}, {"rs1:21": "up", "rs2:21": "down"}, "generic"),
        "pop3": Case(7006, {"type": "pop3"}, {"rs1:110": "up", "rs2:110": "down"}, "generic"),
        "imap": Case(7007, {"type": "imap"}, {"rs1:143": "up", "rs2:143": "down"}, "generic"),
        "binary": Case(
            7008,
            {"type": "binary", "send_hex": PING, "expect_hex": b"PONG".hex()},
            {"rs1:7009": "up", "rs2:7009": "down"},
            "generic",
        ),
        # rs2:7011 has nothing listening
        "tcp": Case(7010, {"type": "tcp"}, {"rs1:80": "up", "rs2:7011": "down"}, "generic"),
        "none": Case(
            7012, {"type": "none"}, {"rs1:80": "unchecked", "rs2:7011": "unchecked"}, "generic"
        ),
        # served on :80 by both, checked on :8099 where only rs1 listens
        "check-port": Case(
            7013,
            {"type": "http", "path": "/health", "port": 8099},
            {"rs1:80": "up", "rs2:80": "down"},
        ),
        "ldap": Case(7014, {"type": "ldap"}, {"rs1:389": "up", "rs2:389": "down"}, "generic"),
    }
    if https:
        found["https"] = Case(
            7003,
            {"type": "https", "path": "/health", "host": "health.example"},
            # rs2:7443 speaks plain HTTP: the TLS handshake fails
            {"rs1:7443": "up", "rs2:7443": "down"},
        )
    return found


def real_server_processes(topology: Topology, cert: tuple[Path, Path] | None) -> None:
    """Start every server the cases name (nothing on :7011 anywhere, nor on rs2:8099)."""
    start = topology.start_real_server
    for host in ("rs1", "rs2"):
        start(host)  # http on :80
    start("rs1", port=8099)
    start("rs2", "--health-status", "204", port=7102)
    start("rs3", "--health-status", "302", port=7102)
    banners = {
        25: ("220 mail.example ESMTP", "554 mail.example no service"),
        21: ("220 ftp.example FTP ready", "421 ftp.example too busy"),
        110: ("+OK pop.example ready", "-ERR pop.example go away"),
        143: ("* OK imap.example ready", "* BYE imap.example shutting down"),
    }
    for port, (good, bad) in banners.items():
        start("rs1", "--mode", "banner", "--banner", good, port=port)
        start("rs2", "--mode", "banner", "--banner", bad, port=port)
    for host, reply in (("rs1", PONG), ("rs2", NOPE)):
        start(host, "--mode", "binary", "--expect-hex", PING, "--reply-hex", reply, port=7009)
    for host, reply in (("rs1", LDAP_BIND_SUCCESS), ("rs2", LDAP_BIND_REFUSED)):
        start(
            host,
            "--mode", "binary", "--expect-hex", LDAP_BIND_REQUEST, "--reply-hex", reply,
            port=389,
        )  # fmt: skip
    if cert is not None:
        start("rs1", "--tls-cert", str(cert[0]), "--tls-key", str(cert[1]), port=7443)
        start("rs2", port=7443)


def self_signed_certificate(directory: Path) -> tuple[Path, Path] | None:
    """A throwaway certificate for health.example, or None when nothing here can make one."""
    cert, key = directory / "check-cert.pem", directory / "check-key.pem"
    try:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            return None
        subprocess.run(
            [
                openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                "-subj", "/CN=health.example", "-keyout", str(key), "-out", str(cert),
            ],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        return cert, key
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "health.example")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


def document(topology: Topology, found: dict[str, Case]) -> dict[str, Any]:
    address = {rs.name: rs.address for rs in topology.real_servers}
    services = []
    for name, case in found.items():
        real_servers = []
        for key in case.servers:
            host, _, port = key.partition(":")
            real_servers.append({"address": address[host], "port": int(port)})
        services.append(
            {
                "name": name,
                "address": topology.vip(),
                "port": case.port,
                "type": case.service_type,
                "check": {**case.check, **TIMING},
                "real_servers": real_servers,
            }
        )
    return {"virtual_services": services}


@dataclass
class Settled:
    """The status report once every real server shows what its case expects (or at the
    deadline), the cases, and why https was left out (None when it was not)."""

    report: dict[str, Any]
    cases: dict[str, Case]
    https_skipped: str | None
    names: dict[str, str]  # "rsN:port" -> the real server's key "198.18.0.1N:port"

    def servers(self, vs: str) -> dict[str, dict[str, Any]]:
        service = next(s for s in self.report["virtual_services"] if s["name"] == vs)
        by_key = {rs["key"]: rs for rs in service["real_servers"]}
        return {short: by_key[self.names[short]] for short in self.cases[vs].servers}

    def service(self, vs: str) -> dict[str, Any]:
        found: dict[str, Any] = next(s for s in self.report["virtual_services"] if s["name"] == vs)
        return found


def settled(report: dict[str, Any], found: dict[str, Case], names: dict[str, str]) -> bool:
    for service in report["virtual_services"]:
        by_key = {rs["key"]: rs for rs in service["real_servers"]}
        for short, wanted in found[service["name"]].servers.items():
            seen = by_key[names[short]]
            if seen["status"] != wanted:
                return False
            # the state a check has actually given, not HAProxy's initial one
            if wanted != "unchecked" and seen["check_result"] in (None, "INI"):
                return False
    return True


@pytest.fixture(scope="module")
def checks(_stale_namespaces_removed: None) -> Iterator[Settled]:
    require_root()
    with Topology(real_servers=3) as topology:
        assert topology.workdir is not None
        cert = self_signed_certificate(topology.workdir)
        found = cases(https=cert is not None)
        real_server_processes(topology, cert)
        names = {
            f"{rs.name}:{port}": f"{rs.address}:{port}"
            for rs in topology.real_servers
            for port in {int(k.partition(":")[2]) for c in found.values() for k in c.servers}
        }
        daemon = BasculeDaemon(topology)
        try:
            daemon.start()
            daemon.apply(document(topology, found))
            deadline = time.monotonic() + SETTLE_TIMEOUT
            report = daemon.status()
            while not settled(report, found, names) and time.monotonic() < deadline:
                time.sleep(0.2)
                report = daemon.status()
            skipped = None if cert else "neither `cryptography` nor `openssl` is available"
            yield Settled(report, found, skipped, names)
        finally:
            stop_daemon(daemon)


def stop_daemon(daemon: BasculeDaemon) -> None:
    try:
        if daemon.process is not None and daemon.process.poll() is None:
            try:
                daemon.terminate()
            except Exception:
                daemon.kill()
    finally:
        daemon.stop_haproxy()
        shutil.rmtree(daemon.data_dir, ignore_errors=True)
        for suffix in (".log", "-doc.yaml"):
            with contextlib.suppress(OSError):
                daemon.data_dir.with_name(daemon.data_dir.name + suffix).unlink()


def assert_checked(
    rs: dict[str, Any], status: str, result: str | set[str], code: int | None = None
) -> None:
    results = {result} if isinstance(result, str) else result
    shown = json.dumps(rs)
    assert rs["status"] == status, shown
    assert rs["check_result"] in results, shown
    assert rs["check_duration_ms"] is not None, shown
    if code is not None:
        assert rs["check_code"] == code, shown


# --------------------------------------------------------------------------- http, https


def test_http_check_sends_method_path_host_header_and_body(checks: Settled) -> None:
    servers = checks.servers("http")
    # rs1's echo shows everything the check sent, so the body regex matches
    assert_checked(servers["rs1:80"], "up", "L7OK", 200)
    # same request, same 200, but the body (its name) does not match
    assert_checked(servers["rs2:80"], "down", "L7RSP")
    assert servers["rs2:80"]["check_detail"] == "HTTP content check did not match"
    assert checks.service("http")["status"] == "degraded"


def test_http_check_honours_the_expected_status_list(checks: Settled) -> None:
    servers = checks.servers("http-status")
    assert_checked(servers["rs1:80"], "up", "L7OK", 200)
    assert_checked(servers["rs2:7102"], "up", "L7OK", 204)
    assert_checked(servers["rs3:7102"], "down", "L7STS", 302)


def test_https_check_speaks_tls(checks: Settled) -> None:
    if checks.https_skipped:
        pytest.skip(checks.https_skipped)
    servers = checks.servers("https")
    assert_checked(servers["rs1:7443"], "up", "L7OK", 200)
    # a plain HTTP server never completes the handshake
    assert_checked(servers["rs2:7443"], "down", {"L6RSP", "L6TOUT"})


def test_check_port_other_than_the_service_port(checks: Settled) -> None:
    servers = checks.servers("check-port")
    assert_checked(servers["rs1:80"], "up", "L7OK", 200)
    # rs2 serves :80 perfectly well, but nothing listens on its :8099
    assert_checked(servers["rs2:80"], "down", "L4CON")


# --------------------------------------------------------------------------- banners, bytes


@pytest.mark.parametrize(
    ("vs", "failure", "code"),
    [
        # HELO answered with a status that is not 2xx: fails at once, with the code
        ("smtp", "L7STS", 554),
        # a banner the anchored expect rule cannot match leaves HAProxy waiting for more
        # until the check times out
        ("ftp", "L7TOUT", None),
        ("pop3", "L7TOUT", None),
        ("imap", "L7TOUT", None),
    ],
)
def test_banner_checks(checks: Settled, vs: str, failure: str, code: int | None) -> None:
    good, bad = checks.servers(vs).values()
    assert_checked(good, "up", "L7OK")
    assert_checked(bad, "down", failure, code)


def test_binary_check_sends_and_expects_hex(checks: Settled) -> None:
    servers = checks.servers("binary")
    assert_checked(servers["rs1:7009"], "up", "L7OK")
    # "NOPE" never contains "PONG": HAProxy waits for more until the timeout
    assert_checked(servers["rs2:7009"], "down", "L7TOUT")


def test_ldap_check_binds(checks: Settled) -> None:
    # realserver.py's binary mode is a minimal LDAP responder: it answers HAProxy's
    # anonymous bind request with a fixed BindResponse
    servers = checks.servers("ldap")
    assert_checked(servers["rs1:389"], "up", "L7OK")
    # HAProxy decodes the BindResponse: resultCode 49 (invalidCredentials)
    assert_checked(servers["rs2:389"], "down", "L7STS", 49)


# --------------------------------------------------------------------------- tcp, none


def test_tcp_check_connects(checks: Settled) -> None:
    servers = checks.servers("tcp")
    assert_checked(servers["rs1:80"], "up", "L4OK")
    assert_checked(servers["rs2:7011"], "down", "L4CON")


def test_no_check_leaves_servers_unchecked(checks: Settled) -> None:
    for rs in checks.servers("none").values():
        assert rs["status"] == "unchecked", rs
        assert rs["check_result"] is None, rs
    assert checks.service("none")["status"] == "unchecked"
