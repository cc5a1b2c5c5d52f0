"""The service page's L7 options and filtering (issues 12 and 13): header operations, path
rewrite, not-available, timeouts, request log, access, limits, cache, compression and
authentication; the cache purge and the limits view; the sub-service tab's live status.

Each field: a save changes the document as expected (one change, previewed then applied), a
bad value comes back beside its field with nothing changed, and a field shows only where it
applies. The page store and the HTTP user store are real (tmp stores); the engine is the
FakeEngine, with a cache purge and client counters where a test needs them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from change_requests import by
from fastapi import FastAPI
from wui_client import Browser, CheckedFakeEngine, given, wui_over

from bascule.daemon.accounts import AccountService
from bascule.daemon.audit import AuditService
from bascule.daemon.http_users import HttpUserService
from bascule.daemon.pages import PageService
from bascule.daemon.service import ConfigService
from bascule.daemon.statistics import Statistics
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import ClientLoad, FakeEngine
from bascule.model import Configuration, Mode
from bascule.model.access import Actor, Role
from bascule.store.http_users import HttpUserStore
from bascule.store.pages import PageStore
from bascule.store.revisions import RevisionStore

ADMIN = Actor(name="admin", role=Role.admin, via="local", remote="test")
SITE = {
    "name": "site",
    "address": "198.18.0.100",
    "port": 80,
    "type": "http",
    "real_servers": [{"address": "198.18.0.4", "port": 80}],
    "sub_services": [{"name": "api", "real_servers": [{"address": "198.18.0.5", "port": 80}]}],
}
L4 = {
    "name": "dns",
    "address": "198.18.0.101",
    "port": 53,
    "protocol": "udp",
    "real_servers": [{"address": "198.18.0.4", "port": 53}],
}
ACCESS_LISTS = {
    "office": {"addresses": ["198.18.0.0/24"]},
    "blocked": {"addresses": ["198.18.9.9"]},
}


class CachingEngine(CheckedFakeEngine):
    """The FakeEngine with the HAProxy engine's cache purge and client counters."""

    def __init__(self) -> None:
        super().__init__()
        self.purged: list[str] = []

    async def purge_cache(self, applied: Configuration | None, name: str) -> bool:
        self.purged.append(name)
        return applied is not None

    async def client_loads(
        self, applied: Configuration | None, vs_name: str, *, top: int, rule: str | None = None
    ) -> list[ClientLoad]:
        return [
            ClientLoad(client="198.18.0.9", connections=7, connections_per_second=30,
                       requests_per_second=80, limited=True),
            ClientLoad(client="198.18.0.10", connections=1, connections_per_second=1,
                       requests_per_second=2, limited=False),
        ][:top]  # fmt: skip


@pytest.fixture
def engine() -> CachingEngine:
    return CachingEngine()


@pytest.fixture
def service(store: RevisionStore, engine: CachingEngine, audit: AuditService) -> ConfigService:
    """The service layer over an l7 engine (the one with a cache) and an l4 one."""
    l4 = FakeEngine()
    l4.name, l4.mode = "fake-l4", Mode.l4
    return ConfigService(store=store, engines=[engine, l4], vips=NullVipManager(), audit=audit)


@pytest.fixture
def stores(
    tmp_path: Path, service: ConfigService, audit: AuditService
) -> Iterator[tuple[PageService, HttpUserService]]:
    with (
        PageStore(tmp_path / "bascule.db") as page_store,
        HttpUserStore(tmp_path / "bascule.db") as user_store,
    ):
        pages = PageService(page_store, directory=tmp_path / "pages", config=service, audit=audit)
        users = HttpUserService(user_store, config=service, audit=audit)
        service.attach_certificates(
            lambda config: [*pages.document_problems(config), *users.document_problems(config)],
            tuple,
        )
        yield pages, users


@pytest.fixture
def wui(
    service: ConfigService,
    accounts: AccountService,
    audit: AuditService,
    statistics: Statistics,
    stores: tuple[PageService, HttpUserService],
) -> FastAPI:
    pages, users = stores
    return wui_over(service, accounts, audit, statistics, pages=pages, http_users=users)


