"""The L7 sections of the model: rules, sub-services, header operations, not_available."""

from __future__ import annotations

from typing import Any

import pytest

from bascule.errors import InvalidConfiguration
from bascule.model import parse_document
from bascule.model.edits import update_real_server
from bascule.model.regex import portable_regex


def service(**fields: Any) -> dict[str, Any]:
    return {
        "name": "site",
        "address": "198.18.0.100",
        "port": 80,
        "real_servers": [{"address": "198.18.0.4", "port": 80}],
        "sub_services": [
            {
                "name": "api",
                "check": {"path": "/api/health"},
                "real_servers": [{"address": "198.18.0.5", "port": 80}],
            }
        ],
        **fields,
    }


def errors(**fields: Any) -> dict[str, str]:
    with pytest.raises(InvalidConfiguration) as caught:
        parse_document({"virtual_services": [service(**fields)]})
    return {error.path: error.message for error in caught.value.errors}


def test_a_sub_service_is_a_pool_with_its_services_defaults() -> None:
    config = parse_document({"virtual_services": [service(scheduler="least_connection")]})
    pool = config.pool("site/api")
    assert pool is not None
    assert (pool.name, pool.scheduler.value, pool.check.type.value) == (
        "site/api",
        "least_connection",
        "http",  # the service's check type, its own path
    )
    assert pool.check.path == "/api/health"
    assert [p.name for p in config.pools()] == ["site", "site/api"]
    assert config.pool("site/none") is None


@pytest.mark.parametrize(
    ("fields", "path", "words"),
    [
        (
            {"rules": [{"name": "r", "match": {}, "action": {"use": "api"}}]},
            "rules[0].match",
            "at least one",
        ),
        (
            {"rules": [{"name": "r", "match": {"path": "/"}, "action": {"use": "nope"}}]},
            "rules[0].action.use",
            "not a sub-service",
        ),
        (
            {"rules": [{"name": "r", "match": {"path": "/"}, "action": {}}]},
            "rules[0].action",
            "exactly one action",
        ),
        (
            {
                "rules": [
                    {"name": "r", "match": {"path": "/"}, "action": {"redirect": "/x", "code": 200}}
                ]
            },
            "rules[0].action.code",
            "one of",
        ),
        (
            {
                "rules": [
                    {"name": "r", "match": {"path": "/"}, "action": {"respond": 204, "body": "x"}}
                ]
            },
            "rules[0].action.body",
            "no body",
        ),
        (
            {"rules": [{"name": "r", "match": {"path": "/"}, "action": {"respond": 99}}]},
            "rules[0].action.respond",
            "between 200 and 599",
        ),
        (
            {
                "rules": [
                    {"name": "r", "match": {"path": "/"}, "action": {"use_default": True}},
                    {"name": "r", "match": {"path": "/"}, "action": {"use_default": True}},
                ]
            },
            "rules[1].name",
            "already",
        ),
        (
            {
                "rules": [
                    {"name": "r", "match": {"header": {"name": "X-A"}}, "action": {"use": "api"}}
                ]
            },
            "rules[0].match.header",
            "exactly one of value or regex",
        ),
        ({"request_headers": [{"set": "X-A"}]}, "request_headers[0].value", "needs one"),
        (
            {"request_headers": [{"delete": "X-A", "value": "v"}]},
            "request_headers[0].value",
            "not used",
        ),
        (
            {"request_headers": [{"replace": "X-A", "regex": "a"}]},
            "request_headers[0].regex",
            "needs",
        ),
        ({"not_available": {}}, "not_available", "exactly one"),
        ({"forwarded": "sideways"}, "forwarded", "must be one of"),
        ({"sub_services": [{"name": "api"}, {"name": "api"}]}, "sub_services[1].name", "already"),
        (
            {"sub_services": [{"name": "api", "scheduler": "adaptive"}]},
            "sub_services[0].scheduler",
            "not supported yet",
        ),
    ],
)
def test_refusals_name_the_field(fields: dict[str, Any], path: str, words: str) -> None:
    found = errors(**fields)
    assert words in found[f"virtual_services[0].{path}"], found


def test_l7_sections_need_an_http_service() -> None:
    found = errors(
        type="generic",
        sub_services=[],
        rules=[{"name": "r", "match": {"path": "/"}, "action": {"respond": 200}}],
        request_headers=[{"delete": "X-A"}],
        forwarded="via",
        not_available={"respond": {}},
    )
    for field in ("rules", "request_headers", "forwarded", "not_available.respond"):
        assert "type http" in found[f"virtual_services[0].{field}"], found


def test_l4_nat_services_take_a_sorry_server_only() -> None:
    sorry = {"sorry_server": {"address": "198.18.0.20", "port": 80}}
    l4 = {"name": "l4", "address": "198.18.0.1", "port": 80, "mode": "l4", "type": "generic"}
    config = parse_document({"virtual_services": [{**l4, "not_available": sorry}]})
    assert config.virtual_services[0].not_available is not None
    l4_errors = {"mode": "l4", "type": "generic", "sub_services": []}
    found = errors(**l4_errors, forwarding="dsr", not_available=sorry)
    assert "nat only" in found["virtual_services[0].not_available"]
    found = errors(mode="l4", type="generic", sub_services=[], not_available={"respond": {}})
    assert "type http" in found["virtual_services[0].not_available.respond"]
    found = errors(
        mode="l4",
        type="generic",
        sub_services=[],
        not_available={"sorry_server": {"address": "2001:2::20", "port": 80}},
    )
    assert "address family" in found["virtual_services[0].not_available.sorry_server.address"]
    found = errors(not_available={"sorry_server": {"address": "198.18.0.4", "port": 80}})
    assert "already a real server" in found["virtual_services[0].not_available.sorry_server"]


