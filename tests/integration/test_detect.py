"""type: auto and ``bascule detect`` against real servers of each kind, in network namespaces.

One topology for the module: rs1 serves HTTP (80), HTTPS (443) and SMTP/FTP/POP3/IMAP banners;
rs2 runs an RDP-style responder (3389) and a silent TCP server (9000); nothing listens on
rs3:80; 198.18.0.70 is black-holed from the load balancer (a permanent neighbour entry to an
absent MAC), so connecting to it hangs until the probe's own timeout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from daemon import BASCULE, BasculeDaemon
from netns import Topology, require_root, wait_ready

pytestmark = pytest.mark.integration

RS1, RS2, RS3 = "198.18.0.11", "198.18.0.12", "198.18.0.13"
BLACK_HOLE = "198.18.0.70"

# An RDP-style server: answers an X.224 Connection Request (TPKT, code 0xE) with a Connection
# Confirm (code 0xD) carrying RDP_NEG_RSP (MS-RDPBCGR 2.2.1.2), and closes on anything else.
# "silent" accepts connections and never says a word.
RESPONDER = r"""
import socket, sys, threading
mode, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
CONFIRM = bytes.fromhex("030000130ed000001234000209080001000000")
held = []
def rdp(conn):
    with conn:
        conn.settimeout(5)
        try:
            data = conn.recv(256)
            if len(data) >= 6 and data[0] == 3 and data[5] & 0xF0 == 0xE0:
                conn.sendall(CONFIRM)
                conn.recv(256)
        except OSError:
            pass
listener = socket.create_server((address, port))
print("ready", flush=True)
while True:
    conn, _ = listener.accept()
    if mode == "silent":
        held.append(conn)
    else:
        threading.Thread(target=rdp, args=(conn,), daemon=True).start()
"""

BANNERS = {
    25: "220 smtp.example ESMTP Postfix",
    21: "220 (vsFTPd 3.0.3)",
    110: "+OK Dovecot ready.",
    143: "* OK [CAPABILITY IMAP4rev1] Dovecot ready.",
}


def _self_signed(topology: Topology) -> tuple[str, str]:
    assert topology.workdir is not None
    cert, key = topology.workdir / "cert.pem", topology.workdir / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", "/CN=rs1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return str(cert), str(key)


def _responder(topology: Topology, host: str, mode: str, address: str, port: int) -> None:
    proc = topology.popen(
        host,
        [sys.executable, "-c", RESPONDER, mode, address, str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    wait_ready(proc)


@pytest.fixture(scope="module")
def lab(_stale_namespaces_removed: None) -> Iterator[Topology]:
    require_root()
    with Topology(real_servers=3) as topology:
        cert, key = _self_signed(topology)
        topology.start_real_server("rs1", port=80)
        topology.start_real_server("rs1", "--tls-cert", cert, "--tls-key", key, port=443)
        for port, banner in BANNERS.items():
            topology.start_real_server("rs1", "--mode", "banner", "--banner", banner, port=port)
        _responder(topology, "rs2", "rdp", RS2, 3389)
        _responder(topology, "rs2", "silent", RS2, 9000)
        # frames for BLACK_HOLE go to a MAC nobody has: a SYN is never answered
        topology.run(
            "lb",
            ["ip", "neigh", "replace", BLACK_HOLE, "lladdr", "02:00:00:00:00:70",
             "nud", "permanent", "dev", topology.lb.interface],
        )  # fmt: skip
        yield topology


def detect(topology: Topology, *targets: str) -> tuple[dict[str, Any], float]:
    """``bascule --json detect`` run in the load balancer's namespace, and how long it took."""
    started = time.monotonic()
    result = topology.run("lb", [BASCULE, "--json", "detect", *targets], timeout=30)
    return json.loads(result.stdout), time.monotonic() - started


@pytest.mark.parametrize(
    ("target", "kind", "check", "evidence"),
    [
        (f"{RS1}:80", "http", "http", f'detected: http — "HTTP/1.1 200" from {RS1}:80'),
        (
            f"{RS1}:443",
            "generic",
            "tcp",
            "detected: generic (TLS passthrough; ssl_session_id persistence available) — "
            f'"TLS ServerHello" from {RS1}:443',
        ),
        (
            f"{RS1}:25",
            "generic",
            "smtp",
            f'detected: generic with an smtp check — "{BANNERS[25]}" from {RS1}:25',
        ),
        (
            f"{RS1}:21",
            "generic",
            "ftp",
            f'detected: generic with an ftp check — "{BANNERS[21]}" from {RS1}:21',
        ),
        (
            f"{RS1}:110",
            "generic",
            "pop3",
            f'detected: generic with a pop3 check — "{BANNERS[110]}" from {RS1}:110',
        ),
        (
            f"{RS1}:143",
            "generic",
            "imap",
            f'detected: generic with an imap check — "{BANNERS[143]}" from {RS1}:143',
        ),
        (
            f"{RS2}:3389",
            "remote_terminal",
            "rdp",
            f'detected: remote_terminal — "X.224 Connection Confirm" from {RS2}:3389',
        ),
        (
            f"{RS2}:9000",
            "generic",
            "tcp",
            f"detected: generic with a tcp check — {RS2}:9000 accepted connections but "
            "answered nothing recognisable",
        ),
        (
            f"{RS3}:80",
            "http",
            "http",
            f"detected: http — well-known port 80 (no real server answered: {RS3}:80 "
            "refused the connection)",
        ),
    ],
    ids=["http", "tls", "smtp", "ftp", "pop3", "imap", "rdp", "silent", "nobody"],
)
def test_bascule_detect_recognises_each_kind(
    lab: Topology, target: str, kind: str, check: str, evidence: str
) -> None:
    answer, _ = detect(lab, target)
    assert (answer["type"], answer["check"], answer["evidence"]) == (kind, check, evidence)