@pytest.fixture
async def site(service: ConfigService, stores: tuple[PageService, HttpUserService]) -> int:
    pages, users = stores
    await pages.add("maintenance", b"<h1>Back soon</h1>", actor=ADMIN)
    await users.add("ops", "ops-password-1", actor=ADMIN)
    await users.add("dev", "dev-password-1", actor=ADMIN)
    result = await service.apply(
        {"access_lists": ACCESS_LISTS, "virtual_services": [SITE, L4]}, by("test")
    )
    assert result.revision is not None
    return result.revision


def _stored(store: RevisionStore, name: str = "site") -> dict[str, Any]:
    head = store.head()
    assert head is not None
    return next(vs for vs in head.document["virtual_services"] if vs["name"] == name)


async def _save(admin: Browser, form: dict[str, Any], name: str = "site") -> None:
    """Post the settings form (only the fields ``form`` names are shown) and apply."""
    response = await admin.post(f"/virtual-services/{name}", form)
    assert response.status_code == 303, _errors(response.text) or response.text[-2000:]
    assert response.headers["location"] == "/preview"
    applied = await admin.post("/preview/apply")
    assert applied.status_code == 303


def _shown(*names: str) -> dict[str, str]:
    return {"_fields": ",".join(names)}


def _errors(html: str) -> dict[str, str]:
    """The field errors of a page, unescaped (each was escaped: no '<' inside)."""
    found = re.findall(r'<p class="field-error" id="error-([^"]+)">([^<]*)</p>', html)
    return {name: unescape(text) for name, text in found}


async def _refused(
    admin: Browser,
    store: RevisionStore,
    form: dict[str, Any],
    check_html: Callable[[str], None],
    name: str = "site",
) -> tuple[dict[str, str], str]:
    """Post ``form``; it must come back (422) with field errors and change nothing."""
    before = store.head_number()
    response = await admin.post(f"/virtual-services/{name}", form)
    assert response.status_code == 422, response.text[-2000:]
    check_html(response.text)
    assert store.head_number() == before
    return _errors(response.text), response.text


# -- header operations ----------------------------------------------------------------------


def _rows(list_name: str, *rows: dict[str, str]) -> dict[str, str]:
    return {f"{list_name}[{i}].{k}": v for i, row in enumerate(rows) for k, v in row.items()}


async def test_header_operations_are_saved_in_order(
    admin: Browser, site: int, store: RevisionStore, check_html: Callable[[str], None]
) -> None:
    form = {
        **_shown("request_headers", "response_headers"),
        **_rows(
            "request_headers",
            {"op": "set", "name": "X-Env", "value": "prod"},
            {"op": "replace", "name": "Host", "regex": "^old\\.(.*)", "with": "new.\\1"},
            {"op": "add", "name": "X-Trace", "value": "1"},
        ),
        **_rows("response_headers", {"op": "delete", "name": "Server"}),
    }
    await _save(admin, form)
    stored = _stored(store)
    assert [given(op) for op in stored["request_headers"]] == [
        {"set": "X-Env", "value": "prod"},
        {"replace": "Host", "regex": "^old\\.(.*)", "replacement": "new.\\1"},
        {"add": "X-Trace", "value": "1"},
    ]
    assert [given(op) for op in stored["response_headers"]] == [{"delete": "Server"}]
    page = await admin.client.get("/virtual-services/site")
    check_html(page.text)
    assert 'name="request_headers[1].with" id="field-request_headers[1].with" value="new.\\1"' in (
        page.text
    )
    # a form that does not show the editors (another section) leaves them as they are
    await _save(admin, {**_shown("slow_start"), "slow_start": "5"})
    assert len(_stored(store)["request_headers"]) == 3
    # all rows deleted: no operation left
    await _save(admin, _shown("request_headers", "response_headers"))
    assert _stored(store)["request_headers"] == [] and _stored(store)["response_headers"] == []