@pytest.mark.parametrize(
    "regex",
    [
        "^/a",
        "(?i)^/b$",
        "^/x/(.*)",
        "[^/]+\\.png$",
        "\\d{2,}",
        "a(?=b)",
        "(?<!x)y",
        "[]a]",
        "(a)\\1",
    ],
)
def test_portable_regexes_are_accepted(regex: str) -> None:
    assert portable_regex(regex) == regex


@pytest.mark.parametrize(
    ("regex", "words"),
    [
        ("\\Z", "\\Z"),
        ("\\x41", "\\x"),
        ("(?P<n>a)", "group"),
        ("a(?i)b", "at the start"),
        ("(?#c)", "group"),
        ("a{,3}", "{0,n}"),
        ("[[:alpha:]]", "nested set"),
        ("(", "not a valid regular expression"),
        ("[[a]", "not a valid regular expression"),
        ("", "empty"),
        ("a\nb", "control"),
    ],
)
def test_regexes_pcre2_reads_otherwise_are_refused(regex: str, words: str) -> None:
    with pytest.raises(ValueError) as caught:
        portable_regex(regex)
    assert words in str(caught.value)


def test_edits_reach_a_sub_services_real_server() -> None:
    document = {"virtual_services": [service()]}
    changed = update_real_server(document, "site/api", "198.18.0.5:80", {"state": "drain"})
    config = parse_document(changed)
    pool = config.pool("site/api")
    assert pool is not None and pool.real_servers[0].state.value == "drain"
    assert (
        document["virtual_services"][0]["sub_services"][0]["real_servers"][0].get("state") is None
    )


def test_logging_and_request_log_are_checked() -> None:
    with pytest.raises(InvalidConfiguration) as caught:
        parse_document(
            {
                "logging": {"syslog": {"address": "syslog.example.com", "protocol": "sctp"}},
                "virtual_services": [
                    {"name": "l4", "address": "198.18.0.1", "port": 53, "mode": "l4",
                     "type": "generic", "request_log": True},
                ],
            }
        )  # fmt: skip
    found = {error.path: error.message for error in caught.value.errors}
    assert "is not an IPv4 or IPv6 address" in found["logging.syslog.address"]
    assert "must be one of" in found["logging.syslog.protocol"]
    config = parse_document({"logging": {"syslog": {"address": "198.18.0.9"}}})
    assert config.logging is not None and config.logging.syslog is not None
    assert (config.logging.syslog.port, config.logging.syslog.protocol.value) == (514, "udp")


def test_request_log_set_on_l4_is_refused() -> None:
    l4 = {"name": "l4", "address": "198.18.0.1", "port": 53, "mode": "l4", "type": "generic"}
    parse_document({"virtual_services": [l4]})  # the default is fine
    with pytest.raises(InvalidConfiguration) as caught:
        parse_document({"virtual_services": [{**l4, "request_log": True}]})
    assert "not supported yet" in str(caught.value)


def test_timeouts_slow_start_and_drain_time_are_l7_for_now() -> None:
    l4 = {"name": "l4", "address": "198.18.0.1", "port": 53, "mode": "l4", "type": "generic"}
    with pytest.raises(InvalidConfiguration) as caught:
        parse_document(
            {
                "virtual_services": [
                    {**l4, "timeouts": {"idle": 5}, "slow_start": 9, "drain_time": 30}
                ]
            }
        )
    paths = {error.path for error in caught.value.errors}
    assert paths == {
        "virtual_services[0].timeouts",
        "virtual_services[0].slow_start",
        "virtual_services[0].drain_time",
    }
    assert "between 1 and 86400" in str(errors(timeouts={"idle": 0}))
    assert "between 0 and 86400" in errors(drain_time=86401)["virtual_services[0].drain_time"]
    assert "virtual_services[0].drain_time" in errors(drain_time="soon")
    assert "virtual_services[0].drain_time" in errors(drain_time=True)


def test_an_exported_document_parses_again() -> None:
    """Every default spelled out (as ``bascule export`` and every edit write it) is valid."""
    l4 = {"name": "l4", "address": "198.18.0.1", "port": 53, "mode": "l4", "type": "generic"}
    rules = [{"name": "r", "match": {"path": "/x", "negate": True}, "action": {"use": "api"}}]
    first = parse_document(
        {
            "logging": {"syslog": {"address": "198.18.0.9"}},
            "virtual_services": [
                l4,
                service(
                    rules=rules,
                    request_headers=[{"replace": "X-A", "regex": "^a", "with": "b"}],
                    not_available={"respond": {}},
                    timeouts={"idle": 5},
                ),
            ],
        }
    )
    again = parse_document(first.to_document())
    assert again == first
