"""Content rules, sub-services, header rules and "not available" end to end (issue 12).

One topology and one daemon serve the module. The service ``site`` (port 80) and its twin
``secure`` (HTTPS on 443, the same rules over SSL offload) route by every match kind to the
default pool (rs1) and the sub-services ``api`` (rs2, rs3) and ``static`` (rs3); requests are
sent with curl from the client namespace and the real servers echo what they received. Three
more services answer when no real server is up: a sorry server, a text, a page of the page
store (``bascule page add``), a redirect.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from daemon import BasculeDaemon
from netns import Topology, require_root
from tls_material import Material
from waiting import answered, wait_until

pytestmark = pytest.mark.integration

CHECK = {"type": "http", "path": "/health", "interval": 1, "rise": 1, "fall": 1}
HOST = "site.test"
# A page of the page store (not_available.respond.body_file): UTF-8, HTML
PAGE = "<!doctype html>\n<h1>Back soon — l'équipe</h1>\n"
REDIRECT_CODES = (301, 302, 307, 308)

RULES: list[dict[str, Any]] = [
    # order: the more specific /api/default/ rule comes first and keeps the default pool
    {
        "name": "api-default",
        "match": {"path_prefix": "/api/default/"},
        "action": {"use_default": True},
    },
    {"name": "api", "match": {"path_prefix": "/api/"}, "action": {"use": "api"}},
    {"name": "static-host", "match": {"host": "static.test"}, "action": {"use": "static"}},
    {"name": "cdn", "match": {"host_suffix": "cdn.test"}, "action": {"use": "static"}},
    {"name": "exact", "match": {"path": "/exact"}, "action": {"respond": 200, "body": "exact"}},
    {
        "name": "regex",
        "match": {"path_regex": "^/re/[0-9]+$"},
        "action": {"respond": 200, "body": "regex it's 100%[src]"},
    },
    {
        "name": "hdr",
        "match": {"header": {"name": "X-Route", "value": "api"}},
        "action": {"use": "api"},
    },
    {
        "name": "hdr-regex",
        "match": {"header": {"name": "X-Route", "regex": "^st.*"}},
        "action": {"use": "static"},
    },
    {"name": "query", "match": {"query": {"name": "to", "value": "api"}}, "action": {"use": "api"}},
    {"name": "no-delete", "match": {"method": "DELETE"}, "action": {"respond": 405}},
    {
        "name": "private",
        "match": {"source": "198.18.0.0/24", "path_prefix": "/private/"},
        "action": {"respond": 403, "body": "private"},
    },
    {
        "name": "legacy",
        "match": {"path_prefix": "/v1/"},
        "action": {"use": "api"},
        "rewrite_path": {"regex": "^/v1/(.*)", "with": "/echo/v2/\\1"},
    },
    *(
        {
            "name": f"go{code}",
            "match": {"path": f"/go{code}"},
            "action": {"redirect": "https://new.test/%[src]", "code": code},
        }
        for code in REDIRECT_CODES
    ),
    # negate: every host but the canonical one is sent there (last: it catches the rest)
    {
        "name": "canonical",
        "match": {"host": HOST, "negate": True},
        "action": {"redirect": f"http://{HOST}/", "code": 301},
    },
]


def routed(topology: Topology, **fields: Any) -> dict[str, Any]:
    rs1, rs2, rs3 = topology.real_servers
    return {
        "address": topology.vip(),
        "check": CHECK,
        "real_servers": [{"address": rs1.address, "port": 80}],
        "sub_services": [
            {
                "name": "api",
                "scheduler": "round_robin",
                "persistence": {"method": "active_cookie", "cookie": "API"},
                "check": {"path": "/health"},
                "real_servers": [
                    {"address": rs2.address, "port": 80},
                    {"address": rs3.address, "port": 80},
                ],
            },
            {"name": "static", "real_servers": [{"address": rs3.address, "port": 80}]},
        ],
        "rules": RULES,
        "request_headers": [
            {"set": "X-Env", "value": "prod %[src]"},
            {"add": "X-Added", "value": "one"},
            {"delete": "X-Remove"},
            {"replace": "X-Replace", "regex": "^old-(.*)", "with": "new-\\1"},
        ],
        "response_headers": [
            {"delete": "X-Client-Address"},
            {"set": "X-Frame-Options", "value": "DENY"},
        ],
        "rewrite_path": {"regex": "^/old/(.*)", "with": "/echo/new/\\1"},
        "forwarded": "both",
        **fields,
    }


def down_service(topology: Topology, name: str, port: int, **not_available: Any) -> dict[str, Any]:
    """A service whose only real server (rs1:81) answers only once a test starts it."""
    return {
        "name": name,
        "address": topology.vip(),
        "port": port,
        "check": CHECK,
        "real_servers": [{"address": topology.real_servers[0].address, "port": 81}],
        "not_available": not_available,
    }


# forwarded: each way to tell the real servers who the client is, a service of its own
FORWARDED_PORTS = {"x_forwarded_for": 8090, "via": 8091, "none": 8092}


def forwarding(topology: Topology, how: str, port: int) -> dict[str, Any]:
    return {
        "name": f"fwd-{how.replace('_', '-')}",
        "address": topology.vip(),
        "port": port,
        "forwarded": how,
        "check": CHECK,
        "real_servers": [{"address": topology.real_servers[0].address, "port": 80}],
    }


def document(topology: Topology) -> dict[str, Any]:
    rs3 = topology.real_servers[2]
    return {
        "virtual_services": [
            routed(topology, name="site", port=80),
            routed(topology, name="secure", port=443, type="https", tls={"certificates": ["site"]}),
            down_service(
                topology, "sorry", 8080, sorry_server={"address": rs3.address, "port": 80}
            ),
            down_service(topology, "page", 8081, respond={"code": 503, "body": "maintenance"}),
            down_service(topology, "moved", 8082, redirect="https://status.test/"),
            down_service(topology, "closed", 8083, respond={"code": 503, "body_file": "maint"}),
            *(forwarding(topology, how, port) for how, port in FORWARDED_PORTS.items()),
        ]
    }


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str

    @property
    def server(self) -> str:
        return self.headers.get("x-server", "")

    def echo(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body)
        return result


@dataclass
class Site:
    topology: Topology
    daemon: BasculeDaemon

    def get(
        self, path: str, *args: str, host: str = HOST, port: int = 80, scheme: str = "http"
    ) -> Answer:
        """One request with curl from the client namespace (no redirect followed)."""
        vip = self.topology.vip()
        url = f"{scheme}://{host}:{port}{path}"
        curl = ["curl", "-sS", "-i", "-k", "--max-time", "10", "--resolve", f"{host}:{port}:{vip}"]
        done = self.topology.run(
            "client",
            [*curl, *args, url],
            check=False,
        )
        assert done.returncode == 0, done.stderr
        head, _, body = done.stdout.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return Answer(status=int(lines[0].split()[1]), headers=headers, body=body)


def services(daemon: BasculeDaemon) -> dict[str, Any]:
    return {s["name"]: s for s in daemon.status()["virtual_services"]}


@pytest.fixture(scope="module")
def site(_stale_namespaces_removed: None) -> Iterator[Site]:
    require_root()
    with Topology(real_servers=3) as topology:
        assert topology.workdir is not None
        material = Material.make(topology.workdir / "pki")
        topology.start_real_servers()
        daemon = BasculeDaemon(topology)
        try:
            daemon.start()
            daemon.cli(
                "cert", "add", "site", "--cert", str(material.pem("shop")),
                "--key", str(material.key("shop")),
            )  # fmt: skip
            page = topology.workdir / "maint.html"
            page.write_text(PAGE, encoding="utf-8")
            daemon.cli("page", "add", "maint", "--file", str(page))
            daemon.apply(document(topology))

            def all_up() -> bool:
                seen = services(daemon)
                return all(
                    seen[name]["up"] == 1
                    and [s["up"] for s in seen[name]["sub_services"]] == [2, 1]
                    for name in ("site", "secure")
                )

            wait_until("site and secure with every pool up", all_up, timeout=30)
            yield Site(topology=topology, daemon=daemon)
        finally:
            if daemon.process is not None and daemon.process.poll() is None:
                daemon.terminate()
            daemon.stop_haproxy()
            shutil.rmtree(daemon.data_dir, ignore_errors=True)


@pytest.mark.parametrize(("scheme", "port"), [("http", 80), ("https", 443)])
def test_every_match_kind_routes_to_its_pool(site: Site, scheme: str, port: int) -> None:
    def server(path: str, *args: str, host: str = HOST) -> str:
        answer = site.get(path, *args, host=host, port=port, scheme=scheme)
        assert answer.status == 200 and answer.server, (path, answer)
        return answer.server

    assert server("/") == "rs1"  # no rule matches: the default pool
    assert server("/api/x") in {"rs2", "rs3"}  # path_prefix -> api
    assert server("/api/default/x") == "rs1"  # an earlier rule (use_default) wins
    assert server("/", host="static.test") == "rs3"  # host
    assert server("/", host="img.cdn.test") == "rs3"  # host_suffix, a name under it
    assert server("/", host="cdn.test") == "rs3"  # host_suffix, the domain itself
    assert server("/", "-H", "X-Route: api") in {"rs2", "rs3"}  # header value
    assert server("/", "-H", "X-Route: static") == "rs3"  # header regex
    assert server("/?to=api") in {"rs2", "rs3"}  # query
    assert server("/?to=apix") == "rs1"


@pytest.mark.parametrize(("scheme", "port"), [("http", 80), ("https", 443)])
def test_answers_redirects_and_negation(site: Site, scheme: str, port: int) -> None:
    def get(path: str, *args: str, host: str = HOST) -> Answer:
        return site.get(path, *args, host=host, port=port, scheme=scheme)

    assert (get("/exact").status, get("/exact").body) == (200, "exact")
    assert get("/exact/no").server == "rs1"  # path is exact
    regex = get("/re/42")
    # the body is printed as written: quote and '%' reach the client untouched
    assert (regex.status, regex.body) == (200, "regex it's 100%[src]")
    assert get("/re/4x").server == "rs1"
    assert get("/", "-X", "DELETE").status == 405  # method
    private = get("/private/a")  # source (the client is 198.18.0.10) and path, both hold
    assert (private.status, private.body) == (403, "private")
    for code in REDIRECT_CODES:
        moved = get(f"/go{code}")
        assert moved.status == code
        # the location is literal: %[src] is not evaluated
        assert moved.headers["location"] == "https://new.test/%[src]"
    other = get("/any", host="other.test")  # negate: a host other than site.test
    assert (other.status, other.headers["location"]) == (301, f"http://{HOST}/")


@pytest.mark.parametrize(("scheme", "port"), [("http", 80), ("https", 443)])
def test_headers_rewrites_and_forwarded(site: Site, scheme: str, port: int) -> None:
    answer = site.get(
        "/echo",
        "-H", "X-Remove: secret", "-H", "X-Replace: old-value", "-H", "X-Env: client",
        port=port, scheme=scheme,
    )  # fmt: skip
    seen = answer.echo()["headers"]
    assert seen["x-env"] == "prod %[src]"  # set replaces the client's, literally
    assert seen["x-added"] == "one"
    assert "x-remove" not in seen
    assert seen["x-replace"] == "new-value"
    assert seen["x-forwarded-for"] == "198.18.0.10"  # forwarded: both
    assert seen["via"].endswith(" bascule")
    assert "x-client-address" not in answer.headers  # response_headers delete
    assert answer.headers["x-frame-options"] == "DENY"
    # the service's rewrite_path, and a rule's own (which also picks the api pool)
    assert site.get("/old/page", port=port, scheme=scheme).echo()["path"] == "/echo/new/page"
    legacy = site.get("/v1/users", port=port, scheme=scheme).echo()
    assert (legacy["path"], legacy["server"] in {"rs2", "rs3"}) == ("/echo/v2/users", True)


@pytest.mark.parametrize(
    ("how", "xff", "via"),
    [("x_forwarded_for", True, False), ("via", False, True), ("none", False, False)],
)
def test_forwarded_tells_the_servers_what_it_says(
    site: Site, how: str, xff: bool, via: bool
) -> None:
    name = f"fwd-{how.replace('_', '-')}"
    wait_until(f"{name} up", lambda: services(site.daemon)[name]["up"] == 1, timeout=15)
    seen = site.get("/echo", port=FORWARDED_PORTS[how]).echo()["headers"]
    assert (seen.get("x-forwarded-for") == site.topology.client.address) is xff, seen
    assert ("x-forwarded-for" in seen) is xff, seen
    assert seen.get("via", "").endswith(" bascule") is via, seen


def test_sub_service_schedules_persists_and_drains_at_runtime(site: Site) -> None:
    first = {site.get("/api/echo").server for _ in range(6)}
    assert first == {"rs2", "rs3"}  # round robin over the sub-service's own servers
    # active_cookie persistence of the sub-service: the cookie keeps the client on one server
    cookie = site.get("/api/echo").headers["set-cookie"].split(";")[0]
    kept = {site.get("/api/echo", "-H", f"Cookie: {cookie}").server for _ in range(6)}
    assert len(kept) == 1
    workers = site.daemon.worker_pids()
    rs2 = site.topology.real_servers[1].address
    site.daemon.cli("rs", "drain", "site/api", f"{rs2}:80")
    try:
        wait_until(
            "rs2 of site/api drained",
            lambda: "rs2" not in {site.get("/api/echo").server for _ in range(4)},
        )
        status = services(site.daemon)["site"]["sub_services"][0]
        assert status["name"] == "site/api"
        assert {s["key"]: s["status"] for s in status["real_servers"]}[f"{rs2}:80"] == "drain"
        assert site.daemon.worker_pids() == workers  # a runtime change: no reload
    finally:
        site.daemon.cli("rs", "enable", "site/api", f"{rs2}:80")


@pytest.mark.parametrize(
    ("port", "expect"),
    [
        (8080, lambda a: a.status == 200 and a.server == "rs3"),  # the sorry server answers
        (8081, lambda a: (a.status, a.body) == (503, "maintenance")),
        (8082, lambda a: a.status == 302 and a.headers["location"] == "https://status.test/"),
        (
            8083,
            lambda a: (
                (a.status, a.body, a.headers["content-type"])
                == (503, PAGE, "text/html; charset=utf-8")
            ),
        ),
    ],
    ids=["sorry_server", "respond", "redirect", "respond_page"],
)
def test_not_available_until_a_real_server_returns(site: Site, port: int, expect: Any) -> None:
    name = {8080: "sorry", 8081: "page", 8082: "moved", 8083: "closed"}[port]
    wait_until(f"{name} reported sorry", lambda: services(site.daemon)[name]["status"] == "sorry")
    assert expect(site.get("/", port=port))
    rs1 = site.topology.real_servers[0]
    server = site.topology.start_real_server(rs1, port=81)
    try:
        wait_until(f"{name} up", lambda: services(site.daemon)[name]["status"] == "up", timeout=15)
        back = site.get("/", port=port)
        assert (back.status, back.server) == (200, "rs1")
    finally:
        site.topology.stop(server)
    wait_until(f"{name} sorry again", lambda: services(site.daemon)[name]["status"] == "sorry")


def test_the_page_store_refuses_what_it_cannot_serve(site: Site) -> None:
    """A page in use is not deleted; a document naming a missing page is refused on its
    field; a page that is not UTF-8 text, or too large, is refused on ``content``."""
    daemon, workdir = site.daemon, site.topology.workdir
    assert workdir is not None
    listed = daemon.cli_json("page", "list")["items"]
    assert [(p["name"], p["used_by"]) for p in listed] == [("maint", ["closed"])]
    assert daemon.cli("page", "show", "maint").stdout == PAGE
    refused = daemon.cli("page", "delete", "maint", check=False)
    assert refused.returncode != 0 and "used by virtual service closed" in refused.stderr
    head = daemon.cli_json("history")
    changed = document(site.topology)
    names = [vs["name"] for vs in changed["virtual_services"]]
    closed = names.index("closed")
    changed["virtual_services"][closed]["not_available"]["respond"]["body_file"] = "nowhere"
    refused = daemon.apply(changed, check=False)
    assert refused.returncode != 0
    assert f"virtual_services[{closed}].not_available.respond.body_file" in refused.stderr
    assert "no page nowhere in the page store" in refused.stderr
    assert daemon.cli_json("history") == head  # nothing committed
    for name, content in (
        ("binary", b"\x89PNG\r\n\x1a\n"),
        ("controls", b"<h1>a\x1b[31mb</h1>"),
        ("large", b"x" * (12 * 1024 + 1)),
    ):
        path = workdir / f"{name}.html"
        path.write_bytes(content)
        refused = daemon.cli("page", "add", name, "--file", str(path), check=False)
        assert refused.returncode != 0, name
    assert refused.returncode != 0 and "content" in refused.stderr
    for bad in ("../x", "X", "a'b"):
        refused = daemon.cli("page", "add", bad, "--file", str(workdir / "maint.html"), check=False)
        assert refused.returncode != 0 and "name" in refused.stderr
    assert [p["name"] for p in daemon.cli_json("page", "list")["items"]] == ["maint"]


def test_a_100_rule_change_under_load_fails_no_request(
    make_topology: Callable[..., Topology],
) -> None:
    """The change reloads HAProxy (seamlessly): two clients, one opening a connection per
    request and one reusing its connection, see no failure; the rules then route."""
    topology = make_topology(real_servers=2)
    rs1, rs2 = topology.real_servers
    assert topology.workdir is not None
    topology.start_real_servers()
    daemon = BasculeDaemon(topology).start()
    vip = topology.vip()
    service: dict[str, Any] = {
        "name": "site",
        "address": vip,
        "port": 80,
        "check": CHECK,
        "real_servers": [{"address": rs1.address, "port": 80}],
        "sub_services": [{"name": "api", "real_servers": [{"address": rs2.address, "port": 80}]}],
    }
    stop = topology.workdir / "load.stop"
    progress = {kind: topology.workdir / f"{kind}.progress" for kind in ("new", "keepalive")}
    common = ["--url", f"http://{vip}/", "--duration", "120", "--stop-file", str(stop)]
    common += ["--rate", "50", "--timeout", "5"]
    try:
        daemon.apply({"virtual_services": [service]})
        wait_until("site up", lambda: services(daemon)["site"]["up"] == 1, timeout=20)
        clients = {
            "new": topology.start_client(
                *common, "--new-connection", "--progress-file", str(progress["new"])
            ),
            "keepalive": topology.start_client(
                *common, "--keepalive", "--no-retry-stale",
                "--progress-file", str(progress["keepalive"]),
            ),
        }  # fmt: skip

        def answered_at_least(count: int) -> bool:
            return all(answered(path) >= count for path in progress.values())

        wait_until("traffic flowing", lambda: answered_at_least(50), timeout=20)
        rules = [
            {"name": f"r{n}", "match": {"path_prefix": f"/p{n}/"}, "action": {"use": "api"}}
            for n in range(100)
        ]
        daemon.apply({"virtual_services": [{**service, "rules": rules}]})
        wait_until("sub-service up", lambda: services(daemon)["site"]["sub_services"][0]["up"] == 1)
        done = {kind: answered(path) for kind, path in progress.items()}
        wait_until(
            "traffic after the change",
            lambda: all(answered(progress[k]) >= n + 50 for k, n in done.items()),
            timeout=20,
        )
        stop.touch()
        for kind, client in clients.items():
            result = topology.finish_client(client, timeout=60)
            assert result["failures"] == 0, (kind, result["errors"])
            assert result["stale_retries"] == 0, (kind, result)
        site = Site(topology=topology, daemon=daemon)
        assert site.get("/p57/x").server == "rs2"
        assert site.get("/p100/x").server == "rs1"
    finally:
        daemon.terminate()