async def test_a_bad_header_operation_is_refused_beside_its_input(
    admin: Browser, site: int, store: RevisionStore, check_html: Callable[[str], None]
) -> None:
    form = {
        **_shown("request_headers", "response_headers"),
        **_rows(
            "request_headers",
            {"op": "set", "name": "X-Ok", "value": "fine"},
            {"op": "replace", "name": "Host", "regex": "([a-z", "with": "x"},
            {"op": "add", "name": "bad name", "value": "v"},
            {"op": "set", "name": "X-Empty"},
        ),
    }
    errors, html = await _refused(admin, store, form, check_html)
    assert errors["request_headers[1].regex"].startswith("is not a valid regular expression")
    assert "letters, digits" in errors["request_headers[2].name"]
    assert errors["request_headers[3].value"] == "set needs one"
    assert 'value="([a-z"' in html and 'value="bad name"' in html  # what was typed stays
    assert _stored(store)["request_headers"] == []


async def test_the_rows_are_added_moved_and_deleted_with_what_was_typed(
    admin: Browser, site: int, check_html: Callable[[str], None]
) -> None:
    typed = {
        **_shown("request_headers", "response_headers"),
        **_rows(
            "request_headers",
            {"op": "set", "name": "X-A", "value": "1"},
            {"op": "delete", "name": "X-B"},
        ),
    }

    async def refresh(action: str) -> str:
        response = await admin.post("/virtual-services/site/fields", {**typed, "_rows": action})
        assert response.status_code == 200
        check_html(response.text)
        return response.text

    def names(html: str, list_name: str = "request_headers") -> list[str]:
        pattern = rf'name="{list_name}\[\d+\]\.name" id="[^"]+" value="([^"]*)"'
        return re.findall(pattern, html)

    assert names(await refresh("request_headers:up:1")) == ["X-B", "X-A"]
    assert names(await refresh("request_headers:down:0")) == ["X-B", "X-A"]
    assert names(await refresh("request_headers:delete:0")) == ["X-B"]
    added = await refresh("request_headers:add")
    assert names(added) == ["X-A", "X-B", ""]
    assert 'name="request_headers[2].value"' in added  # a new row is a set: it takes a value
    assert names(await refresh("response_headers:add"), "response_headers") == [""]
    # a row's operation decides its inputs: replace takes a regex and with, no value
    replaced = await refresh("")
    typed["request_headers[0].op"] = "replace"
    replaced = await refresh("")
    assert 'name="request_headers[0].regex"' in replaced
    assert 'name="request_headers[0].value"' not in replaced


async def test_header_values_and_regexes_are_escaped(
    admin: Browser, site: int, store: RevisionStore, check_html: Callable[[str], None]
) -> None:
    script = "<script>alert(1)</script>"
    regex = '^"it\'s"<b>$'
    await _save(
        admin,
        {
            **_shown("request_headers", "response_headers"),
            **_rows(
                "request_headers",
                {"op": "set", "name": "X-Note", "value": script},
                {"op": "replace", "name": "X-Quote", "regex": regex, "with": "ok"},
            ),
        },
    )
    assert _stored(store)["request_headers"][0]["value"] == script
    page = await admin.client.get("/virtual-services/site")
    check_html(page.text)
    assert script not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "&#34;it&#39;s&#34;&lt;b&gt;" in page.text
    # refused values are escaped too when they come back
    _, html = await _refused(
        admin,
        store,
        {**_shown("request_headers"), **_rows("request_headers", {"op": "add", "name": script})},
        check_html,
    )
    assert script not in html


async def test_the_header_editors_show_on_http_services_only(admin: Browser, site: int) -> None:
    http = await admin.client.get("/virtual-services/site")
    assert 'data-editor="request_headers"' in http.text
    assert 'data-editor="response_headers"' in http.text
    l4 = await admin.client.get("/virtual-services/dns")
    assert "data-editor=" not in l4.text
    # the type changed to generic on the page: the editors go, what was typed elsewhere stays
    swapped = await admin.post(
        "/virtual-services/site/fields",
        {**_shown("type", "request_headers"), "type": "generic", "port": "81"},
    )
    assert "data-editor=" not in swapped.text


