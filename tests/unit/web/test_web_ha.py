"""The High availability page: a single node says so; a paired node shows itself, its peer
and VRRP; the handover is refused on a node that is not the active (and changes nothing)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from change_requests import by
from fastapi import FastAPI
from wui_client import Browser

from bascule.daemon.accounts import AccountService
from bascule.daemon.certificates import CertificateService
from bascule.daemon.ha import HaService
from bascule.daemon.pair import PairService
from bascule.daemon.pair_conflict import HistoryConflict, RevisionMark
from bascule.daemon.service import ConfigService
from bascule.engines.keepalived.engine import KeepalivedEngine
from bascule.store.certificates import CertificateStore
from bascule.store.pair import PairLink, PairStore

PAIR = {
    "nodes": [
        {"name": "lb1", "address": "198.18.0.3", "priority": 150},
        {"name": "lb2", "address": "198.18.0.4", "priority": 100},
    ],
    "interface": "eth0",
    "advert_interval": 0.2,
}


@pytest.fixture
def with_ha(wui: FastAPI, service: ConfigService, tmp_path: Path) -> HaService:
    async def lb2() -> frozenset[str]:
        return frozenset({"198.18.0.4"})

    ha = HaService(service, KeepalivedEngine(tmp_path / "keepalived", addresses=lb2))
    wui.state.web_services = dataclasses.replace(wui.state.web_services, ha=ha)
    return ha


async def test_a_single_node_says_so(
    viewer: Browser, with_ha: HaService, check_html: Callable[[str], None]
) -> None:
    page = await viewer.client.get("/ha")
    assert page.status_code == 200
    check_html(page.text)
    assert 'data-role="single"' in page.text
    assert 'href="/ha"' in page.text and "High availability" in page.text


async def test_a_paired_node_shows_itself_and_its_peer(
    operator: Browser, with_ha: HaService, service: ConfigService, check_html: Callable[[str], None]
) -> None:
    await service.apply({"high_availability": PAIR}, by("test"))
    page = await operator.client.get("/ha")
    assert page.status_code == 200
    check_html(page.text)
    assert 'data-fact="node">lb2 <span class="mono">198.18.0.4</span> (priority 100)' in page.text
    assert 'data-fact="peer">lb1' in page.text
    assert 'data-role="unknown"' in page.text  # keepalived does not run here
    assert "keepalived is not running" in page.text
    assert 'data-action="standby"' not in page.text  # only the active hands over
    refused = await operator.client.post("/ha/standby", data={"csrf_token": operator.csrf})
    assert refused.status_code == 422
    assert "not the active" in refused.text
    assert not (with_ha.keepalived.paths.standby_file.exists())


async def test_a_viewer_may_not_hand_over(viewer: Browser, with_ha: HaService) -> None:
    refused = await viewer.client.post("/ha/standby", data={"csrf_token": viewer.csrf})
    assert refused.status_code == 403


@pytest.fixture
def joined(
    wui: FastAPI, service: ConfigService, accounts: AccountService, tmp_path: Path
) -> Iterator[PairService]:
    """lb2, joined to lb1 (the link stored; no peer answers), keepalived not running."""

    async def lb2() -> frozenset[str]:
        return frozenset({"198.18.0.4"})

    keepalived = KeepalivedEngine(tmp_path / "keepalived", addresses=lb2)
    with (
        PairStore(tmp_path / "bascule.db") as store,
        CertificateStore(tmp_path / "bascule.db") as certificate_store,
    ):
        pair = PairService(
            store=store,
            config=service,
            certificates=CertificateService(
                certificate_store, directory=tmp_path / "certificates", config=service
            ),
            accounts=accounts,
            keepalived=keepalived,
            listener=None,
        )
        ha = HaService(service, keepalived, pair=pair)
        wui.state.web_services = dataclasses.replace(wui.state.web_services, ha=ha)
        store.save(
            PairLink(
                peer_url="https://198.18.0.3:8443",
                peer_cert="",
                peer_token="bsc_0123_secret",
                minted_token="none",
                peers_cert="",
                joined_at=datetime(2026, 12, 5, tzinfo=UTC),
            )
        )
        service.changes.guard = pair.check_writable
        yield pair


async def test_a_joined_standby_shows_the_sync_and_refuses_changes(
    admin: Browser,
    service: ConfigService,
    joined: PairService,
    check_html: Callable[[str], None],
) -> None:
    # the pair's document (without high_availability a node has no role, and takes writes)
    await service.apply({"high_availability": PAIR}, by("test"))
    page = await admin.client.get("/ha")
    assert page.status_code == 200
    check_html(page.text)
    assert 'data-fact="sync-peer">https://198.18.0.3:8443' in page.text
    assert 'data-action="leave"' in page.text
    refused = await admin.post(
        "/virtual-services/new",
        {"address": "198.18.0.100", "port": "80", "protocol": "tcp", "type": "http"},
    )
    assert refused.status_code == 409, refused.text
    assert "make changes on the active, 198.18.0.3" in refused.text
    assert service.store.head_number() == 1


async def test_an_administrator_joins_from_the_page_and_bad_input_names_its_field(
    admin: Browser,
    operator: Browser,
    joined: PairService,
    check_html: Callable[[str], None],
) -> None:
    joined.store.forget()  # not joined yet
    page = await admin.client.get("/ha")
    check_html(page.text)
    assert 'data-action="join"' in page.text
    assert 'data-action="join"' not in (await operator.client.get("/ha")).text
    refused = await admin.post(
        "/ha/join", {"url": "http://198.18.0.3", "token": "secret-token", "fingerprint": ""}
    )
    assert refused.status_code == 422
    check_html(refused.text)
    assert 'id="error-url"' in refused.text and "https://ADDRESS:PORT" in refused.text
    assert "secret-token" not in refused.text  # the token is never shown back
    assert 'value="http://198.18.0.3"' in refused.text
    refused = await admin.post(
        "/ha/join", {"url": "https://198.18.0.3:8443", "token": "t", "fingerprint": ""}
    )
    assert refused.status_code == 422 and 'id="error-fingerprint"' in refused.text
    assert joined.store.link() is None
    assert (await operator.post("/ha/join", {"url": "https://198.18.0.3:8443"})).status_code == 403


async def test_a_diverged_history_is_shown_with_the_choice_of_the_history_to_keep(
    admin: Browser,
    viewer: Browser,
    service: ConfigService,
    joined: PairService,
    check_html: Callable[[str], None],
) -> None:
    await service.apply({"high_availability": PAIR}, by("test"))
    at = datetime(2026, 12, 5, 12, tzinfo=UTC)

    def mark(number: int, author: str) -> RevisionMark:
        return RevisionMark(number=number, digest="d", author=author, created_at=at, message="m")

    joined._conflict = HistoryConflict(
        fork=1, here=(mark(2, "bob"),), peer=(mark(2, "alice"), mark(3, "alice"))
    )
    joined._health = "diverged"
    page = await admin.client.get("/ha")
    check_html(page.text)
    assert 'data-conflict="1"' in page.text
    for row in ("lb2-2", "lb1-2", "lb1-3"):
        assert f'data-conflict-revision="{row}"' in page.text
    assert 'data-action="keep-lb1"' in page.text and 'data-action="keep-lb2"' in page.text
    seen = (await viewer.client.get("/ha")).text
    assert 'data-conflict="1"' in seen and 'data-action="keep-lb1"' not in seen
    assert (await viewer.post("/ha/resolve", {"keep": "lb1"})).status_code == 403
    refused = await admin.post("/ha/resolve", {"keep": "lb3"})
    assert refused.status_code == 422
    assert "must name a node of the pair: lb2 (this node) or lb1" in refused.text