def test_a_black_holed_server_costs_the_connect_timeout_only(lab: Topology) -> None:
    answer, elapsed = detect(lab, f"{BLACK_HOLE}:8080")
    assert answer["evidence"] == (
        "detected: http — well-known port 8080 (no real server answered: "
        f"{BLACK_HOLE}:8080 did not accept a connection within 0.5 s)"
    )
    assert elapsed < 10  # the kernel alone would retry the SYN for about two minutes


def auto(name: str, port: int, *servers: tuple[str, int], **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "address": "198.18.0.100",
        "port": port,
        "type": "auto",
        "real_servers": [{"address": address, "port": rs_port} for address, rs_port in servers],
        **fields,
    }


def test_type_auto_through_the_daemon(lab: Topology) -> None:
    daemon = BasculeDaemon(lab).start()
    try:
        web = auto("web", 80, (RS1, 80))
        started = time.monotonic()
        result = daemon.apply({"virtual_services": [web]})
        assert time.monotonic() - started < 20
        assert f'web: detected: http — "HTTP/1.1 200" from {RS1}:80' in result.stdout
        stored = daemon.cli_json("export")["document"]["virtual_services"][0]
        assert (stored["type"], stored["check"]["type"]) == ("http", "http")
        lab.wait_tcp("client", "198.18.0.100", 80)
        traffic = lab.run_client("--url", "http://198.18.0.100/", "--requests", "6")
        assert traffic["failures"] == 0, traffic["errors"]

        # several services at once, each probed concurrently; a black-holed one included.
        # "many": the first conclusive answer wins (rs3 refuses, the black hole is silent)
        document = {
            "virtual_services": [
                web,
                auto("many", 8081, (RS3, 80), (BLACK_HOLE, 80), (RS1, 80)),
                auto("mail", 25, (RS1, 25)),
                auto("tls", 443, (RS1, 443), check={"type": "tcp", "interval": 5}),
                auto("rdp", 3389, (RS2, 3389)),
                auto("quiet", 9000, (RS2, 9000)),
                auto("hole", 8080, (BLACK_HOLE, 8080)),
            ]
        }
        started = time.monotonic()
        result = daemon.apply(document)
        elapsed = time.monotonic() - started
        out = result.stdout
        assert f'many: detected: http — "HTTP/1.1 200" from {RS1}:80' in out
        assert f'mail: detected: generic with an smtp check — "{BANNERS[25]}"' in out
        assert "tls: detected: generic (TLS passthrough; ssl_session_id persistence " in out
        assert f'rdp: detected: remote_terminal — "X.224 Connection Confirm" from {RS2}' in out
        assert f"quiet: detected: generic with a tcp check — {RS2}:9000 accepted" in out
        assert "hole: detected: http — well-known port 8080 (no real server answered: " in out
        assert elapsed < 20, out  # probes are bounded: about 2 s for all of them together
        stored = {
            vs["name"]: (vs["type"], vs["check"]["type"])
            for vs in daemon.cli_json("export")["document"]["virtual_services"]
        }
        rdp_type, rdp_check = stored.pop("rdp")
        assert stored == {
            "web": ("http", "http"),
            "many": ("http", "http"),
            "mail": ("generic", "smtp"),
            "tls": ("generic", "tcp"),  # the user's own check is kept
            "quiet": ("generic", "tcp"),
            "hole": ("http", "http"),
        }
        # remote_terminal where this release runs it, generic (with a note) where not yet;
        # rdp checks are not run by HAProxy: the note says which check replaced it
        assert rdp_type in {"remote_terminal", "generic"}
        assert rdp_check in {"rdp", "tcp"}
        if (rdp_type, rdp_check) != ("remote_terminal", "rdp"):
            assert "rdp: note: " in out
        assert daemon.status()["apply_ok"] is True
    finally:
        daemon.terminate()