# -- advanced properties: rewrite, timeouts, request log -------------------------------------


async def test_rewrite_path_timeouts_and_request_log(
    admin: Browser, site: int, store: RevisionStore, check_html: Callable[[str], None]
) -> None:
    names = ("rewrite_path.regex", "rewrite_path.with", "timeouts.idle", "timeouts.connect",
             "timeouts.server", "timeouts.queue", "request_log")  # fmt: skip
    await _save(
        admin,
        {**_shown(*names), "rewrite_path.regex": "^/old/(.*)", "rewrite_path.with": "/new/\\1",
         "timeouts.idle": "120", "timeouts.connect": "3", "timeouts.server": "",
         "timeouts.queue": "10"},
    )  # fmt: skip
    stored = _stored(store)
    assert stored["rewrite_path"] == {"regex": "^/old/(.*)", "replacement": "/new/\\1"}
    assert stored["timeouts"] == {"idle": 120, "connect": 3, "server": None, "queue": 10}
    assert stored["request_log"] is False  # the box left unticked
    page = await admin.client.get("/virtual-services/site")
    assert 'id="field-rewrite_path.with" value="/new/\\1"' in page.text
    assert 'id="field-timeouts.idle" value="120"' in page.text
    # emptied (a browser posts empty inputs as empty strings): no rewrite, no timeouts of the
    # service's own; the log on again
    await _save(admin, {**_shown(*names), **dict.fromkeys(names, ""), "request_log": "true"})
    stored = _stored(store)
    assert stored["rewrite_path"] is None and stored["timeouts"] is None
    assert stored["request_log"] is None  # on: the default for l7

    errors, _ = await _refused(
        admin,
        store,
        {**_shown(*names), "rewrite_path.regex": "[", "rewrite_path.with": "x",
         "timeouts.idle": "0"},
        check_html,
    )  # fmt: skip
    assert errors["rewrite_path.regex"].startswith("is not a valid regular expression")
    assert errors["rewrite_path.with"].startswith("must start with '/'")
    assert errors["timeouts.idle"] == "must be between 1 and 86400"


async def test_l7_options_are_not_shown_on_l4(admin: Browser, site: int) -> None:
    page = await admin.client.get("/virtual-services/dns")
    for name in (
        "timeouts.idle",
        "request_log",
        "rewrite_path.regex",
        "cache.enabled",
        "compression.enabled",
        "authentication.enabled",
        "limits.per_client.requests_per_second",
        "limits.response.code",
    ):
        assert f'id="field-{name}"' not in page.text, name
    for name in (
        "limits.max_connections",
        "limits.per_client.connections",
        "access.allow",
        "not_available.kind",
    ):
        assert f'id="field-{name}"' in page.text, name
    kinds = re.search(r'<select name="not_available.kind".*?</select>', page.text, re.S)
    assert kinds is not None
    assert re.findall(r'<option value="([^"]*)"', kinds[0]) == ["", "sorry_server"]


# -- not available ------------------------------------------------------------------------


