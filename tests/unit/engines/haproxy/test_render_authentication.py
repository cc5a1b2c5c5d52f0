"""A service's basic authentication rendered for HAProxy: golden files
(tests/golden/haproxy/authentication/), each accepted by the real ``haproxy -c``; the realm is
quoted whatever it holds, and what cannot be quoted is refused by the model on its field."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bascule.engines.haproxy.render import render
from bascule.engines.haproxy.view import HaproxyGlobals, build_view
from bascule.errors import InvalidConfiguration
from bascule.model import parse_document

# fixed hashes (yescrypt of "password-1" and "password-2"), so the golden files are stable
OPS = "$y$j85$Qz3b1y8ZtUeI9yqYbP4Mz/$lRk1xXfYFp8yQ5Z3gkR0mB4w5n9J0YB8uM3S0kKwZb1"
DEV = "$y$j85$7vJc0Ch7b2uZ8tE1yX3nQ.$3WcVqgP0bH4b6hY1u0TzqZbE1mA9i6oY5p0sN2lDq8C"
GLOBALS = HaproxyGlobals(
    stats_socket="/run/bascule/haproxy.sock",
    maxconn=4096,
    nbthread=2,
    http_users=(("dev", DEV), ("ops", OPS)),
)


def document(**fields: Any) -> dict[str, Any]:
    return {
        "virtual_services": [
            {
                "name": "site",
                "address": "198.18.0.100",
                "port": 80,
                "real_servers": [{"address": "198.18.0.4", "port": 80}],
                **fields,
            }
        ]
    }


CASES: dict[str, dict[str, Any]] = {
    "basic": document(authentication={"realm": "Operations", "users": ["ops"]}),
    "with_rules_cache_and_limits": document(
        authentication={"users": ["ops", "dev"]},
        cache={"x_cache_header": True},
        limits={"per_client": {"requests_per_second": 50}},
        rules=[{"name": "old", "match": {"path": "/old"}, "action": {"redirect": "/new"}}],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(
    case: str,
    golden: Callable[[str, str], None],
    haproxy_check: Callable[..., str],
    tmp_path: Path,
) -> None:
    config = parse_document(CASES[case])
    golden(f"authentication/{case}", render(build_view(config, GLOBALS)))
    # HAProxy opens the cache generations' map file (the purge) when it loads
    generations = tmp_path / "cache-generations.map"
    generations.write_text("")
    haproxy_check(
        render(build_view(config, replace(GLOBALS, cache_generations_map=str(generations))))
    )


def test_the_rule_comes_after_the_limits_and_before_the_content_rules() -> None:
    text = render(build_view(parse_document(CASES["with_rules_cache_and_limits"]), GLOBALS))
    lines = [line.strip() for line in text.splitlines()]
    auth = lines.index("http-request auth realm 'Restricted' unless { http_auth(site_users) }")
    limits = max(i for i, line in enumerate(lines) if "sc0_http_req_rate" in line)
    redirect = next(i for i, line in enumerate(lines) if line.startswith("http-request redirect"))
    cache = lines.index("http-request cache-use site_cache")
    assert limits < auth < redirect < cache


def test_a_user_the_store_does_not_hold_is_left_out_of_the_list() -> None:
    globals_ = dataclasses.replace(GLOBALS, http_users=(("dev", DEV),))
    text = render(build_view(parse_document(CASES["with_rules_cache_and_limits"]), globals_))
    assert "user dev password" in text and "user ops" not in text


def test_a_hash_that_is_not_yescrypt_never_reaches_the_file() -> None:
    globals_ = dataclasses.replace(GLOBALS, http_users=(("ops", "plain text\n"),))
    with pytest.raises(ValueError, match="yescrypt"):
        build_view(parse_document(CASES["basic"]), globals_)


@pytest.mark.parametrize(
    "realm", ["it's mine", "#not a comment", "$HOME", "%[src]", "a' b", "}{ if TRUE"]
)
def test_a_realm_is_one_quoted_word(realm: str, haproxy_check: Callable[..., str]) -> None:
    config = parse_document(document(authentication={"realm": realm, "users": ["ops"]}))
    text = render(build_view(config, GLOBALS))
    haproxy_check(text)
    rule = next(line for line in text.splitlines() if "http-request auth" in line)
    assert rule.strip().endswith("unless { http_auth(site_users) }")


@pytest.mark.parametrize("realm", ['a"b', "a\\b", "a\nlisten evil", "a\r", "é", "", " x"])
def test_a_realm_that_cannot_be_quoted_is_refused_on_its_field(realm: str) -> None:
    with pytest.raises(InvalidConfiguration) as caught:
        parse_document(document(authentication={"realm": realm, "users": ["ops"]}))
    assert [e.path for e in caught.value.errors] == ["virtual_services[0].authentication.realm"]


@pytest.mark.parametrize("user", ["ops\nuser evil", "a b", "a:b", "$HOME", "'q'", "#x"])
def test_a_user_name_is_a_plain_word(user: str) -> None:
    with pytest.raises(InvalidConfiguration) as caught:
        parse_document(document(authentication={"users": ["ops", user]}))
    assert [e.path for e in caught.value.errors] == ["virtual_services[0].authentication.users[1]"]


@pytest.mark.parametrize(("mode", "kind"), [("l4", "generic"), ("l7", "generic")])
def test_only_an_l7_http_service_authenticates(mode: str, kind: str) -> None:
    with pytest.raises(InvalidConfiguration) as caught:
        parse_document(document(mode=mode, type=kind, authentication={"users": ["ops"]}))
    assert [e.path for e in caught.value.errors] == ["virtual_services[0].authentication"]
