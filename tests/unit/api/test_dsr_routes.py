"""/virtual-services/{name}/dsr: the script and verify routes over the service layer.

The FakeEngine runs l7 services only; a DSR service is l4, so these tests give the service
layer a second fake engine of mode l4, and a fake verifier in place of the packet one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_apps import api_app

from bascule.api import ApiServices
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.dsr.report import DsrReport, RealServerCheck, Responder
from bascule.dsr.script import linux_script, windows_script
from bascule.dsr.target import TargetOs
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
        {
            "name": "proxy",
            "address": "198.18.0.102",
            "port": 80,
            "real_servers": [{"address": "198.18.0.11", "port": 8080}],
        },
    ]
}


class L4FakeEngine(FakeEngine):
    name = "fake-l4"
    mode = Mode.l4


class FakeVerifier:
    """Answers a fixed verdict: the first real server passes, the second answers ARP."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def verify(self, vs: VirtualService) -> DsrReport:
        self.asked.append(vs.name)
        good, bad = vs.real_servers
        return DsrReport(
            service=vs.name,
            vip=vs.address,
            interface="eth0",
            real_servers=(
                RealServerCheck(
                    key=good.key,
                    address=good.address,
                    mac="02:00:00:00:00:11",
                    arp_ok=True,
                    arp_detail="does not answer ARP for the VIP 198.18.0.100",
                    connect_ok=True,
                    connect_detail="SYN-ACK from 198.18.0.100:80",
                ),
                RealServerCheck(
                    key=bad.key,
                    address=bad.address,
                    mac="02:00:00:00:00:12",
                    arp_ok=False,
                    arp_detail="answers ARP for the VIP 198.18.0.100 (as 02:00:00:00:00:12)",
                    connect_ok=True,
                    connect_detail="SYN-ACK from 198.18.0.100:80",
                ),
            ),
            others=(Responder(mac="02:00:00:00:00:99", addresses=("198.18.0.99",)),),
        )


@pytest.fixture
def verifier() -> FakeVerifier:
    return FakeVerifier()


@pytest.fixture
async def client(
    tmp_path: Path, verifier: FakeVerifier, make_api_services: Callable[..., ApiServices]
) -> AsyncIterator[httpx.AsyncClient]:
    with RevisionStore(tmp_path / "bascule.db") as store:
        service = ConfigService(
            store=store, engines=[FakeEngine(), L4FakeEngine()], vips=NullVipManager()
        )
        service.dsr_verifier = verifier

        async def system() -> dict[str, Any]:
            return {}

        app = api_app(make_api_services(service, system))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bascule") as opened:
            response = await opened.put("/api/v1/config", json=DOCUMENT)
            assert response.status_code == 200, response.text
            yield opened


def dsr_service() -> VirtualService:
    return parse_document(DOCUMENT).virtual_services[0]


async def test_script_is_the_linux_one_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/virtual-services/dsr-web/dsr/script")

    assert response.status_code == 200, response.text
    assert response.json() == {"script": linux_script(dsr_service())}


async def test_script_for_windows(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/virtual-services/dsr-web/dsr/script", params={"os": TargetOs.windows.value}
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"script": windows_script(dsr_service())}


async def test_script_refuses_an_unknown_os(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/virtual-services/dsr-web/dsr/script", params={"os": "solaris"}
    )

    assert response.status_code == 422
    assert response.json()["error"]["kind"] == "bad_request"
    assert response.json()["error"]["fields"][0]["path"] == "query.os"


@pytest.mark.parametrize("method,suffix", [("GET", "script"), ("POST", "verify")])
async def test_unknown_service_is_404(client: httpx.AsyncClient, method: str, suffix: str) -> None:
    response = await client.request(method, f"/api/v1/virtual-services/nope/dsr/{suffix}")

    assert response.status_code == 404
    assert response.json()["error"] == {
        "kind": "not_found",
        "message": "there is no virtual service named 'nope'",
        "fields": [],
        "current_revision": None,
    }


@pytest.mark.parametrize(
    "name,what", [("nat-web", "mode l4, forwarding nat"), ("proxy", "mode l7, forwarding nat")]
)
@pytest.mark.parametrize("method,suffix", [("GET", "script"), ("POST", "verify")])
async def test_a_service_that_is_not_dsr_is_422(
    client: httpx.AsyncClient,
    verifier: FakeVerifier,
    name: str,
    what: str,
    method: str,
    suffix: str,
) -> None:
    response = await client.request(method, f"/api/v1/virtual-services/{name}/dsr/{suffix}")

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["kind"] == "not_applicable"
    assert error["message"] == (
        f"virtual service {name!r} is {what}: DSR help is for mode: l4 with forwarding: dsr"
    )
    assert verifier.asked == []


async def test_verify_reports_each_real_server_and_foreign_claimants(
    client: httpx.AsyncClient, verifier: FakeVerifier
) -> None:
    response = await client.post("/api/v1/virtual-services/dsr-web/dsr/verify")

    assert response.status_code == 200, response.text
    assert verifier.asked == ["dsr-web"]
    body = response.json()
    assert body["ok"] is False
    assert (body["service"], body["vip"], body["interface"]) == ("dsr-web", "198.18.0.100", "eth0")
    assert [
        (rs["key"], rs["ok"], rs["arp_ok"], rs["connect_ok"]) for rs in body["real_servers"]
    ] == [
        ("198.18.0.11:80", True, True, True),
        ("198.18.0.12:80", False, False, True),
    ]
    assert body["real_servers"][1]["arp_detail"].startswith("answers ARP for the VIP")
    assert body["others"] == [{"mac": "02:00:00:00:00:99", "addresses": ["198.18.0.99"]}]