async def test_each_not_available_choice(
    admin: Browser, site: int, store: RevisionStore, check_html: Callable[[str], None]
) -> None:
    shown = ("not_available.kind", "not_available.sorry_server.address",
             "not_available.sorry_server.port", "not_available.respond.code",
             "not_available.respond.body_file", "not_available.respond.body",
             "not_available.redirect")  # fmt: skip
    await _save(
        admin,
        {**_shown(*shown), "not_available.kind": "sorry_server",
         "not_available.sorry_server.address": "198.18.0.20",
         "not_available.sorry_server.port": "80"},
    )  # fmt: skip
    assert given(_stored(store)["not_available"]) == {
        "sorry_server": {"address": "198.18.0.20", "port": 80}
    }
    # a page of the page store: the sorry server is gone, no default text either
    page = await admin.client.get("/virtual-services/site")
    assert '<option value="maintenance">maintenance</option>' not in page.text  # not shown yet
    swapped = await admin.post(
        "/virtual-services/site/fields", {**_shown(*shown), "not_available.kind": "respond"}
    )
    assert '<option value="maintenance">maintenance</option>' in swapped.text
    await _save(
        admin,
        {**_shown(*shown), "not_available.kind": "respond", "not_available.respond.code": "503",
         "not_available.respond.body_file": "maintenance"},
    )  # fmt: skip
    assert given(_stored(store)["not_available"]) == {
        "respond": {"code": 503, "body_file": "maintenance"}
    }
    await _save(
        admin,
        {**_shown(*shown), "not_available.kind": "respond", "not_available.respond.code": "200",
         "not_available.respond.body": "Closed for lunch"},
    )  # fmt: skip
    assert given(_stored(store)["not_available"]) == {
        "respond": {"code": 200, "body": "Closed for lunch"}
    }
    await _save(
        admin,
        {**_shown(*shown), "not_available.kind": "redirect",
         "not_available.redirect": "https://status.example.com/"},
    )  # fmt: skip
    assert given(_stored(store)["not_available"]) == {"redirect": "https://status.example.com/"}
    page = await admin.client.get("/virtual-services/site")
    assert 'id="field-not_available.redirect" value="https://status.example.com/"' in page.text
    await _save(admin, {**_shown(*shown), "not_available.kind": ""})
    assert _stored(store)["not_available"] is None

    errors, _ = await _refused(
        admin,
        store,
        {**_shown(*shown), "not_available.kind": "respond", "not_available.respond.code": "99"},
        check_html,
    )
    assert errors["not_available.respond.code"].startswith("must be an HTTP status")
    errors, _ = await _refused(
        admin,
        store,
        {**_shown(*shown), "not_available.kind": "sorry_server",
         "not_available.sorry_server.address": "nowhere", "not_available.sorry_server.port": "0"},
        check_html,
    )  # fmt: skip
    assert "not_available.sorry_server.address" in errors
    assert "not_available.sorry_server.port" in errors


# -- access, limits -----------------------------------------------------------------------


async def test_access_lists_are_picked_by_name(
    admin: Browser, site: int, store: RevisionStore
) -> None:
    page = await admin.client.get("/virtual-services/site")
    assert 'name="access.allow" value="office"' in page.text
    assert 'name="access.deny" value="blocked"' in page.text
    await admin_post_access(admin, allow=["office"], deny=["blocked"])
    assert _stored(store)["access"] == {"allow": ["office"], "deny": ["blocked"]}
    page = await admin.client.get("/virtual-services/site")
    assert 'name="access.allow" value="office" checked' in page.text
    await admin_post_access(admin, allow=[], deny=[])
    assert _stored(store)["access"] is None


async def admin_post_access(admin: Browser, *, allow: list[str], deny: list[str]) -> None:
    response = await admin.client.post(
        "/virtual-services/site",
        data={"csrf_token": admin.csrf, **_shown("access.allow", "access.deny"),
              "access.allow": allow, "access.deny": deny},
    )  # fmt: skip
    assert response.status_code == 303, _errors(response.text)
    assert (await admin.post("/preview/apply")).status_code == 303


LIMITS = ("limits.max_connections", "limits.connections_per_second",
          "limits.per_client.connections", "limits.per_client.connections_per_second",
          "limits.per_client.requests_per_second", "limits.response.code",
          "limits.response.retry_after", "limits.exempt")  # fmt: skip


