"""``bascule dsr script`` and ``bascule dsr verify`` against a real API server on a socket.

As in test_cli.py, the daemon's own API serves a ConfigService over a SQLite store; its
engines are fakes (one of mode l4, as a DSR service is l4) and the packet verifier is
replaced by one that fails the second real server.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from api_apps import api_app
from typer.testing import CliRunner, Result

from bascule.api.deps import ApiServices
from bascule.cli.main import app
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.dsr.report import DsrReport, RealServerCheck
from bascule.dsr.script import linux_script, windows_script
from bascule.engines.base import FakeEngine
from bascule.model import Mode, VirtualService, parse_document
from bascule.store.revisions import RevisionStore

DOCUMENT: dict[str, Any] = {
    "virtual_services": [
        {
            "name": "dsr-web",
            "address": "198.18.0.100",
            "port": 80,
            "mode": "l4",
            "forwarding": "dsr",
            "real_servers": [
                {"address": "198.18.0.11", "port": 80},
                {"address": "198.18.0.12", "port": 80},
            ],
        },
        {
            "name": "nat-web",
            "address": "198.18.0.101",
            "port": 80,
            "mode": "l4",
            "real_servers": [{"address": "198.18.0.11", "port": 8080}],
        },
    ]
}


class L4FakeEngine(FakeEngine):
    name = "fake-l4"
    mode = Mode.l4


class Verifier:
    def __init__(self) -> None:
        self.failing: set[str] = set()

    async def verify(self, vs: VirtualService) -> DsrReport:
        checks = tuple(
            RealServerCheck(
                key=rs.key,
                address=rs.address,
                mac=f"02:00:00:00:00:{index:02x}",
                arp_ok=rs.address not in self.failing,
                arp_detail="answers ARP for the VIP"
                if rs.address in self.failing
                else "does not answer ARP for the VIP",
                connect_ok=True,
                connect_detail="SYN-ACK from 198.18.0.100:80",
            )
            for index, rs in enumerate(vs.real_servers)
        )
        return DsrReport(service=vs.name, vip=vs.address, interface="eth0", real_servers=checks)


async def _system() -> dict[str, Any]:
    return {}


@pytest.fixture
def served(make_api_services: Callable[..., ApiServices]) -> Iterator[tuple[Path, Verifier]]:
    data_dir = Path(tempfile.mkdtemp(dir="/tmp", prefix="bascule-dsr-"))
    store = RevisionStore(data_dir / "bascule.db")
    service = ConfigService(
        store=store, engines=[FakeEngine(), L4FakeEngine()], vips=NullVipManager()
    )
    verifier = Verifier()
    service.dsr_verifier = verifier
    server = uvicorn.Server(
        uvicorn.Config(
            api_app(make_api_services(service, _system)),
            uds=str(data_dir / "bascule.sock"),
            log_level="warning",
            lifespan="off",
            ws="none",
        )
    )
    thread = threading.Thread(target=server.run, name="api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test API server did not start")
        time.sleep(0.01)
    try:
        (data_dir / "doc.json").write_text(json.dumps(DOCUMENT))
        assert run(data_dir, "apply", "-f", str(data_dir / "doc.json")).exit_code == 0
        yield data_dir, verifier
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def run(data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(
        app, ["--data-dir", str(data_dir), *args], env={"COLUMNS": "200", "NO_COLOR": "1"}
    )


def dsr_service() -> VirtualService:
    return parse_document(DOCUMENT).virtual_services[0]


def test_script_prints_the_commands(served: tuple[Path, Verifier]) -> None:
    data_dir, _ = served

    linux = run(data_dir, "dsr", "script", "dsr-web")
    windows = run(data_dir, "dsr", "script", "dsr-web", "--os", "windows")

    assert (linux.exit_code, linux.stdout) == (0, linux_script(dsr_service()))
    assert (windows.exit_code, windows.stdout) == (0, windows_script(dsr_service()))


def test_script_of_a_nat_service_is_an_error(served: tuple[Path, Verifier]) -> None:
    data_dir, _ = served

    result = run(data_dir, "dsr", "script", "nat-web")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: virtual service 'nat-web' is mode l4, forwarding nat")


def test_verify_prints_a_table_and_exits_1_on_a_failed_check(
    served: tuple[Path, Verifier],
) -> None:
    data_dir, verifier = served

    passed = run(data_dir, "dsr", "verify", "dsr-web")
    verifier.failing.add("198.18.0.12")
    failed = run(data_dir, "dsr", "verify", "dsr-web")
    as_json = run(data_dir, "--json", "dsr", "verify", "dsr-web")

    assert passed.exit_code == 0, passed.stdout
    assert "198.18.0.11:80" in passed.stdout
    assert passed.stdout.rstrip().endswith("all checks passed")
    assert failed.exit_code == 1
    row = next(line for line in failed.stdout.splitlines() if "198.18.0.12:80" in line)
    assert "FAIL" in row and "answers ARP for the VIP" in row
    assert failed.stdout.rstrip().endswith("some checks failed")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["ok"] is False
