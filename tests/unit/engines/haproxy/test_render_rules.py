"""Content rules, sub-services, header operations and "not available" rendered for HAProxy.

Golden files per kind (tests/golden/haproxy/rules/), each accepted by the real ``haproxy -c``;
the translation tables cover their enums; no new field can inject configuration (control
characters refused by the model, everything else quoted: the nasty document renders exactly
the directives of a harmless one, and HAProxy accepts it); generated rule sets always render a
configuration HAProxy accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bascule.engines.haproxy.content import HEADER_ACTIONS, MATCHES
from bascule.engines.haproxy.quoting import quote
from bascule.engines.haproxy.render import render
from bascule.engines.haproxy.servers import SEND_PROXY
from bascule.engines.haproxy.view import HaproxyGlobals, build_view
from bascule.errors import InvalidConfiguration
from bascule.model import parse_document
from bascule.model.capabilities import HeaderOperationKind, MatchKind, ProxyProtocol

GLOBALS = HaproxyGlobals(stats_socket="/run/bascule/haproxy.sock", maxconn=4096, nbthread=2)
API = {
    "name": "api",
    "scheduler": "least_connection",
    "persistence": {"method": "active_cookie", "cookie": "API"},
    "check": {"path": "/api/health"},
    "real_servers": [{"address": "198.18.0.5", "port": 80}, {"address": "198.18.0.6", "port": 80}],
}


def document(**fields: Any) -> dict[str, Any]:
    return {
        "virtual_services": [
            {
                "name": "site",
                "address": "198.18.0.100",
                "port": 80,
                "real_servers": [{"address": "198.18.0.4", "port": 80}],
                "sub_services": [API],
                **fields,
            }
        ]
    }


def use_api(match: dict[str, Any]) -> dict[str, Any]:
    return document(rules=[{"name": "r", "match": match, "action": {"use": "api"}}])


CASES: dict[str, dict[str, Any]] = {
    "match_host": use_api({"host": "www.example.com"}),
    "match_host_port": use_api({"host": "www.example.com:8080"}),
    "match_host_suffix": use_api({"host_suffix": "example.com"}),
    "match_path": use_api({"path": "/exact"}),
    "match_path_prefix": use_api({"path_prefix": "/api/"}),
    "match_path_regex": use_api({"path_regex": "^/v[0-9]+/"}),
    "match_header_value": use_api({"header": {"name": "X-Tenant", "value": "blue"}}),
    "match_header_regex": use_api({"header": {"name": "X-Tenant", "regex": "^b"}}),
    "match_query": use_api({"query": {"name": "to", "value": "api"}}),
    "match_method": use_api({"method": "DELETE"}),
    "match_source": use_api({"source": "198.18.0.0/24"}),
    "match_negate": use_api({"path_prefix": "/api/", "method": "GET", "negate": True}),
    "action_redirect": document(
        rules=[
            {
                "name": f"r{code}",
                "match": {"path": f"/go{code}"},
                "action": {"redirect": "https://new.example.com/", "code": code},
            }
            for code in (301, 302, 303, 307, 308)
        ]
    ),
    "action_respond": document(
        rules=[
            {"name": "deny", "match": {"path": "/x"}, "action": {"respond": 403, "body": "no"}},
            {"name": "empty", "match": {"path": "/y"}, "action": {"respond": 204}},
        ]
    ),
    "action_use_default": document(
        rules=[
            {"name": "keep", "match": {"path_prefix": "/api/x"}, "action": {"use_default": True}},
            {"name": "api", "match": {"path_prefix": "/api/"}, "action": {"use": "api"}},
        ]
    ),
    "rule_rewrite_path": document(
        rules=[
            {
                "name": "v1",
                "match": {"path_prefix": "/v1/"},
                "action": {"use": "api"},
                "rewrite_path": {"regex": "^/v1/(.*)", "with": "/v2/\\1"},
            }
        ]
    ),
    "headers": document(
        request_headers=[
            {"set": "X-Env", "value": "prod"},
            {"add": "X-Added", "value": "1"},
            {"delete": "X-Remove"},
            {"replace": "X-Replace", "regex": "^old-(.*)", "with": "new-\\1"},
        ],
        response_headers=[{"delete": "Server"}, {"set": "X-Frame-Options", "value": "DENY"}],
    ),
    "rewrite_path": document(rewrite_path={"regex": "^/old/(.*)", "with": "/new/\\1"}),
    **{
        f"forwarded_{how}": document(forwarded=how)
        for how in ("x_forwarded_for", "via", "both", "none")
    },
    "not_available_sorry_server": document(
        not_available={"sorry_server": {"address": "198.18.0.20", "port": 80}}
    ),
    "not_available_respond": document(
        rules=[{"name": "api", "match": {"path_prefix": "/api/"}, "action": {"use": "api"}}],
        not_available={"respond": {"code": 503, "body": "maintenance"}},
    ),
    "not_available_redirect": document(not_available={"redirect": "https://status.example.com/"}),
    "not_available_page": document(
        not_available={"respond": {"code": 503, "body_file": "maintenance"}}
    ),
    "sub_service_fixed_weighting_sorry": document(
        sub_services=[{**API, "scheduler": "fixed_weighting", "persistence": {"method": "none"}}],
        not_available={"sorry_server": {"address": "198.18.0.20", "port": 80}},
    ),
    **{f"proxy_protocol_{version}": document(proxy_protocol=version) for version in ("v1", "v2")},
    "accept_proxy": document(accept_proxy=True),
    "timeouts_slow_start": document(
        timeouts={"idle": 660, "connect": 5, "server": 660, "queue": 30}, slow_start=30
    ),
    "transparent": document(
        transparent=True, not_available={"sorry_server": {"address": "198.18.0.20", "port": 80}}
    ),
    "https": {
        "virtual_services": [
            {
                **document()["virtual_services"][0],
                "type": "https",
                "port": 443,
                "tls": {"certificates": ["site"]},
                "rules": [
                    {"name": "api", "match": {"path_prefix": "/api/"}, "action": {"use": "api"}}
                ],
            }
        ]
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(
    case: str, golden: Callable[[str, str], None], haproxy_check: Callable[..., str]
) -> None:
    text = render(build_view(parse_document(CASES[case]), GLOBALS))
    golden(f"rules/{case}", text)
    if case == "https":
        return  # the certificate file exists on an appliance only (test_render_tls checks TLS)
    if case == "not_available_page":
        return  # so does the page: test_a_page_of_the_store_is_read_by_haproxy checks it
    haproxy_check(text)


def test_a_page_of_the_store_is_read_by_haproxy(
    tmp_path: Path, haproxy_check: Callable[..., str]
) -> None:
    """``body_file``: HAProxy reads the page file when it loads the configuration (haproxy -c
    fails when it is missing), for the service and each sub-service."""
    available = {"respond": {"code": 503, "body_file": "maintenance"}}
    config = parse_document(document(not_available=available))
    pages = tmp_path / "pages"
    pages.mkdir()
    text = render(build_view(config, replace(GLOBALS, pages_dir=str(pages))))
    page = f"'{pages}/maintenance.html'"
    assert text.count(f"content-type 'text/html; charset=utf-8' file {page}") == 2
    with pytest.raises(AssertionError, match=r"maintenance\.html"):
        haproxy_check(text)
    (pages / "maintenance.html").write_text("<h1>Back soon</h1>\n")
    haproxy_check(text)


@pytest.mark.parametrize("name", ["../etc/passwd", "a b", "x'y", "Maint", "a\nb", ""])
def test_a_page_name_is_a_plain_name(name: str) -> None:
    with pytest.raises(InvalidConfiguration, match="body_file"):
        parse_document(document(not_available={"respond": {"body_file": name}}))


def test_a_page_or_a_body_not_both() -> None:
    with pytest.raises(InvalidConfiguration, match="not both"):
        parse_document(document(not_available={"respond": {"body": "x", "body_file": "m"}}))
    config = parse_document(document(not_available={"respond": {"body_file": "m"}}))
    respond = config.virtual_services[0].not_available.respond  # type: ignore[union-attr]
    assert respond is not None and (respond.body, respond.body_file) == (None, "m")
    with pytest.raises(InvalidConfiguration, match="carries no body"):
        parse_document(document(not_available={"respond": {"code": 204, "body_file": "m"}}))


def test_the_translation_tables_cover_every_member() -> None:
    assert set(MATCHES) == set(MatchKind)
    assert set(HEADER_ACTIONS) == set(HeaderOperationKind)
    assert set(SEND_PROXY) == set(ProxyProtocol)


def test_first_match_wins_across_action_kinds() -> None:
    """A use rule before a redirect: the redirect is conditioned on its own number only."""
    text = render(build_view(parse_document(CASES["action_use_default"]), GLOBALS))
    assert "use_backend site_api if { var(txn.bascule_rule) -m int 2 }" in text
    assert "int(2) if !{ var(txn.bascule_rule) -m found } bascule_rule2_path_prefix" in text


# --------------------------------------------------------------------------- injection

NASTY = 'it\'s "q" # c $HOME %[src] %{+Q}o \\ end'
NASTY_REGEX = "^/it's\"#\\$HOME %\\[src\\]/(.*)"
NASTY_PATH = "/it's#$HOME/%[src]\"\\"
NASTY_URL = "https://x.example.com/it's#$HOME%[src]\"\\"


def every_field(text: str, regex: str, path: str, url: str, host: str) -> dict[str, Any]:
    return document(
        rules=[
            {
                "name": "a",
                "match": {
                    "host": host,
                    "path": path,
                    "path_prefix": path,
                    "path_regex": regex,
                    "header": {"name": "X-A", "value": text},
                },
                "action": {"respond": 200, "body": text},
            },
            {
                "name": "b",
                "match": {"header": {"name": "X-B", "regex": regex}},
                "action": {"redirect": url},
            },
            {
                "name": "c",
                "match": {"query": {"name": "q", "value": path.replace("#", "")}},
                "action": {"use": "api"},
                "rewrite_path": {"regex": regex, "with": path},
            },
        ],
        request_headers=[
            {"set": "X-S", "value": text},
            {"replace": "X-R", "regex": regex, "with": text},
        ],
        response_headers=[{"add": "X-S", "value": text}],
        rewrite_path={"regex": regex, "with": path},
        not_available={"respond": {"code": 503, "body": text}},
    )


def nasty() -> dict[str, Any]:
    return every_field(NASTY, NASTY_REGEX, NASTY_PATH, NASTY_URL, "www.example.com")


def harmless() -> dict[str, Any]:
    return every_field("plain", "^/a/(.*)", "/a", "https://x.example.com/", "www.example.com")


def directives(text: str) -> list[str]:
    return [line.split(" ", 1)[0] for line in (raw.strip() for raw in text.split("\n")) if line]


def test_nasty_values_render_exactly_the_harmless_directives(
    haproxy_check: Callable[..., str],
) -> None:
    text = render(build_view(parse_document(nasty()), GLOBALS))
    reference = render(build_view(parse_document(harmless()), GLOBALS))
    assert text.count("\n") == reference.count("\n")
    assert directives(text) == directives(reference)
    # every value appears strongly quoted, '%' doubled where HAProxy reads log-format
    assert "'it'\\''s \"q\" # c $HOME %%[src] %%{+Q}o \\ end'" in text  # header value
    assert "string 'it'\\''s \"q\" # c $HOME %[src] %{+Q}o \\ end'" in text  # body: plain
    haproxy_check(text)


def bad_fields(bad: str) -> dict[str, dict[str, Any]]:
    rule = {"name": "r", "match": {"path": "/"}, "action": {"use_default": True}}
    return {
        "rule host": document(rules=[{**rule, "match": {"host": f"a.example.com{bad}"}}]),
        "rule host_suffix": document(rules=[{**rule, "match": {"host_suffix": f"a{bad}.com"}}]),
        "rule path": document(rules=[{**rule, "match": {"path": f"/a{bad}b"}}]),
        "rule path_prefix": document(rules=[{**rule, "match": {"path_prefix": f"/a{bad}"}}]),
        "rule path_regex": document(rules=[{**rule, "match": {"path_regex": f"^a{bad}"}}]),
        "header name": document(
            rules=[{**rule, "match": {"header": {"name": f"X-A{bad}", "value": "v"}}}]
        ),
        "header value": document(
            rules=[{**rule, "match": {"header": {"name": "X-A", "value": f"v{bad}x"}}}]
        ),
        "query value": document(
            rules=[{**rule, "match": {"query": {"name": "q", "value": f"v{bad}x"}}}]
        ),
        "method": document(rules=[{**rule, "match": {"method": f"GET{bad}"}}]),
        "source": document(rules=[{**rule, "match": {"source": f"198.18.0.0/24{bad}"}}]),
        "redirect": document(rules=[{**rule, "action": {"redirect": f"https://a.example/{bad}x"}}]),
        "body": document(rules=[{**rule, "action": {"respond": 200, "body": f"a{bad}listen x"}}]),
        "set value": document(request_headers=[{"set": "X-A", "value": f"a{bad}listen x"}]),
        "set name": document(request_headers=[{"set": f"X-A{bad}", "value": "a"}]),
        "replace with": document(
            response_headers=[{"replace": "X-A", "regex": "a", "with": f"a{bad}listen x"}]
        ),
        "rewrite with": document(rewrite_path={"regex": "^/a", "with": f"/b{bad}listen x"}),
        "not_available body": document(
            not_available={"respond": {"code": 503, "body": f"a{bad}listen x"}}
        ),
        "not_available redirect": document(not_available={"redirect": f"https://a.example/{bad}"}),
        "sub_service name": document(sub_services=[{**API, "name": f"api{bad}"}]),
    }


@pytest.mark.parametrize("bad", ["\n", "\r", "\x00", "\t", "\x1b", "\x7f", "\u2028"])
@pytest.mark.parametrize("field", sorted(bad_fields("")))
def test_control_characters_are_refused_by_the_model(field: str, bad: str) -> None:
    with pytest.raises(InvalidConfiguration):
        parse_document(bad_fields(bad)[field])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("header name", "X-A'"),
        ("header name", "X-A)"),
        ("header name", "X-A,b"),
        ("set name", "X A"),
        ("method", "get"),
        ("redirect", "javascript:alert(1)"),
        ("redirect", "https://a.example/ b"),
        ("rule host", "a.example.com' || 1"),
        ("query value", "a&b"),
    ],
)
def test_unsafe_words_are_refused_by_the_model(field: str, value: str) -> None:
    rule = {"name": "r", "match": {"path": "/"}, "action": {"use_default": True}}
    documents = {
        "header name": document(
            rules=[{**rule, "match": {"header": {"name": value, "value": "v"}}}]
        ),
        "set name": document(request_headers=[{"set": value, "value": "a"}]),
        "method": document(rules=[{**rule, "match": {"method": value}}]),
        "redirect": document(rules=[{**rule, "action": {"redirect": value}}]),
        "rule host": document(rules=[{**rule, "match": {"host": value}}]),
        "query value": document(
            rules=[{**rule, "match": {"query": {"name": "q", "value": value}}}]
        ),
    }
    with pytest.raises(InvalidConfiguration):
        parse_document(documents[field])


# --------------------------------------------------------------------------- fuzzing

_paths = st.from_regex(r"\A/[a-z0-9/._~-]{0,12}\Z")
_words = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=12
)
_regexes = st.sampled_from(["^/a", "(?i)^/B[0-9]+$", "^/x/(.*)", "a|b", "[^/]+\\.png$", "\\d{2,}"])
_matches = st.fixed_dictionaries(
    {},
    optional={
        "host": st.sampled_from(["a.example.com", "B.example.com:8080"]),
        "host_suffix": st.sampled_from(["example.com", ".example.org"]),
        "path": _paths,
        "path_prefix": _paths,
        "path_regex": _regexes,
        "header": st.fixed_dictionaries({"name": st.just("X-A"), "value": _words}),
        "method": st.sampled_from(["GET", "POST", "PURGE"]),
        "source": st.sampled_from(["198.18.0.0/15", "2001:2::/48", "198.18.0.1"]),
        "negate": st.booleans(),
    },
).filter(lambda m: set(m) - {"negate"})
_actions = st.one_of(
    st.just({"use": "api"}),
    st.just({"use_default": True}),
    st.builds(lambda body: {"respond": 200, "body": body}, _words),
    st.builds(
        lambda code, path: {"redirect": path, "code": code},
        st.sampled_from([301, 302, 303, 307, 308]),
        _paths,
    ),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rules=st.lists(st.fixed_dictionaries({"match": _matches, "action": _actions}), max_size=6),
    header=_words,
)
def test_every_generated_rule_set_renders_a_configuration_haproxy_accepts(
    rules: list[dict[str, Any]], header: str, haproxy_check: Callable[..., str]
) -> None:
    named = [{"name": f"r{number}", **rule} for number, rule in enumerate(rules)]
    doc = document(rules=named, request_headers=[{"set": "X-Generated", "value": header}])
    haproxy_check(render(build_view(parse_document(doc), GLOBALS)))


# --------------------------------------------------------------------------- request logs

LOGGED = HaproxyGlobals(
    stats_socket="/run/bascule/haproxy.sock",
    maxconn=4096,
    nbthread=2,
    request_log_pipe=True,
)


@pytest.mark.parametrize("protocol", [None, "udp", "tcp"])
def test_request_logs_golden(
    protocol: str | None, golden: Callable[[str, str], None], haproxy_check: Callable[..., str]
) -> None:
    doc = document()
    doc["virtual_services"].append(
        {
            "name": "tcp",
            "address": "198.18.0.100",
            "port": 3306,
            "type": "generic",
            "real_servers": [{"address": "198.18.0.7", "port": 3306}],
        }
    )
    doc["virtual_services"].append(
        {**doc["virtual_services"][1], "name": "quiet", "port": 3307, "request_log": False}
    )
    if protocol is not None:
        doc["logging"] = {"syslog": {"address": "198.18.0.9", "protocol": protocol}}
    text = render(build_view(parse_document(doc), LOGGED))
    golden(f"rules/request_logs_{protocol or 'local'}", text)
    haproxy_check(text)
    assert text.count("option httplog") == 1 and text.count("option tcplog") == 1


def test_no_log_target_no_log_options() -> None:
    text = render(build_view(parse_document(document()), GLOBALS))
    assert "option httplog" not in text and "\n    log " not in text


_anything = st.text(max_size=40) | st.from_regex(r"\A[\x20-\x7e]{1,30}\Z")


def _placed(field: str, value: str) -> dict[str, Any]:
    rule = {"name": "r", "match": {"path": "/"}, "action": {"use_default": True}}
    placements: dict[str, dict[str, Any]] = {
        "path_regex": {"rules": [{**rule, "match": {"path_regex": value}}]},
        "header regex": {"rules": [{**rule, "match": {"header": {"name": "X-A", "regex": value}}}]},
        "header value": {"rules": [{**rule, "match": {"header": {"name": "X-A", "value": value}}}]},
        "header name": {"request_headers": [{"set": value, "value": "v"}]},
        "host": {"rules": [{**rule, "match": {"host": value}}]},
        "host_suffix": {"rules": [{**rule, "match": {"host_suffix": value}}]},
        "path_prefix": {"rules": [{**rule, "match": {"path_prefix": value}}]},
        "query": {"rules": [{**rule, "match": {"query": {"name": "q", "value": value}}}]},
        "method": {"rules": [{**rule, "match": {"method": value}}]},
        "source": {"rules": [{**rule, "match": {"source": value}}]},
        "redirect": {"rules": [{**rule, "action": {"redirect": value}}]},
        "body": {"rules": [{**rule, "action": {"respond": 200, "body": value}}]},
        "set value": {"response_headers": [{"set": "X-A", "value": value}]},
        "replace with": {"request_headers": [{"replace": "X-A", "regex": "a", "with": value}]},
        "rewrite regex": {"rewrite_path": {"regex": value, "with": "/"}},
        "rewrite with": {"rewrite_path": {"regex": "^/", "with": value}},
    }
    return document(**placements[field])


FIELDS = (
    "path_regex", "header regex", "header value", "header name", "host", "host_suffix",
    "path_prefix", "query", "method", "source", "redirect", "body", "set value",
    "replace with", "rewrite regex", "rewrite with",
)  # fmt: skip


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(field=st.sampled_from(FIELDS), value=_anything)
def test_any_string_is_refused_by_the_model_or_accepted_by_haproxy(
    field: str, value: str, haproxy_check: Callable[..., str]
) -> None:
    """Never a configuration HAProxy refuses: what the model lets through, HAProxy reads."""
    try:
        config = parse_document(_placed(field, value))
    except InvalidConfiguration:
        return
    haproxy_check(render(build_view(config, GLOBALS)))


@pytest.mark.parametrize("value", ["-i", "-m beg", "--", "-f /etc/passwd"])
def test_a_pattern_starting_with_a_dash_is_a_pattern_not_an_option(
    value: str, haproxy_check: Callable[..., str]
) -> None:
    doc = use_api({"header": {"name": "X-A", "value": value}, "path_regex": value})
    text = render(build_view(parse_document(doc), GLOBALS))
    assert f"req.hdr(X-A) -m str -- {quote(value)}" in text
    haproxy_check(text)
