"""Changes through the WUI: forms -> field errors or preview -> apply -> result."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from change_requests import by
from wui_client import Browser

from bascule.daemon.service import ConfigService
from bascule.engines.base import FakeEngine
from bascule.model import RealServerState
from bascule.store.revisions import RevisionStore


async def test_bad_port_shows_beside_the_field_and_saves_nothing(
    admin: Browser, store: RevisionStore, check_html: Callable[[str], None]
) -> None:
    response = await admin.post(
        "/virtual-services/new",
        {"address": "198.18.0.100", "port": "70000", "protocol": "tcp", "type": "auto"},
    )
    assert response.status_code == 422
    check_html(response.text)
    assert '<p class="field-error" id="error-port">must be between 1 and 65535</p>' in (
        response.text
    )
    assert 'value="70000"' in response.text  # what the person typed is kept
    assert store.head_number() is None


async def test_text_in_a_number_field_is_explained(admin: Browser, store: RevisionStore) -> None:
    response = await admin.post(
        "/virtual-services/new", {"address": "not an ip", "port": "eighty", "type": "auto"}
    )
    assert response.status_code == 422
    assert 'id="error-port">must be an integer</p>' in response.text
    assert 'id="error-address">' in response.text
    assert store.head_number() is None


async def test_add_a_service_in_one_click_then_apply(
    admin: Browser, store: RevisionStore, engine: FakeEngine, check_html: Callable[[str], None]
) -> None:
    form = await admin.client.get("/virtual-services/new")
    response = await admin.post(
        "/virtual-services/new",
        {"address": "198.18.0.100", "port": "80", "protocol": "tcp", "type": "auto"},
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/preview"
    assert store.head_number() is None  # planned, not applied
    preview = await admin.client.get("/preview")
    check_html(preview.text)
    assert 'data-state="planned"' in preview.text
    assert 'data-action="apply"' in preview.text and 'data-action="cancel"' in preview.text
    # the diff, by the name made from the address and port, every field one click away
    assert 'data-path="virtual_services[198-18-0-100-80]"' in preview.text
    assert "virtual service 198-18-0-100-80" in preview.text
    assert "scheduler: round_robin" in preview.text
    assert "type http" in preview.text  # auto: port 80 with no real server answers http
    applied = await admin.post("/preview/apply")
    assert applied.headers["location"] == "/preview"
    assert store.head_number() == 1
    head = store.head()
    assert head is not None and head.author == "admin"
    result = await admin.client.get("/preview")
    check_html(result.text)
    assert 'data-state="applied"' in result.text
    assert "Revision 1 is applied" in result.text
    done = await admin.post("/preview/cancel")
    assert done.headers["location"] == "/virtual-services/198-18-0-100-80"
    assert form.status_code == 200


async def test_add_real_servers_with_a_bad_weight(
    admin: Browser, service: ConfigService, store: RevisionStore
) -> None:
    await service.apply(
        {"virtual_services": [{"name": "web", "address": "198.18.0.100", "port": 80}]}, by("test")
    )
    bad = await admin.post(
        "/virtual-services/web/real-servers/new",
        {"address": "198.18.0.4", "port": "80", "weight": "0", "forwarding": ""},
    )
    assert bad.status_code == 422
    assert '<p class="field-error" id="error-weight">must be between 1 and 65535</p>' in bad.text
    assert store.head_number() == 1
    good = await admin.post(
        "/virtual-services/web/real-servers/new",
        {"address": "198.18.0.4", "port": "80", "weight": "500", "forwarding": ""},
    )
    assert good.headers["location"] == "/preview"
    await admin.post("/preview/apply")
    assert store.head_number() == 2
    servers = store.get(2).document["virtual_services"][0]["real_servers"]
    assert [(s["address"], s["weight"]) for s in servers] == [("198.18.0.4", 500)]


async def test_duplicate_real_server_is_a_field_error(admin: Browser, web_service: int) -> None:
    response = await admin.post(
        "/virtual-services/web/real-servers/new",
        {"address": "198.18.0.4", "port": "80", "weight": "1000"},
    )
    assert response.status_code == 422
    assert 'id="error-address">198.18.0.4:80 is already a real server of web' in response.text


async def test_edit_a_section_of_a_service(
    admin: Browser, web_service: int, store: RevisionStore
) -> None:
    page = await admin.client.get("/virtual-services/web")
    assert 'id="section-check"' in page.text and 'id="section-standard"' in page.text
    form = {
        "name": "web",
        "address": "198.18.0.100",
        "port": "80",
        "protocol": "tcp",
        "type": "http",
        "mode": "l7",
        "enabled": "true",
        "scheduler": "least_connection",
        "check.type": "http",
        "check.interval": "5",
        "check.timeout": "1",
        "check.rise": "2",
        "check.fall": "3",
        "check.path": "/health",
        "check.expect_status": "200",
    }
    response = await admin.post("/virtual-services/web", form)
    assert response.headers["location"] == "/preview", response.text
    preview = await admin.client.get("/preview")
    assert "virtual_services[web].scheduler" in preview.text
    assert "virtual_services[web].check.path" in preview.text
    await admin.post("/preview/apply")
    vs = store.get(web_service + 1).document["virtual_services"][0]
    assert (vs["scheduler"], vs["check"]["interval"], vs["check"]["path"]) == (
        "least_connection",
        5,
        "/health",
    )
    assert len(vs["real_servers"]) == 2  # untouched by the form
    # an inconsistent check: the error goes beside the field that the model blames
    bad = await admin.post("/virtual-services/web", {**form, "check.timeout": "9"})
    assert bad.status_code == 422
    assert 'id="error-check.timeout">must not be longer than interval</p>' in bad.text


async def test_a_new_scheduler_drops_the_adaptive_agent(
    admin: Browser, service: ConfigService, store: RevisionStore
) -> None:
    web = {
        "name": "web",
        "address": "198.18.0.100",
        "port": 80,
        "scheduler": "adaptive",
        "adaptive": {"port": 8080},
        "real_servers": [{"address": "198.18.0.4", "port": 80}],
    }
    await service.apply({"virtual_services": [web]}, by("test"))
    form = {"name": "web", "address": "198.18.0.100", "port": "80", "scheduler": "round_robin"}
    response = await admin.post("/virtual-services/web", form)
    assert response.headers["location"] == "/preview", response.text
    await admin.post("/preview/apply")
    changed = store.get(2).document["virtual_services"][0]
    assert (changed["scheduler"], changed["adaptive"]) == ("round_robin", None)


async def test_cancel_keeps_everything(
    admin: Browser, web_service: int, store: RevisionStore
) -> None:
    await admin.post("/virtual-services/web/delete")
    cancelled = await admin.post("/preview/cancel")
    assert cancelled.headers["location"] == "/virtual-services/web"
    assert store.head_number() == web_service
    empty = await admin.client.get("/preview")
    assert 'data-state="empty"' in empty.text


async def test_a_change_made_meanwhile_is_not_overwritten(
    admin: Browser, web_service: int, service: ConfigService, store: RevisionStore
) -> None:
    await admin.post(
        "/virtual-services/web/real-servers/198.18.0.4:80/state", {"state": "disabled"}
    )
    await service.set_real_server_state("web", "198.18.0.5:80", RealServerState.drain, by("cli"))
    response = await admin.post("/preview/apply")
    assert response.headers["location"] == "/virtual-services/web"
    assert store.head_number() == web_service + 1  # only the other change
    page = await admin.client.get("/virtual-services/web")
    assert "The configuration changed since this preview" in page.text


async def test_engine_error_is_shown_as_the_result(
    admin: Browser, web_service: int, engine: FakeEngine
) -> None:
    await admin.post("/virtual-services/web/real-servers/198.18.0.4:80", {"port": "8080"})
    engine.fail_apply_with = "the engine said no"
    await admin.post("/preview/apply")
    result = await admin.client.get("/preview")
    assert 'data-state="failed"' in result.text
    assert "the engine said no" in result.text


async def test_engine_refusing_the_plan_is_shown_on_the_form(
    admin: Browser, web_service: int, engine: FakeEngine, store: RevisionStore
) -> None:
    engine.reject_with = "bad config"
    response = await admin.post(
        "/virtual-services/web/real-servers/new", {"address": "198.18.0.6", "port": "80"}
    )
    assert response.status_code == 422
    assert 'id="form-errors"' in response.text and "bad config" in response.text
    assert store.head_number() == web_service


async def test_drain_through_the_preview(
    login: Callable[[str], Awaitable[Browser]], web_service: int, store: RevisionStore
) -> None:
    admin = await login("admin")
    drain = await admin.post(
        "/virtual-services/web/real-servers/198.18.0.4:80/state", {"state": "drain"}
    )
    assert drain.headers["location"] == "/preview"
    preview = await admin.client.get("/preview")
    assert "real_servers[198.18.0.4:80].state" in preview.text
    assert "runtime, no reload" in preview.text
    await admin.post("/preview/apply")
    page = await admin.client.get("/virtual-services/web/live", headers={"HX-Request": "true"})
    assert 'data-rs="198.18.0.4:80" data-status="drain" data-state="drain"' in page.text
    assert store.head_number() == web_service + 1


async def test_nothing_to_change_is_said_not_previewed(admin: Browser, web_service: int) -> None:
    response = await admin.post(
        "/virtual-services/web/real-servers/198.18.0.4:80/state", {"state": "enabled"}
    )
    assert response.headers["location"] == "/virtual-services/web"
    page = await admin.client.get("/virtual-services/web")
    assert "Nothing to change" in page.text