async def test_limits_are_saved_and_refused_beside_their_fields(
    admin: Browser, site: int, store: RevisionStore, check_html: Callable[[str], None]
) -> None:
    await _save(
        admin,
        {**_shown(*LIMITS), "limits.max_connections": "10000",
         "limits.connections_per_second": "500", "limits.per_client.connections": "50",
         "limits.per_client.requests_per_second": "20", "limits.response.code": "503",
         "limits.response.retry_after": "10", "limits.exempt": "office"},
    )  # fmt: skip
    assert given(_stored(store)["limits"]) == {
        "max_connections": 10000,
        "connections_per_second": 500,
        "per_client": {"connections": 50, "requests_per_second": 20},
        "response": {"code": 503, "retry_after": 10},
        "exempt": ["office"],
    }
    page = await admin.client.get("/virtual-services/site")
    assert 'data-action="limits"' in page.text  # per-client limits: the limits view is linked
    errors, _ = await _refused(
        admin,
        store,
        {**_shown(*LIMITS), "limits.max_connections": "0", "limits.per_client.connections": "-1",
         "limits.response.code": "429"},
        check_html,
    )  # fmt: skip
    assert errors == {
        "limits.max_connections": "must be between 1 and 10000000",
        "limits.per_client.connections": "must be between 1 and 10000000",
    }
    # nothing asked: no limits at all
    await _save(admin, {**_shown(*LIMITS), "limits.response.code": "429"})
    assert _stored(store)["limits"] is None


async def test_l4_limits_take_what_l4_takes(
    admin: Browser, site: int, store: RevisionStore
) -> None:
    shown = [n for n in LIMITS if "requests" not in n and "response" not in n]
    await _save(
        admin,
        {**_shown(*shown), "limits.per_client.connections": "5", "limits.exempt": "office"},
        name="dns",
    )
    assert given(_stored(store, "dns")["limits"]) == {
        "per_client": {"connections": 5},
        "response": {"code": 429},
        "exempt": ["office"],
    }


# -- cache, compression, authentication --------------------------------------------------------

CACHE = ("cache.enabled", "cache.size_mb", "cache.max_object_kb", "cache.max_age",
         "cache.x_cache_header")  # fmt: skip
COMPRESSION = ("compression.enabled", "compression.types", "compression.algorithms")
AUTHENTICATION = ("authentication.enabled", "authentication.realm", "authentication.users")


async def test_cache_and_compression(
    admin: Browser, site: int, store: RevisionStore, check_html: Callable[[str], None]
) -> None:
    page = await admin.client.get("/virtual-services/site")
    assert 'id="field-cache.enabled"' in page.text
    assert 'id="field-cache.size_mb"' not in page.text  # off: its settings are not shown
    switched = await admin.post(
        "/virtual-services/site/fields", {**_shown("cache.enabled"), "cache.enabled": "true"}
    )
    assert 'id="field-cache.size_mb" value="64"' in switched.text  # the model's defaults
    await _save(
        admin,
        {**_shown(*CACHE, *COMPRESSION), "cache.enabled": "true", "cache.size_mb": "256",
         "cache.max_object_kb": "1024", "cache.max_age": "60", "cache.x_cache_header": "true",
         "compression.enabled": "true", "compression.types": "text/html, application/json",
         "compression.algorithms": "gzip"},
    )  # fmt: skip
    stored = _stored(store)
    assert stored["cache"] == {
        "size_mb": 256,
        "max_object_kb": 1024,
        "max_age": 60,
        "x_cache_header": True,
    }
    assert stored["compression"] == {
        "types": ["text/html", "application/json"],
        "algorithms": ["gzip"],
    }
    page = await admin.client.get("/virtual-services/site")
    check_html(page.text)
    assert 'data-action="purge-cache"' in page.text

    errors, _ = await _refused(
        admin,
        store,
        {**_shown(*CACHE, *COMPRESSION), "cache.enabled": "true", "cache.size_mb": "1",
         "cache.max_object_kb": "1000", "cache.max_age": "60",
         "compression.enabled": "true", "compression.types": "text, <b>x</b>",
         "compression.algorithms": "gzip"},
        check_html,
    )  # fmt: skip
    assert errors["cache.max_object_kb"].startswith("must be at most half of size_mb")
    assert "'text' is not a media type" in errors["compression.types"]
    assert "'<b>x</b>' is not a media type" in errors["compression.types"]  # escaped: one <p>
    # switched off: gone from the document
    await _save(admin, _shown(*CACHE, *COMPRESSION))
    assert _stored(store)["cache"] is None and _stored(store)["compression"] is None


