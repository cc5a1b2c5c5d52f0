"""HAProxy's peers listener (finding 6), with the real HAProxy 2.6 and a real non-root user.

With persistence, HAProxy listened for its peers on 127.0.0.1:7785, where any local user could
connect and be handed the stick tables (every client address and its server). Now its local
peer listens on a unix socket in HAProxy's run directory (0600 in a 0700 directory): another
user cannot connect, nothing listens on TCP, and HAProxy's own handover still works (a table
entry survives a reload). On the network (the HA pair's hook), the listener speaks TLS and
demands a certificate signed by the pair's CA: a plain or certificate-less client gets
nothing, and the handover across a reload works over TLS too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bascule.engines.haproxy.engine import HaproxyEngine
from bascule.engines.haproxy.peers import PeersListener, PeersTls
from bascule.model import Configuration, parse_document
from bascule.reconcile.actions import ReplaceConfig

pytestmark = pytest.mark.integration

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
if not Path(HAPROXY).exists():
    pytest.skip("needs the haproxy binary (Debian package haproxy)", allow_module_level=True)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="runs a command as another user")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which any user may run
CLIENT = "198.18.0.9"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def document(port: int, servers: int) -> Configuration:
    return parse_document(
        {
            "virtual_services": [
                {
                    "name": "web",
                    "address": "127.0.0.1",
                    "port": port,
                    "check": {"type": "none"},
                    "persistence": {"method": "source_ip"},
                    "real_servers": [
                        {"address": "127.0.0.1", "port": 30000 + n} for n in range(servers)
                    ],
                }
            ]
        }
    )


def write_pki(directory: Path) -> PeersTls:
    """A CA and a node certificate signed by it, valid now (openssl)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "2", "-subj", "/CN=bascule peers CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr",
            "-subj", "/CN=lb1")  # fmt: skip
    openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "node.crt", "-days", "2")  # fmt: skip
    pem = directory / "node.pem"
    pem.write_bytes((directory / "node.crt").read_bytes() + (directory / "node.key").read_bytes())
    pem.chmod(0o600)
    return PeersTls(crt=str(pem), ca_file=str(directory / "ca.pem"))


@pytest.fixture
async def run_dir() -> AsyncIterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="bsc-peers-", dir="/tmp"))  # 0700
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def started(engine: HaproxyEngine, port: int) -> Configuration:
    config = document(port, 2)
    await engine.execute([ReplaceConfig(config=config, reason="start")], None)
    return config


async def entry_survives_a_reload(engine: HaproxyEngine, port: int, config: Configuration) -> None:
    await engine.shell.runtime(f"set table web key {CLIENT} data.server_id 1")
    assert CLIENT in await engine.shell.runtime("show table web")
    pids = await engine.worker_pids()
    bigger = document(port, 3)  # a new server: a reload
    await engine.execute([ReplaceConfig(config=bigger, reason="test")], config)
    assert await engine.worker_pids() != pids
    async with asyncio.timeout(10):
        while CLIENT not in await engine.shell.runtime("show table web"):  # noqa: ASYNC110
            await asyncio.sleep(0.1)


@needs_root
async def test_only_root_reaches_the_local_peer(run_dir: Path) -> None:
    engine = HaproxyEngine(run_dir / "haproxy", binary=HAPROXY, maxconn=1000, nbthread=1)
    port = free_port()
    try:
        config = await started(engine, port)
        peers = engine.paths.peers_socket
        assert peers.is_socket()
        assert peers.stat().st_mode & 0o777 == 0o600
        assert peers.parent.stat().st_mode & 0o777 == 0o700
        # nothing listens on the old TCP port any more
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", 7785), timeout=2),
        ):
            pass
        # another local user cannot connect (nobody, by setpriv: no shell needed)
        attempt = await asyncio.create_subprocess_exec(
            "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
            SYSTEM_PYTHON, "-c",
            "import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            f"s.connect({str(peers)!r})\n"
            "s.sendall(b'HAProxyS 2.1\\nbascule\\nbascule 1 1\\n')\n"
            "sys.stdout.buffer.write(s.recv(65536))\n",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(30):
            stdout, stderr = await attempt.communicate()
        assert attempt.returncode != 0 and stdout == b""
        assert b"PermissionError" in stderr, stderr
        # and HAProxy's own handover still works
        await entry_survives_a_reload(engine, port, config)
    finally:
        await engine.stop(grace=1.0)


async def test_on_the_network_the_peers_speak_tls_with_verified_certificates(
    run_dir: Path,
) -> None:
    tls = write_pki(run_dir)
    peers_port = free_port()
    engine = HaproxyEngine(
        run_dir / "haproxy",
        binary=HAPROXY,
        maxconn=1000,
        nbthread=1,
        peers_listener=PeersListener(address=f"127.0.0.1:{peers_port}", tls=tls),
    )
    port = free_port()
    try:
        config = await started(engine, port)
        await engine.shell.runtime(f"set table web key {CLIENT} data.server_id 1")
        hello = b"HAProxyS 2.1\nbascule\nbascule 1 1\n"
        # a plain client is not spoken to
        with socket.create_connection(("127.0.0.1", peers_port), timeout=5) as plain:
            plain.sendall(hello)
            with contextlib.suppress(ConnectionError, TimeoutError):
                assert CLIENT.encode() not in plain.recv(65536)
        # a TLS client without a certificate of the pair's CA is refused
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with (
            pytest.raises((ssl.SSLError, ConnectionError)),
            socket.create_connection(("127.0.0.1", peers_port), timeout=5) as raw,
            context.wrap_socket(raw) as wrapped,
        ):
            wrapped.sendall(hello)
            assert wrapped.recv(65536) == b""  # or an alert, raised above
            raise ConnectionError("closed without a word")
        await entry_survives_a_reload(engine, port, config)
    finally:
        await engine.stop(grace=1.0)
