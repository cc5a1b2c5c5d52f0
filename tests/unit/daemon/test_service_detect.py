"""type: auto in the service layer: probed before validation, never stored (daemon/service.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from change_requests import by

from bascule.daemon.results import Detection
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.detect import ServiceProber, Verdict
from bascule.engines.base import FakeEngine
from bascule.errors import InvalidConfiguration
from bascule.model import CheckType, ServiceType, VirtualService
from bascule.store.revisions import RevisionStore

EVIDENCE = 'detected: http — "HTTP/1.1 200" from 198.18.0.11:80'


class FakeProber(ServiceProber):
    def __init__(self, verdict: Verdict) -> None:
        super().__init__()
        self.verdict = verdict
        self.asked: list[str] = []

    async def detect(self, vs: VirtualService) -> Verdict:
        self.asked.append(vs.name)
        return self.verdict


HTTP = Verdict(type=ServiceType.http, check=CheckType.http, evidence=EVIDENCE, conclusive=True)


def vs(name: str = "web", port: int = 80, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "address": "198.18.0.100",
        "port": port,
        "type": "auto",
        "real_servers": [{"address": "198.18.0.11", "port": 80}],
        **fields,
    }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RevisionStore]:
    with RevisionStore(tmp_path / "bascule.db") as opened:
        yield opened


def service_with(store: RevisionStore, verdict: Verdict) -> tuple[ConfigService, FakeProber]:
    service = ConfigService(store=store, engines=[FakeEngine()], vips=NullVipManager())
    prober = FakeProber(verdict)
    service.detector = prober
    return service, prober


async def test_auto_is_detected_stored_and_reported(store: RevisionStore) -> None:
    service, prober = service_with(store, HTTP)
    result = await service.apply({"virtual_services": [vs()]}, by("alice"))
    assert prober.asked == ["web"]
    assert result.applied
    assert result.detections == (
        Detection(virtual_service="web", type="http", check="http", evidence=EVIDENCE),
    )
    _, document = service.document()
    assert document["virtual_services"][0]["type"] == "http"
    assert document["virtual_services"][0]["check"]["type"] == "http"


async def test_a_users_own_check_is_kept(store: RevisionStore) -> None:
    service, _ = service_with(store, HTTP)
    result = await service.apply(
        {"virtual_services": [vs(check={"type": "tcp", "interval": 3})]}, by("alice")
    )
    assert result.detections[0].check == "tcp"
    _, document = service.document()
    assert document["virtual_services"][0]["check"]["type"] == "tcp"
    assert document["virtual_services"][0]["check"]["interval"] == 3


async def test_a_dry_run_shows_the_detection_and_commits_nothing(store: RevisionStore) -> None:
    service, _ = service_with(store, HTTP)
    result = await service.apply({"virtual_services": [vs()]}, by("alice", dry_run=True))
    assert result.detections[0].evidence == EVIDENCE
    assert store.head() is None


async def test_services_without_auto_are_not_probed(store: RevisionStore) -> None:
    service, prober = service_with(store, HTTP)
    result = await service.apply({"virtual_services": [vs(type="generic")]}, by("alice"))
    assert prober.asked == []
    assert result.detections == ()


async def test_a_detection_that_conflicts_with_the_document_names_its_evidence(
    store: RevisionStore,
) -> None:
    # url_hash reads the URL: a generic (TLS) detection cannot honour it
    tls = Verdict(type=ServiceType.generic, check=CheckType.tcp, evidence="tls!", conclusive=True)
    service, _ = service_with(store, tls)
    with pytest.raises(InvalidConfiguration) as caught:
        await service.apply({"virtual_services": [vs(scheduler="url_hash")]}, by("alice"))
    assert [str(e) for e in caught.value.errors] == [
        "virtual_services[0].type: auto: tls!",
        "virtual_services[0].scheduler: url_hash needs type: http (this service is type: generic)",
    ]
    assert store.head() is None


async def test_every_auto_service_is_probed(store: RevisionStore) -> None:
    service, prober = service_with(store, HTTP)
    result = await service.apply(
        {"virtual_services": [vs("a", 80), vs("b", 81), vs("c", 82, type="generic")]}, by("alice")
    )
    assert sorted(prober.asked) == ["a", "b"]
    assert [d.virtual_service for d in result.detections] == ["a", "b"]