async def test_authentication_picks_users_of_the_store(
    admin: Browser, site: int, store: RevisionStore, check_html: Callable[[str], None]
) -> None:
    switched = await admin.post(
        "/virtual-services/site/fields",
        {**_shown("authentication.enabled"), "authentication.enabled": "true"},
    )
    assert 'name="authentication.users" value="ops"' in switched.text
    assert 'name="authentication.users" value="dev"' in switched.text
    response = await admin.client.post(
        "/virtual-services/site",
        data={"csrf_token": admin.csrf, **_shown(*AUTHENTICATION),
              "authentication.enabled": "true", "authentication.realm": "Operations",
              "authentication.users": ["ops", "dev"]},
    )  # fmt: skip
    assert response.status_code == 303, _errors(response.text)
    assert (await admin.post("/preview/apply")).status_code == 303
    assert _stored(store)["authentication"] == {"realm": "Operations", "users": ["ops", "dev"]}

    errors, html = await _refused(
        admin,
        store,
        {**_shown(*AUTHENTICATION), "authentication.enabled": "true",
         "authentication.realm": 'say "<script>"'},
        check_html,
    )  # fmt: skip
    assert "authentication.realm" in errors and "authentication.users" in errors
    assert "<script>" not in html


async def test_http_groups_are_not_shown_on_a_generic_service(admin: Browser, site: int) -> None:
    swapped = await admin.post(
        "/virtual-services/site/fields", {**_shown("type"), "type": "generic"}
    )
    for name in (
        "cache.enabled",
        "compression.enabled",
        "authentication.enabled",
        "rewrite_path.regex",
        "limits.per_client.requests_per_second",
    ):
        assert f'id="field-{name}"' not in swapped.text, name
    assert 'id="field-limits.per_client.connections"' in swapped.text


# -- purge, limits view, sub-service tab ----------------------------------------------------------


async def test_purge_cache(
    admin: Browser,
    operator: Browser,
    viewer: Browser,
    site: int,
    engine: CachingEngine,
    audit: AuditService,
) -> None:
    none = await operator.post("/virtual-services/site/cache/purge")
    assert none.status_code == 303
    page = await operator.client.get("/virtual-services/site")
    assert "has no cache" in page.text and engine.purged == []

    await _save(admin, {**_shown(*CACHE), "cache.enabled": "true", "cache.size_mb": "64",
                        "cache.max_object_kb": "1024", "cache.max_age": "60"})  # fmt: skip
    page = await viewer.client.get("/virtual-services/site")
    assert 'data-action="purge-cache"' not in page.text  # a viewer may not: not offered
    refused = await viewer.post("/virtual-services/site/cache/purge")
    assert refused.status_code == 403
    no_token = await operator.client.post("/virtual-services/site/cache/purge")
    assert no_token.status_code == 403 and engine.purged == []

    purged = await operator.post("/virtual-services/site/cache/purge")
    assert purged.status_code == 303
    assert purged.headers["location"] == "/virtual-services/site"
    assert engine.purged == ["site"]
    page = await operator.client.get("/virtual-services/site")
    assert "The cache of site was purged." in page.text
    entries, _ = audit.page(0, 10, action="cache.purge")
    assert [(e.actor, e.target) for e in entries] == [("olivia", "site")]

    # a sub-service's own cache, from its tab
    tab = "/virtual-services/site/sub-services/api"
    assert 'data-action="purge-cache"' not in (await operator.client.get(tab)).text
    cache = {"cache.enabled": "true", "cache.size_mb": "16", "cache.max_object_kb": "256",
             "cache.max_age": "30"}  # fmt: skip
    await _save(admin, {**_shown(*CACHE), **cache}, name="site/sub-services/api")
    page = await operator.client.get(tab)
    assert f'action="{tab}/cache/purge"' in page.text
    assert 'data-action="purge-cache"' not in (await viewer.client.get(tab)).text
    assert (await viewer.post(f"{tab}/cache/purge")).status_code == 403
    purged = await operator.post(f"{tab}/cache/purge")
    assert purged.status_code == 303 and purged.headers["location"] == tab
    assert engine.purged == ["site", "site/api"]
    assert "The cache of site/api was purged." in (await operator.client.get(tab)).text
    missing = await operator.post("/virtual-services/site/sub-services/nope/cache/purge")
    assert missing.status_code == 303 and engine.purged == ["site", "site/api"]


