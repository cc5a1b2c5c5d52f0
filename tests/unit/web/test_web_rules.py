"""The rules editor, sub-service tabs and the contextual fields of the service page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from change_requests import by
from wui_client import Browser, given

from bascule.daemon.service import ConfigService
from bascule.store.revisions import RevisionStore

SITE = {
    "name": "site",
    "address": "198.18.0.100",
    "port": 80,
    "type": "http",
    "real_servers": [{"address": "198.18.0.4", "port": 80}],
    "sub_services": [{"name": "api", "real_servers": [{"address": "198.18.0.5", "port": 80}]}],
    "rules": [
        {"name": "to-api", "match": {"path_prefix": "/api/"}, "action": {"use": "api"}},
        {"name": "old", "match": {"path": "/old"}, "action": {"redirect": "/new", "code": 301}},
    ],
}


@pytest.fixture
async def site(service: ConfigService) -> int:
    result = await service.apply({"virtual_services": [SITE]}, by("test"))
    assert result.revision is not None
    return result.revision


async def _apply(admin: Browser, response: Any) -> None:
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/preview"
    applied = await admin.post("/preview/apply")
    assert applied.status_code == 303


def _stored(store: RevisionStore) -> dict[str, Any]:
    head = store.head()
    assert head is not None
    service: dict[str, Any] = head.document["virtual_services"][0]
    return service


async def test_add_a_rule_of_each_action(
    admin: Browser, site: int, store: RevisionStore, check_html: Callable[[str], None]
) -> None:
    form = await admin.client.get("/virtual-services/site/new-rule")
    assert form.status_code == 200
    check_html(form.text)
    assert '<option value="api">api</option>' in form.text  # the sub-services to use
    rules = [
        {"name": "hdr", "match.header.name": "X-Env", "match.header.regex": "^te?st$",
         "action.kind": "use", "action.use": "api", "rewrite_path.regex": "^/x/(.*)",
         "rewrite_path.with": "/\\1"},
        {"name": "deny", "match.source": "198.18.0.0/24", "match.negate": "true",
         "action.kind": "respond", "action.respond": "403", "action.body": "no"},
        {"name": "rest", "match.method": "POST", "match.query.name": "q",
         "match.query.value": "1", "action.kind": "use_default"},
        {"name": "moved", "match.host_suffix": "example.com", "action.kind": "redirect",
         "action.redirect": "https://example.org/", "action.code": "308"},
    ]  # fmt: skip
    for rule in rules:
        await _apply(admin, await admin.post("/virtual-services/site/new-rule", rule))
    stored = _stored(store)["rules"]
    assert [r["name"] for r in stored] == ["to-api", "old", "hdr", "deny", "rest", "moved"]
    assert [given(rule) for rule in stored[2:]] == [
        {
            "name": "hdr",
            "match": {"header": {"name": "X-Env", "regex": "^te?st$"}},
            "action": {"use": "api"},
            "rewrite_path": {"regex": "^/x/(.*)", "replacement": "/\\1"},
        },
        {
            "name": "deny",
            "match": {"source": "198.18.0.0/24", "negate": True},
            "action": {"respond": 403, "body": "no"},
        },
        {
            "name": "rest",
            "match": {"method": "POST", "query": {"name": "q", "value": "1"}},
            "action": {"use_default": True},
        },
        {
            "name": "moved",
            "match": {"host_suffix": "example.com"},
            "action": {"redirect": "https://example.org/", "code": 308},
        },
    ]
    # the stored rule fills the form again
    page = await admin.client.get("/virtual-services/site/rules/hdr")
    assert 'value="/\\1"' in page.text and 'value="^te?st$"' in page.text


async def test_a_bad_regex_is_refused_beside_its_field(
    admin: Browser, site: int, store: RevisionStore, check_html: Callable[[str], None]
) -> None:
    before = store.head_number()
    response = await admin.post(
        "/virtual-services/site/new-rule",
        {"name": "bad", "match.path_regex": "([a-z", "action.kind": "use", "action.use": "api"},
    )
    assert response.status_code == 422
    check_html(response.text)
    assert '<p class="field-error" id="error-match.path_regex">is not a valid regular' in (
        response.text
    )
    assert 'value="([a-z"' in response.text  # what was typed stays
    assert store.head_number() == before


async def test_errors_of_a_whole_match_or_action(admin: Browser, site: int) -> None:
    response = await admin.post(
        "/virtual-services/site/new-rule",
        {"name": "to-api", "action.kind": "respond", "action.respond": "99"},
    )
    assert response.status_code == 422
    assert 'id="error-name">a rule of site is already named' in response.text
    response = await admin.post(
        "/virtual-services/site/new-rule", {"name": "x", "action.kind": "use_default"}
    )
    assert 'id="error-match">give at least one condition' in response.text
    response = await admin.post(
        "/virtual-services/site/new-rule",
        {"name": "x", "match.path": "/", "action.kind": "respond", "action.respond": "99"},
    )
    assert 'id="error-action.respond">must be an HTTP status' in response.text


async def test_edit_move_and_delete_a_rule(admin: Browser, site: int, store: RevisionStore) -> None:
    page = await admin.client.get("/virtual-services/site/rules/old")
    assert 'value="/old"' in page.text and '<option value="301" selected>' in page.text
    await _apply(
        admin,
        await admin.post(
            "/virtual-services/site/rules/old",
            {"name": "older", "match.path": "/older", "action.kind": "redirect",
             "action.redirect": "/new", "action.code": "307"},
        ),
    )  # fmt: skip
    assert [r["name"] for r in _stored(store)["rules"]] == ["to-api", "older"]
    moved = await admin.post("/virtual-services/site/rules/older/move", {"position": "0"})
    await _apply(admin, moved)
    assert [r["name"] for r in _stored(store)["rules"]] == ["older", "to-api"]
    page = await admin.client.get("/virtual-services/site")
    assert page.text.index('data-rule="older"') < page.text.index('data-rule="to-api"')
    assert page.text.count('data-action="up"') == 1 and page.text.count('data-action="down"') == 1
    await _apply(admin, await admin.post("/virtual-services/site/rules/older/delete"))
    assert [r["name"] for r in _stored(store)["rules"]] == ["to-api"]


async def test_editing_a_rule_keeps_what_its_form_does_not_show(
    admin: Browser, service: ConfigService, store: RevisionStore
) -> None:
    limited = {
        **SITE,
        "rules": [
            {
                "name": "login",
                "match": {"path": "/login", "method": "POST"},
                "action": {"use_default": True},
                "limits": {"per_client": {"requests_per_second": 5}},
            }
        ],
    }
    await service.apply({"virtual_services": [limited]}, by("test"))
    await _apply(
        admin,
        await admin.post(
            "/virtual-services/site/rules/login",
            {"name": "login", "match.path": "/signin", "match.method": "POST",
             "action.kind": "use_default"},
        ),
    )  # fmt: skip
    [rule] = _stored(store)["rules"]
    assert rule["match"]["path"] == "/signin"
    assert rule["limits"]["per_client"]["requests_per_second"] == 5  # not lost by the form


async def test_a_rules_limits_in_its_editor(
    admin: Browser, site: int, store: RevisionStore, check_html: Callable[[str], None]
) -> None:
    page = await admin.client.get("/virtual-services/site/rules/old")
    check_html(page.text)
    assert 'name="limits.per_client.requests_per_second"' in page.text
    assert 'name="limits.max_connections"' not in page.text  # the service's, not a rule's
    login = {"name": "old", "match.path": "/old", "action.kind": "redirect",
             "action.redirect": "/new", "action.code": "301"}  # fmt: skip
    await _apply(
        admin,
        await admin.post(
            "/virtual-services/site/rules/old",
            {**login, "limits.per_client.requests_per_second": "5",
             "limits.response.code": "429", "limits.response.retry_after": "30"},
        ),
    )  # fmt: skip
    rule = _stored(store)["rules"][1]
    assert rule["limits"]["per_client"]["requests_per_second"] == 5
    assert rule["limits"]["response"] == {"code": 429, "retry_after": 30}
    page = await admin.client.get("/virtual-services/site/rules/old")
    assert 'value="5"' in page.text
    bad = await admin.post(
        "/virtual-services/site/rules/old",
        {**login, "limits.per_client.requests_per_second": "-1", "limits.response.code": "429"},
    )
    assert bad.status_code == 422, bad.text
    assert 'id="error-limits.per_client.requests_per_second">' in bad.text
    # emptied: the rule has no limits of its own any more
    await _apply(
        admin,
        await admin.post(
            "/virtual-services/site/rules/old",
            {**login, "limits.per_client.requests_per_second": "", "limits.response.code": "429"},
        ),
    )
    assert _stored(store)["rules"][1].get("limits") is None


async def test_the_action_fields_follow_the_choice(admin: Browser, site: int) -> None:
    response = await admin.post(
        "/virtual-services/site/rule-fields",
        {"action.kind": "redirect", "action.redirect": "/typed", "match.path": "/"},
    )
    assert response.status_code == 200
    assert 'id="rule-action"' in response.text and 'value="/typed"' in response.text
    assert 'name="action.code"' in response.text and 'name="action.use"' not in response.text
    assert 'name="rewrite_path.regex"' not in response.text  # the LB answers: no rewrite
    use = await admin.post("/virtual-services/site/rule-fields", {"action.kind": "use"})
    assert 'name="action.use"' in use.text and 'name="rewrite_path.regex"' in use.text


async def test_viewers_see_rules_but_no_editor(viewer: Browser, site: int) -> None:
    page = await viewer.client.get("/virtual-services/site")
    assert 'data-rule="to-api"' in page.text and 'data-action="add-rule"' not in page.text
    refused = await viewer.post("/virtual-services/site/new-rule", {"name": "x"})
    assert refused.status_code == 403


# -- sub-services ----------------------------------------------------------------------------


async def test_sub_services_are_tabs_with_their_own_settings(
    admin: Browser, site: int, store: RevisionStore, check_html: Callable[[str], None]
) -> None:
    page = await admin.client.get("/virtual-services/site")
    assert 'data-tab="api"' in page.text
    tab = await admin.client.get("/virtual-services/site/sub-services/api")
    assert tab.status_code == 200, tab.text
    check_html(tab.text)
    assert '<tr data-rs="198.18.0.5:80"' in tab.text
    assert '<option value="" selected>as the service</option>' in tab.text
    assert 'name="persistence.cookie"' not in tab.text  # no method of its own: no settings
    await _apply(
        admin,
        await admin.post(
            "/virtual-services/site/sub-services/api",
            {"scheduler": "least_connection", "persistence.method": "active_cookie",
             "persistence.cookie": "API", "persistence.timeout": "600", "check.type": ""},
        ),
    )  # fmt: skip
    sub = _stored(store)["sub_services"][0]
    assert sub["scheduler"] == "least_connection"
    assert sub["persistence"]["cookie"] == "API" and sub.get("check") is None
    tab = await admin.client.get("/virtual-services/site/sub-services/api")
    assert 'name="persistence.cookie"' in tab.text and 'value="API"' in tab.text
    bad = await admin.post(
        "/virtual-services/site/sub-services/api",
        {"check.type": "http", "check.interval": "1", "check.timeout": "5"},
    )
    assert bad.status_code == 422
    assert 'id="error-check.timeout">' in bad.text


async def test_a_sub_services_limits_and_cache_on_its_tab(
    admin: Browser, site: int, store: RevisionStore, check_html: Callable[[str], None]
) -> None:
    tab = await admin.client.get("/virtual-services/site/sub-services/api")
    check_html(tab.text)
    assert 'name="limits.per_client.requests_per_second"' in tab.text
    assert 'name="limits.max_connections"' not in tab.text  # the service's, not a pool's
    assert 'name="cache.enabled"' in tab.text and 'name="cache.size_mb"' not in tab.text
    await _apply(
        admin,
        await admin.post(
            "/virtual-services/site/sub-services/api",
            {"limits.per_client.requests_per_second": "20", "limits.response.code": "503",
             "limits.response.retry_after": "7", "cache.enabled": "on", "cache.size_mb": "32",
             "cache.max_object_kb": "256", "cache.max_age": "60"},
        ),
    )  # fmt: skip
    sub = _stored(store)["sub_services"][0]
    assert sub["limits"]["per_client"]["requests_per_second"] == 20
    assert sub["limits"]["response"] == {"code": 503, "retry_after": 7}
    assert sub["cache"]["size_mb"] == 32
    tab = await admin.client.get("/virtual-services/site/sub-services/api")
    assert 'name="cache.size_mb"' in tab.text and 'value="32"' in tab.text
    # a limit of 0 is refused beside its field, nothing changed
    bad = await admin.post(
        "/virtual-services/site/sub-services/api",
        {"limits.per_client.requests_per_second": "0", "limits.response.code": "429"},
    )
    assert bad.status_code == 422, bad.text
    assert 'id="error-limits.per_client.requests_per_second">' in bad.text
    assert _stored(store)["sub_services"][0]["limits"]["per_client"]["requests_per_second"] == 20
    # the switch off and the rate emptied: the sub-service has neither any more
    await _apply(
        admin,
        await admin.post(
            "/virtual-services/site/sub-services/api",
            {"limits.per_client.requests_per_second": "", "limits.response.code": "429"},
        ),
    )
    sub = _stored(store)["sub_services"][0]
    assert sub.get("limits") is None and sub.get("cache") is None


async def test_add_delete_a_sub_service_and_operate_its_servers(
    admin: Browser, site: int, store: RevisionStore
) -> None:
    await _apply(admin, await admin.post("/virtual-services/site/new-sub-service", {"name": "img"}))
    assert [s["name"] for s in _stored(store)["sub_services"]] == ["api", "img"]
    taken = await admin.post("/virtual-services/site/new-sub-service", {"name": "api"})
    assert 'id="error-name">a sub-service of site is already named' in taken.text
    url = "/virtual-services/site/sub-services/img/real-servers"
    await _apply(admin, await admin.post(f"{url}/new", {"address": "198.18.0.6", "port": "80"}))
    assert _stored(store)["sub_services"][1]["real_servers"][0]["address"] == "198.18.0.6"
    await _apply(admin, await admin.post(f"{url}/198.18.0.6:80/state", {"state": "drain"}))
    assert _stored(store)["sub_services"][1]["real_servers"][0]["state"] == "drain"
    await _apply(admin, await admin.post(f"{url}/198.18.0.6:80/delete"))
    assert _stored(store)["sub_services"][1]["real_servers"] == []
    await _apply(admin, await admin.post("/virtual-services/site/sub-services/img/delete"))
    assert [s["name"] for s in _stored(store)["sub_services"]] == ["api"]
    # a sub-service a rule uses cannot go: the model says why, nothing changes
    before = store.head_number()
    refused = await admin.post("/virtual-services/site/sub-services/api/delete")
    assert refused.headers["location"] == "/virtual-services/site/sub-services/api"
    tab = await admin.client.get(refused.headers["location"])
    assert "The change was not made" in tab.text and "is not a sub-service" in tab.text
    assert store.head_number() == before


# -- contextual fields -------------------------------------------------------------------------


async def test_only_the_fields_that_apply_are_shown(admin: Browser, site: int) -> None:
    page = await admin.client.get("/virtual-services/site")
    for section in ("basic", "standard", "check", "advanced"):
        assert f'id="section-{section}"' in page.text
    assert 'name="transparent"' in page.text and 'name="forwarding"' not in page.text
    assert 'name="persistence.cookie"' not in page.text  # persistence none
    # a new choice: the sections again with what was typed, the l4 options instead
    swapped = await admin.post(
        "/virtual-services/site/fields",
        {"mode": "l4", "type": "generic", "address": "198.18.0.200", "persistence.method":
         "source_ip", "_fields": "mode,type,address,persistence.method"},
    )  # fmt: skip
    assert swapped.status_code == 200
    assert 'id="service-fields"' in swapped.text and 'value="198.18.0.200"' in swapped.text
    assert 'name="forwarding"' in swapped.text and 'name="transparent"' not in swapped.text
    assert 'name="persistence.source_mask"' in swapped.text
    assert 'value="active_cookie"' not in swapped.text  # an l7 method is no choice on l4
    cookie = await admin.post(
        "/virtual-services/site/fields", {"persistence.method": "active_cookie"}
    )
    assert 'name="persistence.cookie"' in cookie.text


async def test_a_field_the_form_did_not_show_is_unchanged(
    admin: Browser, site: int, store: RevisionStore, service: ConfigService
) -> None:
    await service.edit(
        lambda doc: {"virtual_services": [{**doc["virtual_services"][0], "transparent": True}]},
        by("test"),
    )
    shown = "name,address,port,scheduler"
    response = await admin.post(
        "/virtual-services/site",
        {"name": "site", "address": "198.18.0.100", "port": "80",
         "scheduler": "least_connection", "_fields": shown},
    )  # fmt: skip
    await _apply(admin, response)
    stored = _stored(store)
    assert stored["scheduler"] == "least_connection" and stored["transparent"] is True


async def test_ssl_offload_is_turned_on_and_off_by_naming_certificates(
    admin: Browser, site: int, store: RevisionStore
) -> None:
    page = await admin.client.get("/virtual-services/site")
    assert 'id="section-ssl"' in page.text and 'name="tls.cipher_set"' not in page.text
    swapped = await admin.post("/virtual-services/site/fields", {"tls.certificates": "shop"})
    assert 'name="tls.cipher_set"' in swapped.text and 'value="shop"' in swapped.text
    fields = "name,address,port,tls.certificates,tls.cipher_set,tls.redirect_http"
    response = await admin.post(
        "/virtual-services/site",
        {"name": "site", "address": "198.18.0.100", "port": "443", "tls.certificates": "shop",
         "tls.cipher_set": "modern", "tls.redirect_http": "true", "_fields": fields},
    )  # fmt: skip
    await _apply(admin, response)
    tls = _stored(store)["tls"]
    assert (tls["certificates"], tls["cipher_set"], tls["redirect_http"]) == (
        ["shop"],
        "modern",
        True,
    )
    off = await admin.post(
        "/virtual-services/site",
        {"name": "site", "address": "198.18.0.100", "port": "80", "tls.certificates": "",
         "_fields": "name,address,port,tls.certificates"},
    )  # fmt: skip
    await _apply(admin, off)
    assert _stored(store)["tls"] is None