async def test_limits_view(admin: Browser, viewer: Browser, site: int) -> None:
    none = await viewer.client.get("/virtual-services/site/limits")
    assert none.status_code == 200 and "has no per-client limits" in none.text
    await _save(admin, {**_shown(*LIMITS), "limits.per_client.requests_per_second": "20",
                        "limits.response.code": "429"})  # fmt: skip
    page = await viewer.client.get("/virtual-services/site/limits")
    assert page.status_code == 200
    assert 'data-client="198.18.0.9" data-limited="true"' in page.text
    assert 'data-client="198.18.0.10" data-limited="false"' in page.text
    live = await viewer.client.get(
        "/virtual-services/site/limits/live", headers={"HX-Request": "true"}
    )
    assert live.status_code == 200 and live.text.lstrip().startswith("<section")
    assert 'hx-trigger="every 2s"' in live.text
    assert (await viewer.client.get("/virtual-services/nope/limits")).status_code == 404


async def test_sub_service_tab_status_is_live(
    admin: Browser, site: int, engine: CachingEngine
) -> None:
    page = await admin.client.get("/virtual-services/site/sub-services/api")
    assert 'hx-get="/virtual-services/site/sub-services/api/live"' in page.text
    assert 'data-tab="api"' in page.text and "status-up" in page.text
    engine.set_health("site/api", "198.18.0.5:80", "down")
    live = await admin.client.get(
        "/virtual-services/site/sub-services/api/live", headers={"HX-Request": "true"}
    )
    assert live.status_code == 200
    assert 'id="sub-service-status"' in live.text and 'data-status="down"' in live.text
    # the tabs come along, swapped out of band, with the sub-service's status now
    tabs = live.text[live.text.index('<nav class="tabs service-tabs"') :]
    assert 'hx-swap-oob="true"' in tabs and "status-down" in tabs
    service_live = await admin.client.get(
        "/virtual-services/site/live", headers={"HX-Request": "true"}
    )
    assert 'id="service-tabs" hx-swap-oob="true"' in service_live.text
    assert 'data-tab="api"' in service_live.text
    missing = await admin.client.get("/virtual-services/site/sub-services/nope/live")
    assert missing.status_code == 404


async def test_errors_of_a_whole_group_name_it(
    admin: Browser, site: int, store: RevisionStore, check_html: Callable[[str], None]
) -> None:
    await _save(admin, {**_shown(*CACHE), "cache.enabled": "true", "cache.size_mb": "64",
                        "cache.max_object_kb": "1024", "cache.max_age": "60"})  # fmt: skip
    # the type changed to generic: the cache is not shown any more, its error is above the form
    _, html = await _refused(admin, store, {**_shown("type"), "type": "generic"}, check_html)
    assert "cache: reads HTTP responses: it needs an l7 service of type http" in html
    # limits on a DSR service: beside the limits' first input, which the form shows
    errors, _ = await _refused(
        admin,
        store,
        {**_shown("forwarding", *LIMITS[:5], "limits.exempt"), "forwarding": "dsr",
         "limits.max_connections": "10"},
        check_html,
        name="dns",
    )  # fmt: skip
    assert errors["limits.max_connections"].startswith("needs connection tracking")
